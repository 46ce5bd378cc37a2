"""The ranking benchmark, small: labelled scenarios through the real mirror, import and ranking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_ranking_meets_its_targets_on_a_small_run(tmp_path: Path) -> None:
    """Eight scenarios per family, another seed than the default, and the replay family: with the key
    metric, precision@1 holds overall, on the dense family and on real histories, no reverted
    change is proposed, and no-effect commits never come first."""
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ranking" / "run.py"), "--per-family", "8",
                           "--seed", "3", "--json", str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    # It exits 1 while a target is not met (docs/ranking.md states which and why); it must finish.
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    report = json.loads(out.read_text())
    full = report["with the key metric"]["figures"]
    assert full["overall"]["precision@1"] >= 0.95
    assert full["dense"]["wrong abstention"] <= 0.05  # several effective changes an hour: the latest
    assert full["replay"]["precision@1"] >= 0.95  # real commit histories
    assert full["replay"]["confident and wrong"] == 0.0
    assert full["overall"]["recall@3"] >= 0.99
    assert full["overall"]["reverted proposed"] == 0
    for family in ("docs_after", "comment_after", "reformat_after", "ci_after", "other_service_after"):
        assert full[family]["top-1"] == 1.0, family
    assert full["already_reverted"]["abstention (no cause)"] == 1.0
