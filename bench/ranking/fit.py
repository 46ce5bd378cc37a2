"""Fit the ranking's timing constants on the benchmark's generated families.

Builds the benchmark once (bench/ranking/run.py), then ranks every scenario again for each point
of a small grid over the hazard (fast share, fast and slow half-lives, the alert's delay), the
evidence floor and the margin, git only, on the generated families (the replay family and another
seed check the choice), and prints the points that meet the most targets, best first. The constants
in bot/domain/ranking.py (HAZARD) and the policy defaults come from here; never from data kept for
checking.

Usage: python bench/ranking/fit.py [--seed S] [--per-family N] [--top K]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.run import FAMILIES, NEW_FAMILIES, TARGETS, bench, summarize
from bot import bootstrap
from bot.config import LoggingSettings
from bot.domain import ranking

GRID = {
    "fast_share": (0.8, 0.85, 0.9),
    "fast_half_life": (5, 10, 15),
    "slow_half_life": (60, 120),
    "floor": (0.2, 0.3),
    "tie_ratio": (1.5, 2.0, 3.0),
    "alert_delay": (0, 5, 8, 12),
}


def targets_met(rows: list[dict[str, Any]]) -> tuple[int, int, dict[str, Any]]:
    """How many of the issue's targets a run meets, out of how many, and the overall figures."""
    by_family = {family: summarize([r for r in rows if r["family"] == family]) for family in FAMILIES}
    overall = summarize(rows)
    checks = []
    for name, (op, target) in TARGETS.items():
        value = overall[name]
        checks.append(value is not None and (value >= target if op == ">=" else value <= target))
    for family in FAMILIES:
        value = by_family[family]["precision of confidence"]
        if value is not None and FAMILIES[family] != "abstain":
            checks.append(value >= 0.97)
    for family in NEW_FAMILIES:
        value = by_family[family]["precision@1"]
        if value is not None:
            checks.append(value >= 0.95)
    dense = by_family["dense"]["wrong abstention"]
    checks.append(dense is not None and dense <= 0.05)
    overall = {**overall, "two_close confident": by_family["two_close"]["confident and wrong"],
               "dense wrong abstention": dense, "slow_burn confident": by_family["slow_burn"]["confident and wrong"]}
    return sum(checks), len(checks), overall


def main() -> int:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    results = []
    with bench(per_family=args.per_family, worlds=4, seed=args.seed, replay=False) as built:
        original = list(built.playbooks)
        for share, fast, slow, floor, tie, delay in itertools.product(*GRID.values()):
            ranking.HAZARD = ranking.Hazard(fast_share=share, fast_half_life=timedelta(minutes=fast),
                                              slow_half_life=timedelta(minutes=slow),
                                              alert_delay=timedelta(minutes=delay))
            built.playbooks[:] = [p.model_copy(update={"suspects": p.suspects.model_copy(
                update={"min_confidence": floor, "tie_ratio": tie})}) for p in original]
            rows, _ = built.rank(None)
            met, total, overall = targets_met(rows)
            results.append((met, overall["precision@1"] or 0.0, (share, fast, slow, floor, tie, delay), overall))
    results.sort(key=lambda r: (-r[0], -r[1]))
    names = ["prec@1", "prec-conf", "conf-wrong", "wrong-abst", "abstain(no)", "tie|right", "2close-conf",
             "dense-abst", "slow-conf"]
    keys = ["precision@1", "precision of confidence", "confident and wrong", "wrong abstention",
            "abstention (no cause)", "tie or right", "two_close confident", "dense wrong abstention",
            "slow_burn confident"]
    print(f"{'share':>6}{'fast':>6}{'slow':>6}{'floor':>7}{'tie':>5}{'delay':>6}{'met':>8}"
          + "".join(f"{n:>12}" for n in names))
    for met, _, (share, fast, slow, floor, tie, delay), overall in results[:args.top]:
        print(f"{share:>6}{fast:>6}{slow:>6}{floor:>7}{tie:>5}{delay:>6}{met:>4}/{total:<3}"
              + "".join(f"{overall[k]:>12.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
