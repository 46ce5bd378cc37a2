"""The replay family: real public GitOps histories with incidents laid minutes after real commits.

Each data file in `replay/` (written by `replay_data.py`, sources and licences in
`replay/README.md`) holds a few hundred commits of a real repository's first-parent history:
their times, subjects and the YAML/JSON files they changed under the deploy root. The history
is rebuilt as a real bare repository with git fast-import at its own commit times, moved by
whole days so that it ends before the bench's `end` (times of day and gaps stay real).
Services come from the layout: each application folder is one (its folder, and the Flux
Kustomization file beside it), the repository's cluster-wide folders are shared paths.

Incidents, each expecting one confident culprit:
- "sampled": an effective commit to a service, the alert minutes after it was applied (the
  generated families' delays: 4-25 minutes for 85%, 25-90 for 15%; applied = commit + the
  playbook's 2-minute sync_delay).
- "reverted": a commit later reverted on the branch, a natural culprit, placed the same way and
  ranked before its revert is committed (the delay is shortened to fit when the revert came
  fast; a revert within 8 minutes leaves no room and is skipped).
Laid only where the real history makes the commit the answer: no other effective change to the
service or to its shared paths is applied between the culprit and the ranking (it would be the
more recent change: the tie families measure that), and the culprit is not reverted by then.

Usage: python bench/ranking/replay.py [--per-repository N] [--seed S] [--git-only]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.run import KeyMetric, build_repo, evaluate, key_query, summarize
from bench.ranking.scenarios import FAMILIES, Commit, Scenario, Writer
from bench.ranking.worlds import GITOPS
from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.git.classify import classify
from bot.config import AlertmanagerSettings, GitSettings, LoggingSettings, RepoSettings, Settings, StorageSettings
from bot.domain.changes import NO_EFFECT, matches_any
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.changelog import refresh_changes
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident

DATA_DIR = Path(__file__).resolve().parent / "replay"
FAMILY = "replay"
FAMILIES.setdefault(FAMILY, "culprit")  # run.py's evaluate reads the expected answer from here
SYNC_DELAY = timedelta(minutes=2)  # the playbook default: applied = committed + sync_delay
RANKED_AFTER = timedelta(minutes=3)  # run.py ranks each incident three minutes after it starts
FIRST_NUMBER = 100_000  # scenario numbers apart from the generated families' (alert names, seeds)
SHARED = "(shared)"

Edit = tuple[int, int, list[str]]  # replace lines [first, past) with these


def apply_edits(old: str, edits: list[Edit]) -> str:
    """A file's new text from its old text and line edits listed last first."""
    lines = old.splitlines(keepends=True)
    for first, past, replacement in edits:
        lines[first:past] = replacement
    return "".join(lines)


@dataclass
class ReplayCommit:
    at: datetime
    subject: str
    sha: str  # the original commit, for the reader; the rebuilt one differs
    reverts: int | None  # index of the earlier commit of the window it undoes
    files: dict[str, str | None]  # the new full text; None where deleted


@dataclass
class History:
    repository: str  # owner/name
    pinned: str
    root: str
    apps: str
    shared: tuple[str, ...]
    base: dict[str, str]
    commits: list[ReplayCommit]

    @property
    def world(self) -> str:
        return self.repository.lower().replace("/", "-")


def load(path: Path) -> History:
    """A data file, its line edits applied: every commit with its files' full text."""
    data = json.loads(path.read_text())
    text: dict[str, str] = dict(data["base"])
    commits = []
    for raw in data["commits"]:
        files: dict[str, str | None] = {}
        for name, change in raw["files"].items():
            new = apply_edits(text[name], change) if isinstance(change, list) else change
            files[name] = new
            if new is None:
                text.pop(name, None)
            else:
                text[name] = new
        commits.append(ReplayCommit(at=datetime.fromtimestamp(raw["time"], UTC), subject=raw["subject"],
                                    sha=raw["sha"], reverts=raw["reverts"], files=files))
    return History(repository=data["repository"], pinned=data["pinned"], root=data["root"], apps=data["apps"],
                   shared=tuple(data["shared"]), base=data["base"], commits=commits)


def histories() -> list[History]:
    """Every replay data file, by name."""
    return [load(path) for path in sorted(DATA_DIR.glob("*.json"))]


def service_globs(folder: str) -> tuple[str, ...]:
    """An application's paths: its folder and the Flux Kustomization file named after it beside it."""
    return (f"{folder}/**", f"{folder}.yaml")


def services(history: History) -> dict[str, str]:
    """Application folders (the `apps` glob's depth, not under a shared path) -> service names."""
    depth = len(history.apps.split("/"))
    folders = set()
    for commit in [history.base, *(c.files for c in history.commits)]:
        for path in commit:
            parts = path.split("/")
            folder = "/".join(parts[:depth])
            if len(parts) > depth and matches_any(folder + "/", (history.apps + "/",)) and not matches_any(
                    path, history.shared):
                folders.add(folder)
    # the service name: the folder below the root, readable in a label
    return {f: f.removeprefix(history.root).replace("/", "-").lower() for f in sorted(folders)}


def owner(path: str, *, history: History, folders: dict[str, str]) -> str | None:
    """The service a path belongs to, SHARED for a shared path, else None."""
    if matches_any(path, history.shared):
        return SHARED
    return next((folders[f] for f in folders if matches_any(path, service_globs(f))), None)


def effective_owners(history: History) -> list[set[str]]:
    """Per commit, the services (and SHARED) it changed the deployed state of, as Backout classifies."""
    folders = services(history)
    text = dict(history.base)
    found = []
    for commit in history.commits:
        owners = set()
        for path, new in commit.files.items():
            old = text.get(path)
            effects, _ = classify(path, None if old is None else old.encode(), None if new is None else new.encode())
            who = owner(path, history=history, folders=folders)
            if who is not None and not set(effects) <= NO_EFFECT:
                owners.add(who)
            if new is None:
                text.pop(path, None)
            else:
                text[path] = new
        found.append(owners)
    return found


def build(bare: Path, history: History, *, shift: timedelta) -> list[str]:
    """The history as a real bare repository (a base commit, then the window); the window's shas."""
    commits = [Commit(repo=GITOPS, at=history.commits[0].at + shift - timedelta(days=1), mark=1,
                      subject=f"Replay base: {history.repository} before the window", files=dict(history.base))]
    commits += [Commit(repo=GITOPS, at=c.at + shift, subject=c.subject or "(no subject)", files=c.files,
                       mark=index + 2, reverts_mark=None if c.reverts is None else c.reverts + 2)
                for index, c in enumerate(history.commits)]
    with warnings.catch_warnings():  # build_repo leaves fast-import's stdout to the collector
        warnings.simplefilter("ignore", ResourceWarning)
        marks = build_repo(bare, cast(Writer, SimpleNamespace(commits=commits)), GITOPS)  # reads only .commits
    return [marks[index + 2] for index in range(len(history.commits))]


def delay(rng: random.Random) -> float:
    """Minutes from applied to the alert: the generated families' distribution."""
    return rng.uniform(4, 25) if rng.random() < 0.85 else rng.uniform(25, 90)


@dataclass
class Placed:
    """A replay scenario and its culprit's index in the window (the data file's commit order)."""

    scenario: Scenario
    culprit: int
    reverted: list[int]  # window indexes reverted before the incident started


def lay(history: History, *, rng: random.Random, shift: timedelta, per_repository: int) -> tuple[
        list[Placed], dict[str, int]]:
    """The history's scenarios ("sampled", then every usable "reverted"), and why others were skipped."""
    owners = effective_owners(history)
    applied = [c.at + shift + SYNC_DELAY for c in history.commits]
    reverted_at: dict[int, datetime] = {}  # a change counts as reverted once its revert is committed
    for commit in history.commits:
        if commit.reverts is not None and commit.reverts not in reverted_at:
            reverted_at[commit.reverts] = commit.at + shift
    skipped: dict[str, int] = defaultdict(int)

    def place(index: int, service: str, minutes: float, variant: str) -> Placed | None:
        started = applied[index] + timedelta(minutes=minutes)
        ranked = started + RANKED_AFTER
        if any(j != index and applied[index] <= applied[j] <= ranked and owners[j] & {service, SHARED}
               for j in range(len(applied))):
            skipped[f"{variant}: a later effective change to the service or shared paths"] += 1
            return None
        if reverted_at.get(index, ranked + timedelta(seconds=1)) <= ranked:
            skipped[f"{variant}: reverted before the ranking"] += 1
            return None
        # the key metric moves a minute or so after the culprit is applied, as in the generated families
        onset = min(-1.0, max(-minutes + rng.uniform(0.5, 3), -rng.uniform(4, 10)))
        scenario = Scenario(number=0, world=history.world, family=FAMILY, service=service, started_at=started,
                            onset=started + timedelta(minutes=onset), variant=variant, culprit=index + 2)
        return Placed(scenario, index, [j for j, at in reverted_at.items() if at <= started])

    placed: list[Placed] = []
    pairs = [(i, service) for i, found in enumerate(owners) if i not in reverted_at
             for service in sorted(found - {SHARED})]
    rng.shuffle(pairs)
    for index, service in pairs:
        if len(placed) >= per_repository:
            break
        if (laid := place(index, service, delay(rng), "sampled")) is not None:
            placed.append(laid)
    for commit in history.commits:
        culprit = commit.reverts
        if culprit is None or culprit in {p.culprit for p in placed if p.scenario.variant == "reverted"}:
            continue
        targets = sorted(owners[culprit] - {SHARED})
        if not targets:
            skipped["reverted: no effective change to a service"] += 1
            continue
        minutes = delay(rng)
        gap = (reverted_at[culprit] - applied[culprit]) / timedelta(minutes=1)
        if minutes + RANKED_AFTER / timedelta(minutes=1) >= gap:  # ranked before the revert is committed
            if gap < 4 + 3 + 1:
                skipped["reverted: reverted within 8 minutes"] += 1
                continue
            minutes = rng.uniform(4, gap - 4)
        if (laid := place(culprit, targets[0], minutes, "reverted")) is not None:
            placed.append(laid)
    return placed, dict(skipped)


def shift_for(history: History, end: datetime) -> timedelta:
    """Whole days that move the history to end at least three hours before `end`."""
    return timedelta(days=(end - timedelta(hours=3) - history.commits[-1].at) // timedelta(days=1))


def oldest(end: datetime) -> datetime:
    """The earliest commit of the rebuilt histories: the bench's import window must reach it."""
    return min(h.commits[0].at + shift_for(h, end) - timedelta(days=1) for h in histories())


def replay_scenarios(tmp: Path, end: datetime, *, per_repository: int = 60, seed: int = 7) -> tuple[
        list[RepoSettings], list[Playbook], list[Scenario]]:
    """The replay family for run.py: the rebuilt repositories under `tmp`, a playbook per service
    with an incident, and the scenarios, their culprit shas filled in."""
    rng = random.Random(seed)
    repos, playbooks, scenarios = [], [], []
    for history in histories():
        shift = shift_for(history, end)
        bare = tmp / f"{history.world}.git"
        shas = build(bare, history, shift=shift)
        repos.append(RepoSettings(name=history.world, url=str(bare), branch="main"))
        placed, _ = lay(history, rng=rng, shift=shift, per_repository=per_repository)
        folders = {name: folder for folder, name in services(history).items()}
        for service in sorted({p.scenario.service for p in placed}):
            playbooks.append(Playbook.model_validate({
                "name": f"{history.world}-{len(playbooks)}", "service": service,
                "match": {"world": history.world, "service": service},
                "repos": [{"repo": history.world, "paths": service_globs(folders[service]),
                           "shared_paths": history.shared}],
                "actions": {"on_open": "off"},
                "key_query": key_query(history.world, service), "verify": {"below": 0.05}}))
        for laid in placed:
            laid.scenario.number = FIRST_NUMBER + len(scenarios)
            laid.scenario.culprit_repo = history.world
            laid.scenario.culprit_sha = shas[laid.culprit]
            laid.scenario.reverted_shas = [shas[j] for j in laid.reverted]
            scenarios.append(laid.scenario)
    return repos, playbooks, scenarios


def main() -> int:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-repository", type=int, default=60, help="sampled scenarios per repository")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--git-only", action="store_true", help="skip the run with the key metric")
    args = parser.parse_args()

    end = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    for history in histories():
        _, skipped = lay(history, rng=random.Random(args.seed), shift=shift_for(history, end),
                         per_repository=args.per_repository)
        print(f"{history.repository} at {history.pinned[:12]}: {len(history.commits)} commits, "
              f"{len(services(history))} services; skipped: {skipped}")
    with tempfile.TemporaryDirectory(prefix="backout-replay-") as tmp_name:
        tmp = Path(tmp_name)
        repos, playbooks, scenarios = replay_scenarios(tmp, end, per_repository=args.per_repository,
                                                       seed=args.seed)
        window = end - oldest(end) + timedelta(days=2)
        settings = Settings(
            storage=StorageSettings(url=f"sqlite:///{tmp / 'bench.db'}"),
            alertmanager=AlertmanagerSettings(auth="none"), repos=repos,
            git=GitSettings(mirror_dir=tmp / "mirrors", import_window=window), playbooks_dir=tmp)
        app = bootstrap.build(settings, playbooks=playbooks, notifier=RecordingNotifier())
        report = refresh_changes(store=app.ctx.store, git=app.ctx.git, repos=[r.name for r in repos], now=end,
                                 import_window=window)
        assert not report.failed, report.failed
        incidents = [_open(app.ctx.store, scenario, playbooks) for scenario in scenarios]
        runs = [("git only", None), ("with the key metric", KeyMetric(scenarios))][:1 if args.git_only else 2]
        for mode, metrics in runs:
            rows, ms = [], []
            for scenario, incident_id in zip(scenarios, incidents, strict=True):
                extra = {"metrics": metrics} if metrics is not None else {}
                began = time.perf_counter()
                ranking = rank_incident(store=app.ctx.store, playbooks=playbooks, incident_id=incident_id,
                                        now=scenario.started_at + RANKED_AFTER, **extra)
                ms.append((time.perf_counter() - began) * 1000)
                rows.append({**evaluate(scenario, ranking), "repository": scenario.world})
            _print(mode, rows, sorted(ms))
        app.close()
    return 0


def _open(store: Any, scenario: Scenario, playbooks: list[Playbook]) -> int:
    """The scenario's incident, opened through the ingestion service as run.py does."""
    alert = ReceivedAlert(
        fingerprint=f"{scenario.number:016x}", starts_at=scenario.started_at, ends_at=None,
        status=AlertStatus.FIRING, annotations={},
        labels={"alertname": f"Bench{scenario.number}", "service": scenario.service, "world": scenario.world})
    outcome = ingest_delivery(
        store=store, delivery=Delivery(group_key=f"g{scenario.number}", status=AlertStatus.FIRING, alerts=(alert,)),
        playbooks=playbooks, policy=IncidentPolicy(), now=scenario.started_at + timedelta(minutes=1))
    return outcome.opened[0].id or 0


def _print(mode: str, rows: list[dict[str, Any]], ms: list[float]) -> None:
    """Per source repository, per variant and overall, in run.py's table format."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["repository"], r["variant"])):
        groups[row["repository"]].append(row)
    for row in rows:
        groups[f"{row['variant']} (all)"].append(row)
    groups["overall"] = rows
    figures = {name: summarize(group) for name, group in groups.items()}
    columns = [c for c in figures["overall"] if c != "reverted proposed"]
    print(f"\n== {mode} ==")
    print(f"{'replay':<28}" + "".join(f"{c[:11]:>12}" for c in columns))
    for name, figure in figures.items():
        cells = (f"{'-':>12}" if figure[c] is None else f"{figure[c]:>12}" if isinstance(figure[c], int)
                 else f"{figure[c]:>12.3f}" for c in columns)
        print(f"{name:<28}" + "".join(cells))
    print(f"ranking time per incident: p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, "
          f"max {ms[-1]:.1f} ms")
    wrong = [r for r in rows if r["confident"] and not r["right"]]
    print(f"confident and wrong: {len(wrong)}; reverted proposed: {figures['overall']['reverted proposed']}")


if __name__ == "__main__":
    sys.exit(main())
