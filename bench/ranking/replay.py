"""The replay family: real public GitOps histories with incidents laid minutes after real commits.

Each data file in `replay/` (written by `replay_data.py`, sources and licences in
`replay/README.md`, read by `replay_history.py`) holds a few hundred commits of a real
repository's first-parent history. It is rebuilt as a real bare repository with git fast-import
at its own commit times, moved by whole days so that it ends before the bench's `end` (times of
day and gaps stay real), and imported by Backout's own mirror and change log.

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
Effective is as Backout classifies at import (a move within a folder has no effect); incidents
on one service are at least 7 hours apart; a reverted commit that changed several services is
the culprit on the first of them (by name). Where another effective change to the service was
applied up to 12 minutes before the culprit (the two_close family's widest gap), nothing tells the
two apart: that incident is in family "replay_close", where a tie is the right answer.

Usage: python bench/ranking/replay.py [--per-repository N] [--seed S] [--git-only]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.replay_history import SHARED, History, effective_owners, histories, service_globs, services
from bench.ranking.run import KeyMetric, bench, build_repo, key_query, summarize
from bench.ranking.scenarios import FAMILIES, Commit, Scenario, Writer
from bench.ranking.worlds import GITOPS
from bot import bootstrap
from bot.config import LoggingSettings, RepoSettings
from bot.domain.playbooks import Playbook

FAMILY = "replay"
CLOSE_FAMILY = "replay_close"  # another effective change minutes before the culprit: a tie is right
CLOSE = timedelta(minutes=12)  # the two_close family's widest gap
assert (FAMILIES[FAMILY], FAMILIES[CLOSE_FAMILY]) == ("culprit", "tie")  # run.py reads them from scenarios.py
SYNC_DELAY = timedelta(minutes=2)  # the playbook default: applied = committed + sync_delay
RANKED_AFTER = timedelta(minutes=3)  # run.py ranks each incident three minutes after it starts
# Incidents on one service stay apart by more than the lookback: the key metric's generated series
# (run.py's KeyMetric) shows one incident per query window.
SPACING = timedelta(hours=7)
FIRST_NUMBER = 100_000  # scenario numbers apart from the generated families' (alert names, seeds)
BASE_BEFORE = timedelta(days=1)  # the base commit (the files as they were before the window)


def build(bare: Path, history: History, *, shift: timedelta) -> list[str]:
    """The history as a real bare repository (a base commit, then the window); the window's shas."""
    commits = [Commit(repo=GITOPS, at=history.commits[0].at + shift - BASE_BEFORE, mark=1,
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
    """The history's scenarios (every usable "reverted", then "sampled"), and why others were skipped."""
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
        if any(p.scenario.service == service and abs(p.scenario.started_at - started) < SPACING for p in placed):
            skipped[f"{variant}: another incident on the service within 7 hours"] += 1
            return None
        if any(j != index and applied[index] <= applied[j] <= ranked and owners[j] & {service, SHARED}
               for j in range(len(applied))):
            skipped[f"{variant}: a later effective change to the service or shared paths"] += 1
            return None
        if reverted_at.get(index, ranked + timedelta(seconds=1)) <= ranked:
            skipped[f"{variant}: reverted before the ranking"] += 1
            return None
        # the key metric moves a minute or so after the culprit is applied, as in the generated families
        onset = min(-1.0, max(-minutes + rng.uniform(0.5, 3), -rng.uniform(4, 10)))
        # Another effective change applied minutes before it is as likely, as in the two_close family.
        close = any(j != index and applied[index] - CLOSE <= applied[j] <= applied[index]
                    and owners[j] & {service, SHARED} for j in range(len(applied)))
        scenario = Scenario(number=0, world=history.world, family=CLOSE_FAMILY if close else FAMILY,
                            service=service, started_at=started,
                            onset=started + timedelta(minutes=onset), variant=variant, culprit=index + 2)
        return Placed(scenario, index, [j for j, at in reverted_at.items() if at <= started])

    placed: list[Placed] = []
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
    pairs = [(i, service) for i, found in enumerate(owners) if i not in reverted_at
             for service in sorted(found - {SHARED})]
    rng.shuffle(pairs)
    for index, service in pairs:
        if sum(p.scenario.variant == "sampled" for p in placed) >= per_repository:
            break
        if (laid := place(index, service, delay(rng), "sampled")) is not None:
            placed.append(laid)
    return placed, dict(skipped)


def shift_for(history: History, end: datetime) -> timedelta:
    """Whole days that move the history to end at least three hours before `end`."""
    return timedelta(days=(end - timedelta(hours=3) - history.commits[-1].at) // timedelta(days=1))


def oldest(end: datetime) -> datetime:
    """The earliest commit of the rebuilt histories: the bench's import window must reach it."""
    return min(h.commits[0].at + shift_for(h, end) - BASE_BEFORE for h in histories())


@dataclass
class Replay:
    """The replay family built: what run.py needs, and what was skipped in each history and why."""

    repos: list[RepoSettings]
    playbooks: list[Playbook]
    scenarios: list[Scenario]
    notes: list[str]
    oldest: datetime  # the earliest rebuilt commit: the import window must reach it
    commits: int = 0


def replay(tmp: Path, end: datetime, *, per_repository: int = 60, seed: int = 7) -> Replay:
    """Every history rebuilt under `tmp` to end before `end`, a playbook per service with an
    incident, and the scenarios with their culprit shas filled in."""
    rng = random.Random(seed)
    built = Replay([], [], [], [], oldest=end)
    for history in histories():
        shift = shift_for(history, end)
        bare = tmp / f"{history.world}.git"
        shas = build(bare, history, shift=shift)
        built.commits += len(shas)
        built.oldest = min(built.oldest, history.commits[0].at + shift - BASE_BEFORE)
        built.repos.append(RepoSettings(name=history.world, url=str(bare), branch="main"))
        placed, skipped = lay(history, rng=rng, shift=shift, per_repository=per_repository)
        folders = {name: folder for folder, name in services(history).items()}
        built.notes.append(f"{history.world} ({history.repository} at {history.pinned[:12]}): "
                           f"{len(history.commits)} commits, {len(folders)} services, {len(placed)} incidents; "
                           f"skipped: {skipped}")
        for service in sorted({p.scenario.service for p in placed}):
            built.playbooks.append(Playbook.model_validate({
                "name": f"{history.world}-{len(built.playbooks)}", "service": service,
                "match": {"world": history.world, "service": service},
                "repos": [{"repo": history.world, "paths": service_globs(folders[service]),
                           "shared_paths": history.shared}],
                "actions": {"on_open": "off"},
                "key_query": key_query(history.world, service), "verify": {"below": 0.05}}))
        for laid in placed:
            laid.scenario.number = FIRST_NUMBER + len(built.scenarios)
            laid.scenario.culprit_repo = history.world
            laid.scenario.culprit_sha = shas[laid.culprit]
            laid.scenario.reverted_shas = [shas[j] for j in laid.reverted]
            built.scenarios.append(laid.scenario)
    return built


def main() -> int:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-repository", type=int, default=60, help="sampled scenarios per repository")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--git-only", action="store_true", help="skip the run with the key metric")
    args = parser.parse_args()

    # run.py's path with no generated family: only the replayed histories' incidents
    with bench(per_family=0, worlds=1, seed=args.seed, per_repository=args.per_repository) as built:
        runs = [("git only", None), ("with the key metric", KeyMetric(built.scenarios))][:1 if args.git_only else 2]
        for mode, metrics in runs:
            rows, seconds = built.rank(metrics)
            rows = [{**row, "repository": scenario.world} for row, scenario in zip(rows, built.scenarios, strict=True)]
            _print(mode, rows, sorted(t * 1000 for t in seconds))
    return 0


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
    print(f"confident on another change than the culprit: {len(wrong)} (a confident answer in replay_close, "
          f"where a tie is right, counts in 'confident and wrong' above); "
          f"reverted proposed: {figures['overall']['reverted proposed']}")


if __name__ == "__main__":
    sys.exit(main())
