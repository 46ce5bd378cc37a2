"""The review-risk benchmark, on the team's own reverts: it runs through real git and Backout's
mirror, and the model flags fewer innocent requests than its first version, catching as many."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def totals(output: str) -> dict[str, tuple[int, int, int, int]]:
    """Rule -> (culprits flagged, culprits, innocent flagged, innocent), from the 'all' rows."""
    found = {}
    for line in output.splitlines():
        row = re.match(r"^(.+?)\s+all\s+(\d+)/(\d+)\s+\S+\s+\d+/\d+\s+\S+\s+(\d+)/(\d+)", line)
        if row:
            caught, culprits, flagged, innocent = (int(n) for n in row.groups()[1:])
            found[row.group(1).strip()] = (caught, culprits, flagged, innocent)
    return found


def test_the_benchmark_runs_on_the_reverted_commits_alone() -> None:
    """`--per-repository 0`: the five histories, their reverted commits as incidents, every rule's totals."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "review_risk.py"), "--per-repository", "0"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "5 histories, 1240 commits reviewed" in done.stdout
    rows = totals(done.stdout)
    first, model = rows["same file or dir (first)"], rows["dir, all three (the model)"]
    assert model[0] == first[0]  # the same culprits caught
    assert model[2] < first[2]  # fewer innocent requests flagged
    assert rows["dir, not a cause's revert"][2] < first[2]  # a revert of a cause is not flagged for it
