"""Review risk on real GitOps histories: which later culprits would have been flagged at review,
and how many innocent pull requests would have been.

The ranking benchmark's replay family (bench/ranking/replay.py: real public Flux histories with
incidents laid minutes after real commits, seed 7, as `run.py` lays them) walked in commit
order: every commit is a pull request reviewed at its commit time, with its files and reverts as
Backout imports them (the history rebuilt as a real Git repository, as replay.py does, and read
by Backout's own mirror: git's rename detection, then bot/adapters/git/classify.py). The past
causes are the culprits of the incidents that started before it, as if a responder had confirmed
them (those laid on a reverted commit count as reverted), each scoped to its service's paths
(the replay playbooks' paths and shared paths). Every rule is `bot.domain.review_risk.assess`
with its options; "first" is the model's first version (same file or directory, no lookback,
every file of a cause, reverts and image bumps not told apart).

- recall: of the culprits reviewed after at least one incident of their history had started,
  the share flagged;
- flag rate: of the other commits with an effect on the deployed state reviewed after at least
  one incident had started, the share flagged (commits with no effect are never flagged, and
  before the first incident nothing can be).

The replay family lays up to 60 incidents per history on commits drawn at random among the
effective ones, besides the commits the team reverted: there a rule's recall can only follow its
flag rate. `--per-repository 0` keeps the reverted commits alone, the real culprits;
`--per-repository 5` is about one incident every four days. docs/review-risk.md reads the figures.

Usage: python bench/review_risk.py [--per-repository N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ranking.replay import build, lay
from bench.ranking.replay_history import History, histories, service_globs, services
from bot import bootstrap
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.config import LoggingSettings
from bot.domain.changes import Change
from bot.domain.review_risk import CauseSource, MatchRule, PastCause, ReviewedChange, Rules, assess


@dataclass(frozen=True)
class Reviewed:
    """One commit of a history as a pull request under review."""

    change: ReviewedChange
    at: datetime
    culprit: str | None  # the variant of the incident laid on it: "reverted", "sampled"
    causes: tuple[PastCause, ...]  # incidents started before it, each scoped to its service's paths


Rule = Callable[[Reviewed], bool]


def imported(history: History, tmp: Path) -> tuple[list[Change], dict[str, tuple[str, ...]]]:
    """The history rebuilt as a real repository and read by Backout's own mirror, as `serve`
    imports it (git's rename detection included): its commits in window order, and per commit
    the shas it reverts."""
    bare = tmp / f"{history.world}.git"
    shas = build(bare, history, shift=timedelta(0))
    mirrors = GitMirrors({history.world: RepoSpec(name=history.world, url=str(bare), branch="main",
                                                  runner=GitRunner(timeout=120))}, mirror_dir=tmp / "mirrors")
    fetched = mirrors.refresh(history.world, since_sha=None, not_before=history.commits[0].at - timedelta(hours=1))
    by_sha = {change.sha: change for change in fetched.changes}
    reverts: dict[str, tuple[str, ...]] = defaultdict(tuple)
    for revert in fetched.reverts:
        reverts[revert.by_sha] += (revert.target,)
    return [by_sha[sha] for sha in shas], reverts


def walk(history: History, tmp: Path, *, rng: random.Random, per_repository: int) -> tuple[list[Reviewed], int]:
    """The history's commits as reviewed pull requests; and how many incidents were laid on it."""
    placed, _ = lay(history, rng=rng, shift=timedelta(0), per_repository=per_repository)
    changes, reverts = imported(history, tmp)
    scopes = {name: (*service_globs(folder), *history.shared) for folder, name in services(history).items()}
    causes = sorted((PastCause(
        incident_id=number, service=p.scenario.service, repo=history.world, sha=changes[p.culprit].sha,
        started_at=p.scenario.started_at, files=changes[p.culprit].files, scope=scopes[p.scenario.service],
        source=CauseSource.REVERTED if p.scenario.variant == "reverted" else CauseSource.VERDICT)
        for number, p in enumerate(placed, start=1)), key=lambda c: c.started_at)
    culprits = {p.culprit: p.scenario.variant for p in placed}  # a reverted commit is never also sampled
    return [Reviewed(
        change=ReviewedChange(repo=history.world, number=index + 1, head_sha=change.sha, files=change.files,
                              reverts=reverts[change.sha]),
        at=change.committed_at, culprit=culprits.get(index),
        causes=tuple(c for c in causes if c.started_at < change.committed_at))
        for index, change in enumerate(changes)], len(placed)


def model(*, reverts: bool = True, aged: bool = True, scoped: bool = True, **rules: Any) -> Rule:
    """The model's rule with these options; without `reverts` a revert of a cause is not told
    apart, without `aged` causes of any age count, without `scoped` every file of a cause counts."""
    def flagged(item: Reviewed) -> bool:
        change = item.change if reverts else replace(item.change, reverts=())
        causes = item.causes if scoped else [replace(c, scope=()) for c in item.causes]
        return assess(change, causes, now=item.at if aged else None,
                      rules=Rules(**rules)).flagged
    return flagged


FIRST = {"reverts": False, "aged": False, "scoped": False, "other_images": True}  # the model's first version
RULES: list[tuple[str, Rule]] = [
    ("same file", model(**FIRST, match=MatchRule.FILE)),
    ("same file or dir (first)", model(**FIRST)),
    ("service's paths", model(**{**FIRST, "scoped": True}, match=MatchRule.SERVICE)),
    ("dir, not a cause's revert", model(aged=False, scoped=False, other_images=True)),
    ("dir, not another image", model(reverts=False, aged=False, scoped=False)),
    ("dir, cause in its service", model(reverts=False, aged=False, other_images=True)),
    ("dir, all three (the model)", model()),
    ("file, all three", model(match=MatchRule.FILE)),
    ("the model, lookback 30d", model(lookback=timedelta(days=30))),
    ("the model, lookback 7d", model(lookback=timedelta(days=7))),
]


@dataclass
class Tally:
    """Flagged over reviewed, for culprits (all, and those of reverted commits) and innocent commits."""

    culprits: list[int]
    reverted: list[int]
    innocent: list[int]

    @classmethod
    def of(cls, items: Sequence[Reviewed], rule: Rule) -> Tally:
        tally = cls([0, 0], [0, 0], [0, 0])
        for item in items:
            if not item.causes or not any(f.effective for f in item.change.files):
                continue  # nothing to meet yet, or nothing the deployed state would see
            hit = int(rule(item))
            groups = [tally.innocent] if item.culprit is None else [tally.culprits]
            groups += [tally.reverted] if item.culprit == "reverted" else []
            for group in groups:
                group[0] += hit
                group[1] += 1
        return tally

    def cells(self) -> str:
        return "".join(f"{hit:>6}/{total:<5}{hit / total if total else 0:>6.3f}"
                       for hit, total in (self.culprits, self.reverted, self.innocent))


def _cost(items: Sequence[Reviewed]) -> str:
    """CPU per assessment by the model, with the causes as a store gives them (fresh objects, so no
    path sets cached by the rules before; their copying is counted)."""
    most = max(len(item.causes) for item in items)
    cpu = time.process_time()
    for item in items:
        assess(item.change, [replace(c) for c in item.causes], now=item.at)
    per = (time.process_time() - cpu) / len(items)
    return f"the model: {per * 1e6:.0f} us CPU per request against up to {most} causes"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-repository", type=int, default=60, help="sampled incidents per history (as run.py)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    began, cpu = time.perf_counter(), time.process_time()
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    rng = random.Random(args.seed)  # one generator across the histories, in order, as replay.py's
    walked = []
    with tempfile.TemporaryDirectory(prefix="backout-review-risk-") as tmp:
        for history in histories():
            items, incidents = walk(history, Path(tmp), rng=rng, per_repository=args.per_repository)
            walked.append((history.world, items, incidents))
    print(f"{len(walked)} histories, {sum(len(items) for _, items, _ in walked)} commits reviewed, "
          f"{sum(n for _, _, n in walked)} incidents (seed {args.seed}, up to {args.per_repository} "
          f"sampled per history beside the reverted commits)")
    print(f"{'rule':<28}{'history':<26}{'culprits flagged':>23}{'reverted culprits':>23}{'innocent flagged':>23}")
    for name, rule in RULES:
        for world, items, _ in walked:
            print(f"{name:<28}{world:<26}{Tally.of(items, rule).cells()}")
        everything = [item for _, items, _ in walked for item in items]
        print(f"{name:<28}{'all':<26}{Tally.of(everything, rule).cells()}")
    print(f"{time.perf_counter() - began:.1f} s ({time.process_time() - cpu:.1f} s CPU), "
          f"load average {os.getloadavg()[0]:.2f}; {_cost(everything)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
