"""The edits people make to a generated GitOps world, for the ranking benchmark's scenarios."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bench.ranking.worlds import GITOPS, PLATFORM, World, version

Edit = Callable[[], tuple[str, str]]  # mutate the world; return (repo, subject)


class Edits:
    """The edits people make, each returning (repo, subject) and able to undo itself."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.w = world
        self.rng = rng
        self.undo: dict[int, Edit] = {}

    # effective edits to one service: each works out its new value when it runs ---------------

    def _change(self, repo: str, read: Callable[[], Any], write: Callable[[Any], None],
                change: Callable[[Any], Any], subject: Callable[[Any], str]) -> tuple[Edit, Edit]:
        saved: dict[str, Any] = {}

        def do() -> tuple[str, str]:
            old = read()
            new = change(old)
            saved.update(old=old, subject=subject(new))
            write(new)
            return repo, saved["subject"]

        def undo() -> tuple[str, str]:
            write(saved["old"])
            return repo, f'Revert "{saved["subject"]}"'
        return do, undo

    def image(self, name: str) -> tuple[Edit, Edit]:
        svc = self.w.services[name]
        minor = self.rng.random() < 0.5
        return self._change(GITOPS, lambda: svc.tag, lambda v: setattr(svc, "tag", v),
                            lambda t: (t[0], t[1] + 1, 0) if minor else (t[0], t[1], t[2] + 1),
                            lambda v: f"{name}: bump image to {version(v)}")

    def chart(self, name: str) -> tuple[Edit, Edit]:
        svc = self.w.services[name]
        if self.w.layout == "flux" and not svc.helm:
            return self.image(name)  # a plain Deployment has no chart: its release is the image
        return self._change(GITOPS, lambda: svc.chart, lambda v: setattr(svc, "chart", v),
                            lambda c: (c[0], c[1] + 1, 0), lambda v: f"{name}: upgrade chart to {version(v)}")

    def values(self, name: str) -> tuple[Edit, Edit]:
        svc = self.w.services[name]
        key = self.rng.choice(["TIMEOUT_MS", "FEATURE_NEW_FLOW", "LOG_LEVEL"])
        flip = {"TIMEOUT_MS": lambda v: str(int(v) // 2 if int(v) > 100 else int(v) * 4),
                "FEATURE_NEW_FLOW": lambda v: "true" if v == "false" else "false",
                "LOG_LEVEL": lambda v: "debug" if v != "debug" else "info"}[key]
        return self._change(GITOPS, lambda: svc.env[key], lambda v: svc.env.__setitem__(key, v), flip,
                            lambda v: f"{name}: set {key}={v}")

    def resources(self, name: str) -> tuple[Edit, Edit]:
        svc = self.w.services[name]
        if self.rng.random() < 0.5:
            return self._change(GITOPS, lambda: svc.replicas, lambda v: setattr(svc, "replicas", v),
                                lambda r: r - 1 if r > 1 else r + 2, lambda v: f"{name}: scale to {v} replicas")
        return self._change(GITOPS, lambda: svc.memory, lambda v: setattr(svc, "memory", v),
                            lambda m: m // 2 if m > 64 else m * 4, lambda v: f"{name}: set memory to {v}Mi")

    def added_removed(self, name: str) -> tuple[Edit, Edit]:
        svc = self.w.services[name]
        extra = self.rng.choice(["hpa", "pdb"])

        def toggle(present: frozenset[str]) -> frozenset[str]:
            return present - {extra} if extra in present else present | {extra}
        return self._change(GITOPS, lambda: frozenset(svc.extras), lambda v: setattr(svc, "extras", set(v)),
                            toggle, lambda v: f"{name}: {'add' if extra in v else 'remove'} the {extra.upper()}")

    def effective(self, name: str) -> tuple[Edit, Edit]:
        kind = self.rng.choices(["image", "chart", "values", "resources", "added_removed"],
                                weights=[5, 1, 2, 2, 1])[0]
        edit: Callable[[str], tuple[Edit, Edit]] = getattr(self, kind)
        return edit(name)

    # edits with no effect on the deployed state ---------------------------------------------

    def docs(self, name: str) -> Edit:
        svc = self.w.services[name]

        def do() -> tuple[str, str]:
            svc.readme += 1
            return GITOPS, self.rng.choice([f"{name}: document the rollout", f"docs({name}): fix typo",
                                            f"{name}: update README links"])
        return do

    def comment(self, name: str) -> Edit:
        svc = self.w.services[name]

        def do() -> tuple[str, str]:
            svc.comment = self.rng.choice([c for c in
                                           ("Owned by the core team.", "Reviewed 2x a year.",
                                            "Limits tuned after load tests.", "Contact #team-" + svc.team)
                                           if c != svc.comment])
            return GITOPS, f"{name}: clarify the comment"
        return do

    def reformat(self, name: str) -> Edit:
        svc = self.w.services[name]

        def do() -> tuple[str, str]:
            svc.indent = 0 if svc.indent else 2
            return GITOPS, f"{name}: yamllint formatting"
        return do

    def ci_with_docs(self, name: str) -> Edit:
        svc = self.w.services[name]

        def do() -> tuple[str, str]:
            self.w.shared.ci[GITOPS] += 1
            svc.readme += 1
            return GITOPS, f"ci: bump kubeconform, note it in the {name} README"
        return do

    def other_service_with_comment(self, name: str, other: str) -> Edit:
        svc, oth = self.w.services[name], self.w.services[other]

        def do() -> tuple[str, str]:
            oth.tag = (oth.tag[0], oth.tag[1] + 1, 0)
            svc.comment = f"Pairs with {other} {version(oth.tag)}."
            return GITOPS, f"{other}: bump image to {version(oth.tag)}; cross-reference in {name}"
        return do

    def housekeeping(self, effective: bool) -> Edit:
        def do() -> tuple[str, str]:
            for svc in self.w.services.values():
                if effective:
                    svc.env["LOG_FORMAT"] = "json" if svc.env.get("LOG_FORMAT") != "json" else "logfmt"
                else:
                    svc.indent = 0 if svc.indent else 2
            return GITOPS, ("chore: structured logs everywhere" if effective
                            else "chore: consistent YAML indentation")
        return do

    # shared infrastructure -----------------------------------------------------------------

    def shared(self, platform: bool) -> tuple[Edit, Edit]:
        s = self.w.shared
        if platform and self.rng.random() < 0.5:
            return self._change(PLATFORM, lambda: s.policy_mode, lambda v: setattr(s, "policy_mode", v),
                                lambda m: "Enforce" if m == "Audit" else "Audit",
                                lambda v: f"policies: require-registry to {v}")
        if platform:
            return self._change(PLATFORM, lambda: s.crd_version, lambda v: setattr(s, "crd_version", v),
                                lambda n: n + 1, lambda v: f"crds: serve rollouts v1alpha{v}")
        if self.rng.random() < 0.5:
            return self._change(GITOPS, lambda: s.ingress_chart, lambda v: setattr(s, "ingress_chart", v),
                                lambda c: (c[0], c[1] + 1, 0), lambda v: f"ingress-nginx: upgrade to {version(v)}")
        return self._change(GITOPS, lambda: s.timeout, lambda v: setattr(s, "timeout", v),
                            lambda t: t // 2 if t > 10 else t * 6, lambda v: f"ingress: proxy-read-timeout {v}s")

    def shared_no_effect(self) -> Edit:
        s = self.w.shared

        def do() -> tuple[str, str]:
            repo = self.rng.choice([GITOPS, PLATFORM])
            choice = self.rng.random()
            if choice < 0.4:
                s.readme[repo] += 1
                return repo, "docs: update the README"
            if choice < 0.7:
                s.ci[repo] += 1
                return repo, "ci: bump the validation image"
            s.comment[repo] = self.rng.choice([c for c in ("Shared by every service.", "Owned by platform.",
                                                           "Shared; ask #platform.") if c != s.comment[repo]])
            return repo, "infra: reword comments"
        return do
