"""The README's Alertmanager routing (deploy/alertmanager/routes.yaml) as Alertmanager's own
`amtool config routes test` resolves it: Backout beside the team's receiver, never in its place."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_binary

pytestmark = [pytest.mark.integration, pytest.mark.alertmanager]
ROOT = Path(__file__).resolve().parents[2]
ROUTES = ROOT / "deploy" / "alertmanager" / "routes.yaml"
CATCH_ALL = "    - receiver: team-pager            # last, no matchers: the catch-all (see why below)\n"


def receivers(config: Path, *labels: str) -> list[str]:
    """The receivers an alert with these labels reaches, in order."""
    done = subprocess.run([need_binary("amtool"), "config", "routes", "test", f"--config.file={config}", *labels],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def test_the_readme_shows_the_tested_routes() -> None:
    """The README's Alertmanager snippet is deploy/alertmanager/routes.yaml, line for line."""
    section = (ROOT / "README.md").read_text().split("### Alertmanager\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    assert block.group(1) == ROUTES.read_text()


def test_an_alert_backout_watches_reaches_backout_and_the_teams_receiver() -> None:
    """An alert for a service with a playbook goes to Backout and still pages the team."""
    assert receivers(ROUTES, "alertname=HighErrorRate", "service=checkout") == ["backout", "team-pager"]


def test_an_alert_backout_does_not_watch_reaches_the_root_receiver_only() -> None:
    """An alert for a service without a playbook goes to the team's receiver alone."""
    assert receivers(ROUTES, "alertname=HighErrorRate", "service=search") == ["team-pager"]


def test_without_the_catch_all_the_team_is_not_paged(tmp_path: Path) -> None:
    """Why the snippet ends with the catch-all: the root receiver only gets what no child route
    matches, so without it Backout's alerts stop paging the team."""
    text = ROUTES.read_text()
    assert text.count(CATCH_ALL) == 1
    bare = tmp_path / "routes.yaml"
    bare.write_text(text.replace(CATCH_ALL, ""))
    assert receivers(bare, "alertname=HighErrorRate", "service=checkout") == ["backout"]
