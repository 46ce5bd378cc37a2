"""Labelled incident scenarios over generated GitOps histories, seeded and repeatable.

Each scenario takes a nine-hour slot of a world's history: background commits by other teams
all through it, the family's own commits before the incident starts, and sometimes the fix
(a revert of the culprit) after it. Families are the situations replays of real GitOps
histories showed ranking gets wrong (see docs/ranking.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.ranking.worlds import GITOPS, PLATFORM, World, version

SLOT_BEFORE = 420  # minutes of history before the incident in each slot
SLOT_AFTER = 120

# family -> what a good answer is: "culprit" (confident, right), "tie" (not confident, the
# culprit in the top two), "abstain" (not confident: no change caused it)
FAMILIES: dict[str, str] = {
    "image": "culprit", "chart": "culprit", "values": "culprit", "resources": "culprit",
    "added_removed": "culprit", "docs_after": "culprit", "comment_after": "culprit",
    "reformat_after": "culprit", "ci_after": "culprit", "other_service_after": "culprit",
    "housekeeping": "culprit", "burst": "culprit", "shared_infra": "culprit",
    "platform_repo": "culprit", "reverted_before": "culprit", "two_close": "tie",
    "already_reverted": "abstain", "no_cause": "abstain",
    # Shaped like real histories: a service takes several effective changes an hour.
    "dense": "culprit",  # the culprit is the latest of several effective changes to the service
    "slow_burn": "tie",  # a culprit 25-90 minutes old, an innocent effective change after it
    "replay": "culprit",  # real public GitOps histories, incidents laid after real commits (replay.py)
    "replay_close": "tie",  # the same, with another effective change to the service minutes before
}
REAL = ("replay", "replay_close")  # not generated here


@dataclass
class Commit:
    repo: str
    at: datetime
    subject: str
    files: dict[str, str | None]
    mark: int = 0
    reverts_mark: int | None = None  # a revert: the message names that commit's sha


@dataclass
class Scenario:
    number: int
    world: str
    family: str
    service: str
    started_at: datetime
    onset: datetime | None = None  # when the key metric moved
    variant: str = ""
    culprit: int | None = None  # a commit mark
    reverted: list[int] = field(default_factory=list)  # marks that must never be proposed
    culprit_sha: str | None = None
    culprit_repo: str | None = None
    reverted_shas: list[str] = field(default_factory=list)


Edit = Callable[[], tuple[str, str]]  # mutate the world; return (repo, subject)


class Writer:
    """Turns a world's state changes into commits: the files whose text changed."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.commits: list[Commit] = []
        self.text = {GITOPS: self._render(GITOPS), PLATFORM: self._render(PLATFORM)}
        self.marks = 0

    def _render(self, repo: str) -> dict[str, str | None]:
        if repo == PLATFORM:
            return self.world.render_platform()
        files: dict[str, str | None] = {}
        for name in self.world.services:
            files.update(self.world.render_service(name))
        files.update(self.world.render_shared())
        return files

    def initial(self, at: datetime) -> None:
        for repo in (GITOPS, PLATFORM):
            files = {p: t for p, t in self.text[repo].items() if t is not None}
            self._add(Commit(repo=repo, at=at, subject="Initial import", files=files))

    def commit(self, edit: Edit, at: datetime, *, reverts: int | None = None) -> int:
        repo, subject = edit()
        new = self._render(repo)
        old = self.text[repo]
        files = {p: t for p, t in new.items() if t != old.get(p)}
        assert files, f"the edit {subject!r} changed no file"
        self.text[repo] = new
        return self._add(Commit(repo=repo, at=at, subject=subject, files=files, reverts_mark=reverts))

    def _add(self, commit: Commit) -> int:
        self.marks += 1
        commit.mark = self.marks
        self.commits.append(commit)
        return commit.mark


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


def generate(*, worlds: int, per_family: int, seed: int, end: datetime) -> tuple[list[Writer], list[Scenario]]:
    """Worlds with their commits, and the scenarios laid over them, ending before `end`."""
    rng = random.Random(seed)
    families = [f for f in FAMILIES if f not in REAL for _ in range(per_family)]
    rng.shuffle(families)
    per_world = [families[i::worlds] for i in range(worlds)]
    slot = timedelta(minutes=SLOT_BEFORE + SLOT_AFTER)
    writers, scenarios = [], []
    number = 0
    for index, assigned in enumerate(per_world):
        world = World(f"w{index}", "flux" if index % 2 == 0 else "argocd", random.Random(seed * 100 + index))
        writer = Writer(world)
        edits = Edits(world, rng)
        begin = end - slot * (len(assigned) + 1)
        writer.initial(begin)
        for n, family in enumerate(assigned):
            number += 1
            t0 = begin + slot * (n + 1) + timedelta(minutes=SLOT_BEFORE)
            scenarios.append(_slot(writer, edits, rng, family=family, t0=t0, number=number))
        writers.append(writer)
    return writers, scenarios


def _slot(writer: Writer, edits: Edits, rng: random.Random, *, family: str, t0: datetime,
          number: int) -> Scenario:
    world = writer.world
    names = list(world.services)
    target = rng.choice(names)
    others = [n for n in names if n != target]
    scenario = Scenario(number=number, world=world.name, family=family, service=target, started_at=t0)
    plan: list[tuple[float, Callable[[datetime], None]]] = []

    def at(minutes: float, edit: Edit, *, culprit: bool = False, undo: Edit | None = None) -> None:
        def run(when: datetime) -> None:
            mark = writer.commit(edit, when)
            if culprit:
                scenario.culprit = mark
            if undo is not None:
                edits.undo[mark] = undo
        plan.append((minutes, run))

    # Background: other teams' changes all through the slot, and now and then an earlier
    # effective change to this service, hours before the incident.
    for _ in range(rng.randint(6, 14)):
        minute = rng.uniform(-SLOT_BEFORE + 5, SLOT_AFTER - 5)
        other = rng.choice(others)
        kind = rng.random()
        if kind < 0.7:
            at(minute, edits.effective(other)[0])
        elif kind < 0.85:
            at(minute, rng.choice([edits.docs, edits.comment, edits.reformat])(other))
        else:
            at(minute, edits.shared_no_effect())
    if family != "no_cause" and rng.random() < 0.3:
        at(rng.uniform(-400, -150), edits.effective(target)[0])

    # Alerts fire minutes after a bad change (the rule's `for`, group_wait); some problems take
    # longer to show (a cache to expire, traffic to peak).
    delay = rng.uniform(4, 25) if rng.random() < 0.85 else rng.uniform(25, 90)
    culprit_at = -delay
    culprit_minute = culprit_at
    onset_minute = -rng.uniform(6, 10)  # for incidents no change caused
    fix_later = rng.random() < 0.4

    def reverted_pair(bad_at: float, revert_at: float) -> None:
        """A bad change to the service, and its revert ("This reverts commit ...") later."""
        bad_do, bad_undo = edits.effective(target)
        made: list[int] = []

        def bad(when: datetime) -> None:
            made.append(writer.commit(bad_do, when))
            scenario.reverted.append(made[0])

        def revert(when: datetime) -> None:
            writer.commit(bad_undo, when, reverts=made[0])
        plan.append((bad_at, bad))
        plan.append((revert_at, revert))

    def culprit_edit(edit_pair: tuple[Edit, Edit]) -> None:
        do, undo = edit_pair
        at(culprit_at, do, culprit=True, undo=undo)

    if family in ("image", "chart", "values", "resources", "added_removed"):
        culprit_edit(getattr(edits, family)(target))
    elif family in ("docs_after", "comment_after", "reformat_after", "ci_after", "other_service_after"):
        culprit_edit(edits.effective(target))
        later = rng.uniform(culprit_at + 0.5, -0.5)
        noise = {"docs_after": lambda: edits.docs(target), "comment_after": lambda: edits.comment(target),
                 "reformat_after": lambda: edits.reformat(target),
                 "ci_after": lambda: edits.ci_with_docs(target),
                 "other_service_after": lambda: edits.other_service_with_comment(target, rng.choice(others))}
        at(later, noise[family]())
    elif family == "housekeeping":
        culprit_edit(edits.effective(target))
        at(rng.uniform(culprit_at - 20, -0.5), edits.housekeeping(effective=rng.random() < 0.5))
    elif family == "burst":
        culprit_edit(edits.effective(target))
        for other in rng.sample(others, rng.randint(4, min(7, len(others)))):
            at(culprit_at + rng.uniform(-3, 3), edits.effective(other)[0])
    elif family in ("shared_infra", "platform_repo"):
        culprit_edit(edits.shared(platform=family == "platform_repo"))
    elif family == "reverted_before":
        reverted_pair(rng.uniform(-240, -150), rng.uniform(-130, -70))
        culprit_edit(edits.effective(target))
    elif family == "already_reverted":
        reverted_pair(rng.uniform(-120, -60), rng.uniform(-50, -15))
        fix_later = False
    elif family == "dense":
        # Real services take an effective change every 10 to 40 minutes; the culprit is the latest.
        culprit_edit(edits.effective(target))
        earlier = culprit_at
        for _ in range(rng.randint(2, 5)):
            earlier -= rng.uniform(10, 40)
            at(earlier, edits.effective(target)[0])
    elif family == "slow_burn":
        # The problem takes 25 to 90 minutes to show; meanwhile an innocent change went out.
        culprit_at = culprit_minute = -rng.uniform(25, 90)
        culprit_edit(edits.effective(target))
        innocent = rng.uniform(culprit_at + 5, -3)
        scenario.variant = f"innocent {-innocent:.0f}m before"
        at(innocent, edits.effective(target)[0])
        fix_later = False
    elif family == "two_close":
        first = edits.effective(target)
        second = edits.effective(target)
        gap = rng.uniform(3, 12)
        pick_second = rng.random() < 0.5
        at(culprit_at - gap, first[0], culprit=not pick_second)
        at(culprit_at, second[0], culprit=pick_second)
        culprit_minute = culprit_at if pick_second else culprit_at - gap
        fix_later = False
    elif family == "no_cause":
        variant = rng.choice(["quiet", "no_effect", "earlier", "shared_earlier", "elsewhere", "during",
                              "innocent_nearby"])
        scenario.variant = variant
        if variant == "during":  # a change applied after the metric moved, before the alert fired
            at(onset_minute + rng.uniform(1, 4), edits.effective(target)[0])
        elif variant == "innocent_nearby":  # an effective change shortly before: nothing tells it apart
            at(rng.uniform(-45, -15), edits.effective(target)[0])
        if variant == "no_effect":
            for _ in range(rng.randint(1, 3)):
                at(rng.uniform(-40, -1), rng.choice([edits.docs, edits.comment, edits.reformat,
                                                     edits.ci_with_docs])(target))
        elif variant == "earlier":
            at(rng.uniform(-330, -150), edits.effective(target)[0])
        elif variant == "shared_earlier":
            at(rng.uniform(-330, -150), edits.shared(platform=rng.random() < 0.5)[0])
        elif variant == "elsewhere":
            for other in rng.sample(others, 3):
                at(rng.uniform(-30, -1), edits.effective(other)[0])
        fix_later = False

    # The key metric: it moves a minute or so after the culprit is applied, or (slow problems,
    # or no change at all) a few minutes before the alert fires.
    if family in ("no_cause", "already_reverted"):
        onset = onset_minute if family == "no_cause" else -rng.uniform(4, 10)
    else:
        onset = min(-1.0, max(culprit_minute + rng.uniform(0.5, 3), -rng.uniform(4, 10)))
    scenario.onset = t0 + timedelta(minutes=onset)

    if fix_later and family != "two_close":
        def fix(when: datetime) -> None:
            if scenario.culprit is not None and scenario.culprit in edits.undo:
                writer.commit(edits.undo[scenario.culprit], when, reverts=scenario.culprit)
        plan.append((rng.uniform(15, SLOT_AFTER - 10), fix))

    for minutes, run in sorted(plan, key=lambda item: item[0]):
        run(t0 + timedelta(minutes=minutes) - timedelta(minutes=2))  # applied = commit + 2m sync
    return scenario
