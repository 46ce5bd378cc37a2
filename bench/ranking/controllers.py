"""Controller-events families: is the first suspect right when Flux reports what it applied?

Builds a Flux world (bench/ranking/worlds.py) as a real bare Git repository, imports it with
Backout's mirror into SQLite, posts the Flux events its objects would send through the same
parsing and service the `/webhooks/flux` route uses (every object reporting every revision, as
the shipped Alert with `eventSources` `*` does), opens one incident per scenario and ranks it
with `rank_incident`. Families (issue 21):

- every_object: the culprit was applied by another object hours before the service's own object
  applied it, minutes before the alert;
- recovered_failure: the service's object failed to apply a change hours earlier and applied its
  fix half an hour later; a fresh culprit minutes before the alert;
- shared_tag: a redis sidecar and the service's image move between tags both application
  repositories have; the commits listed under the culprit's bump must be its own image's.

Prints run.py's figures per family (git only), and for shared_tag the share whose bump lists the
right application's commits. Usage: python bench/ranking/controllers.py [--per-family N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.edits import Edits
from bench.ranking.run import build_repo, evaluate, open_incident, summarize
from bench.ranking.scenarios import FAMILIES, Commit, Scenario, Writer
from bench.ranking.worlds import GITOPS, World
from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.controllers import FluxEvent
from bot.config import AlertmanagerSettings, GitSettings, LoggingSettings, RepoSettings, Settings, StorageSettings
from bot.domain.playbooks import Playbook
from bot.services.changelog import refresh_changes
from bot.services.code_changes import annotate_code
from bot.services.gitops import record_controller_event
from bot.services.investigate import rank_incident

CONTROLLER_FAMILIES = {"every_object": "culprit", "recovered_failure": "culprit", "shared_tag": "culprit"}
FAMILIES.update(CONTROLLER_FAMILIES)  # evaluate() reads a family's expected answer from there
SLOT = timedelta(hours=8)
INFRA = "infrastructure"
REDIS = "redis-app"
TAGS = [f"1.0.{n}" for n in range(40)]  # every application repository has these tags


@dataclass
class Applied:
    """One Flux event to post: `object` applied (or failed to apply) the repository at `mark`."""

    at: datetime
    object: str
    mark: int
    failed: bool = False


@dataclass
class Family:
    """One family's world, its commits and the events its objects send."""

    name: str
    writer: Writer
    edits: Edits
    rng: random.Random
    events: list[Applied] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
    redis: dict[str, int] = field(default_factory=dict)  # the redis tag of each service's sidecar

    def commit(self, edit: Callable[[], tuple[str, str]], at: datetime, *, late: dict[str, datetime] | None = None,
               failed: str | None = None) -> int:
        """Commit, and have every object apply it a minute later (`late`: those objects apply it
        then instead; `failed`: that object fails to)."""
        mark = self.writer.commit(edit, at)
        for name in [INFRA, *self.writer.world.services]:
            when = (late or {}).get(name, at + timedelta(minutes=1))
            self.events.append(Applied(when, name, mark, failed=name == failed))
        return mark

    def sidecar(self, service: str, tag: str, at: datetime) -> int:
        """Set the redis sidecar of a service to `tag` (a file the world does not render)."""
        self.redis[service] = TAGS.index(tag)
        path = f"{self.writer.world.manifest(service).rsplit('/', 1)[0]}/redis.yaml"
        text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: redis\nspec:\n  template:\n    spec:\n"
                f"      containers:\n        - name: redis\n          image: redis:{tag}\n")
        # Writer.commit renders the world, which has no sidecar: the commit goes in as it is.
        mark = self.writer._add(Commit(repo=GITOPS, at=at, subject=f"{service}: redis {tag}", files={path: text}))
        for name in [INFRA, *self.writer.world.services]:
            self.events.append(Applied(at + timedelta(minutes=1), name, mark))
        return mark

    def image(self, service: str, tag: str) -> Callable[[], tuple[str, str]]:
        svc = self.writer.world.services[service]

        def edit() -> tuple[str, str]:
            major, minor, patch = (int(p) for p in tag.split("."))
            svc.tag = (major, minor, patch)
            return GITOPS, f"{service}: image {tag}"
        return edit


def build(name: str, per_family: int, seed: int, end: datetime) -> Family:
    rng = random.Random(f"{seed}-{name}")
    world = World(name, "flux", rng)
    family = Family(name, Writer(world), Edits(world, rng), rng)
    begin = end - SLOT * (per_family + 1)
    family.writer.initial(begin)
    for name_ in [INFRA, *world.services]:
        family.events.append(Applied(begin + timedelta(minutes=1), name_, 1))
    for name_ in world.services:  # shared_tag: every image and sidecar starts at the first tag
        if family.name == "shared_tag":
            family.commit(family.image(name_, TAGS[0]), begin + timedelta(minutes=2))
            family.sidecar(name_, TAGS[0], begin + timedelta(minutes=3))
    for n in range(per_family):
        started = begin + SLOT * (n + 1)
        service = rng.choice(list(world.services))
        scenario = Scenario(number=n + 1, world=name, family=name, service=service, started_at=started)
        others = [s for s in world.services if s != service]
        for minutes in sorted(rng.sample(range(60, 400), 6), reverse=True):  # other teams' changes
            # (shared_tag keeps every image on TAGS: other teams change values there)
            edit = family.edits.values if family.name == "shared_tag" else family.edits.effective
            family.commit(edit(rng.choice(others))[0], started - timedelta(minutes=minutes))
        SLOTS[name](family, scenario, started)
        family.scenarios.append(scenario)
    family.writer.commits.sort(key=lambda c: c.at)
    return family


def _every_object(family: Family, scenario: Scenario, started: datetime) -> None:
    rng, service = family.rng, scenario.service
    family.commit(family.edits.effective(service)[0], started - timedelta(minutes=rng.randint(200, 260)))
    late = started - timedelta(minutes=rng.randint(3, 13))
    committed = started - timedelta(minutes=rng.randint(120, 180))
    scenario.culprit = family.commit(family.edits.effective(service)[0], committed, late={service: late})
    # The service's own object applies nothing else until then: what came in between, it applies late too.
    for event in family.events:
        if event.object == service and committed < event.at < late:
            event.at = late


def _recovered_failure(family: Family, scenario: Scenario, started: datetime) -> None:
    rng, service = family.rng, scenario.service
    bad_at = started - timedelta(minutes=rng.randint(150, 240))
    do, undo = family.edits.effective(service)
    family.commit(do, bad_at, failed=service)
    family.commit(undo, bad_at + timedelta(minutes=rng.randint(20, 40)))
    culprit_at = started - timedelta(minutes=rng.randint(4, 14))
    scenario.culprit = family.commit(family.edits.effective(service)[0], culprit_at)


def _shared_tag(family: Family, scenario: Scenario, started: datetime) -> None:
    rng, service = family.rng, scenario.service
    family.commit(family.edits.values(service)[0], started - timedelta(minutes=rng.randint(200, 300)))
    at = started - timedelta(minutes=rng.randint(4, 14))
    if rng.random() < 0.5:  # the sidecar moved to a tag the service's own application also has
        tag = TAGS[family.redis[service] + 1]
        scenario.culprit = family.sidecar(service, tag, at)
        scenario.variant = REDIS
    else:
        svc = family.writer.world.services[service]
        current = TAGS.index(f"{svc.tag[0]}.{svc.tag[1]}.{svc.tag[2]}")
        scenario.culprit = family.commit(family.image(service, TAGS[current + 1]), at)
        scenario.variant = f"{service}-app"


SLOTS = {"every_object": _every_object, "recovered_failure": _recovered_failure, "shared_tag": _shared_tag}


def app_repo(tmp: Path, name: str, base: datetime) -> str:
    """An application repository: two commits before each tag in TAGS; its bare path."""
    commits = []
    for index in range(len(TAGS)):
        for step in range(2):
            at = base + timedelta(hours=index, minutes=step)
            commits.append(Commit(repo=name, at=at, subject=f"{name}: work {index}.{step}",
                                  files={f"src/part{step}.go": f"package main // {name} {index}.{step}\n"},
                                  mark=len(commits) + 1))
    marks = build_repo(tmp / f"{name}.git", SimpleNamespace(commits=commits), name)  # type: ignore[arg-type]
    for index, tag in enumerate(TAGS):
        subprocess.run(["git", "--git-dir", str(tmp / f"{name}.git"), "tag", tag, marks[2 * index + 2]], check=True)
    return str(tmp / f"{name}.git")


def flux_body(family: Family, event: Applied, sha: str) -> dict[str, Any]:
    """The event notification-controller posts (fluxcd/pkg apis/event/v1)."""
    return {
        "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                           "name": event.object, "namespace": "flux-system"},
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{sha}"},
        "severity": "error" if event.failed else "info",
        "reason": "ValidationFailed" if event.failed else "ReconciliationSucceeded",
        "message": "dry-run failed: spec.replicas: Invalid value" if event.failed else "Reconciliation finished",
        "reportingController": "kustomize-controller", "timestamp": event.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def playbook(family: Family, service: str) -> Playbook:
    world = family.writer.world
    repos: list[dict[str, Any]] = [{"repo": f"{family.name}-{GITOPS}", "paths": world.own_paths(service),
                                    "shared_paths": world.shared_paths()}]
    if family.name == "shared_tag":  # the service's application first: a tag alone would name it
        repos += [{"repo": f"{service}-app", "role": "app"}, {"repo": REDIS, "role": "app"}]
    return Playbook.model_validate({
        "name": f"{family.name}-{service}", "service": service,
        "match": {"world": family.name, "service": service}, "repos": repos, "actions": {"on_open": "off"},
        "gitops": {"flux": [{"kind": "Kustomization", "namespace": "flux-system", "name": service}]}})


def run_family(family: Family, tmp: Path) -> tuple[list[dict[str, Any]], list[float]]:
    marks = build_repo(tmp / f"{family.name}-{GITOPS}.git", family.writer, GITOPS)
    repos = [RepoSettings(name=f"{family.name}-{GITOPS}", url=str(tmp / f"{family.name}-{GITOPS}.git"))]
    oldest = family.writer.commits[0].at
    if family.name == "shared_tag":
        for name in [*(f"{s}-app" for s in family.writer.world.services), REDIS]:
            repos.append(RepoSettings(name=name, url=app_repo(tmp, name, oldest - timedelta(days=2))))
    end = family.scenarios[-1].started_at + SLOT
    window = end - oldest + timedelta(days=4)
    settings = Settings(storage=StorageSettings(url=f"sqlite:///{tmp / family.name}.db"),
                        alertmanager=AlertmanagerSettings(auth="none"), repos=repos,
                        git=GitSettings(mirror_dir=tmp / f"mirrors-{family.name}", import_window=window),
                        playbooks_dir=tmp)
    playbooks = [playbook(family, s) for s in family.writer.world.services]
    app = bootstrap.build(settings, playbooks=playbooks, notifier=RecordingNotifier())
    store, git = app.ctx.store, app.ctx.git
    report = refresh_changes(store=store, git=git, repos=[r.name for r in repos], now=end, import_window=window)
    assert not report.failed, report.failed
    committed = {c.mark: c.at for c in family.writer.commits}
    for event in sorted(family.events, key=lambda e: (e.at, committed[e.mark])):  # as Flux would, in order
        parsed = FluxEvent.model_validate(flux_body(family, event, marks[event.mark])).to_event()
        record_controller_event(store=store, git=git, playbooks=playbooks, repos=[r.name for r in repos],
                                event=parsed, now=event.at, import_window=window)
    rows, timings = [], []
    for scenario in family.scenarios:
        scenario.culprit_sha = marks[scenario.culprit or 0]
        incident_id = open_incident(store, scenario, playbooks, world=family.name)
        began = time.perf_counter()
        ranking = rank_incident(store=store, playbooks=playbooks, incident_id=incident_id,
                                now=scenario.started_at + timedelta(minutes=3))
        timings.append(time.perf_counter() - began)
        row = evaluate(scenario, ranking)
        if family.name == "shared_tag":
            ranking = annotate_code(store=store, git=git, playbooks=playbooks, incident_id=incident_id,
                                    ranking=ranking)
            culprit = next((s for s in ranking.suspects if s.sha == scenario.culprit_sha), None)
            code = culprit.code if culprit is not None else ()
            row["code_right"] = bool(code) and all(c.repo == scenario.variant for c in code)
        rows.append(row)
    app.close()
    return rows, timings


def main() -> int:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=30, help="scenarios per family")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    end = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    columns = {"scenarios": "scenarios", "precision@1": "prec@1", "precision of confidence": "prec-conf",
               "confident and wrong": "conf-wrong", "top-1": "top-1", "recall@3": "recall@3",
               "wrong abstention": "wrong-abst"}
    print("== controller events, git only ==")
    print(f"{'family':<20}" + "".join(f"{label:>12}" for label in [*columns.values(), "code-right"]))
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="backout-controllers-") as tmp_name:
        for name in CONTROLLER_FAMILIES:
            rows, timings = run_family(build(name, args.per_family, args.seed, end), Path(tmp_name))
            figures = summarize(rows)
            code = [r["code_right"] for r in rows if "code_right" in r]
            figures["code right"] = sum(code) / len(code) if code else None
            figures["ranking_ms_p50"] = statistics.median(timings) * 1000
            report[name] = {"figures": figures, "scenarios": rows}
            cells = [figures.get(c) for c in columns] + [figures["code right"]]  # older run.py lacks some
            print(f"{name:<20}" + "".join(f"{'-':>12}" if v is None else f"{v:>12}" if isinstance(v, int)
                                          else f"{v:>12.3f}" for v in cells))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
