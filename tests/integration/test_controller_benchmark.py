"""The controller-events benchmark, small: Flux events from every object, a recovered failure and
two images sharing a tag, through the real mirror, the event service and the ranking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_each_controller_family_names_the_culprit_with_confidence(tmp_path: Path) -> None:
    """Five scenarios per family, another seed than the default: the culprit is first and
    confident in each, and the commits under a bump are its own image's application's."""
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ranking" / "controllers.py"), "--per-family", "5",
                           "--seed", "3", "--json", str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    for family in ("every_object", "recovered_failure", "shared_tag"):
        figures = report[family]["figures"]
        assert (figures["top-1"], figures["wrong abstention"]) == (1.0, 0.0), family
    assert report["shared_tag"]["figures"]["code right"] == 1.0
