"""The command line on a real SQLite database: listing, showing, acting and migrating."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import bot
from bot import bootstrap
from bot.cli import app as cli
from bot.config import Settings
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, TOKEN, Clock, delivery

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, make_settings: Callable[..., Settings], clock: Clock) -> Path:
    """A config file on a database that already holds the checkout and payments incidents."""
    settings = make_settings()
    built = bootstrap.build(settings, clock=clock)
    for prefix in ("01", "03"):
        ingest_delivery(store=built.ctx.store, delivery=delivery(prefix),
                        playbooks=built.ctx.playbooks, policy=settings.incidents, now=clock())
    built.close()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": settings.storage.url},
        "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
        "playbooks_dir": str(PLAYBOOKS),
        "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}],
    }))
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_as_text_and_json(config: Path) -> None:
    """`incidents list` prints a table, and `--json` the API's shape."""
    text = invoke("incidents", "list", "--config", str(config))
    assert all(word in text for word in ("INC-1", "checkout", "INC-2", "payments"))
    data = json.loads(invoke("incidents", "list", "--json", "--config", str(config)))
    assert [(i["ref"], i["service"]) for i in data["incidents"]] == [("INC-2", "payments"),
                                                                     ("INC-1", "checkout")]
    only = json.loads(invoke("incidents", "list", "--json", "--status", "resolved",
                             "--config", str(config)))
    assert only["incidents"] == []


def test_show_as_text_and_json(config: Path) -> None:
    """`incidents show` takes 1 or INC-1; the text shows alerts and the timeline."""
    text = invoke("incidents", "show", "INC-1", "--config", str(config))
    assert "HighErrorRate on checkout" in text
    assert "incident.opened" in text
    data = json.loads(invoke("incidents", "show", "1", "--json", "--config", str(config)))
    assert data["ref"] == "INC-1"
    assert len(data["alerts"]) == 2


def test_ack_and_resolve_are_on_the_timeline_with_the_person(config: Path) -> None:
    """ack then resolve with a note: both recorded with the operator as actor."""
    assert "INC-1 is now acknowledged" in invoke("ack", "INC-1", "--config", str(config))
    assert "already acknowledged" in invoke("ack", "1", "--config", str(config))
    invoke("resolve", "INC-1", "--note", "rolled back by hand", "--config", str(config))
    data = json.loads(invoke("incidents", "show", "1", "--json", "--config", str(config)))
    assert data["status"] == "resolved"
    last = data["timeline"][-1]
    assert (last["kind"], last["actor"]) == ("incident.resolved", "user")
    assert last["actor_id"].startswith("cli")
    assert last["text"].endswith(": rolled back by hand")


def test_errors_are_clear_and_exit_non_zero(config: Path) -> None:
    """An unknown id and an impossible transition fail (1); a malformed id is usage (2)."""
    result = runner.invoke(cli, ["ack", "INC-99", "--config", str(config)])
    assert (result.exit_code, "INC-99 does not exist" in result.output) == (1, True)
    result = runner.invoke(cli, ["ack", "seven", "--config", str(config)])
    assert result.exit_code == 2
    assert "not an incident id" in result.output
    invoke("resolve", "2", "--config", str(config))
    result = runner.invoke(cli, ["ack", "2", "--config", str(config)])
    assert result.exit_code == 1
    assert "INC-2 is resolved; it cannot become acknowledged" in result.output


def test_db_upgrade_makes_a_new_database(tmp_path: Path) -> None:
    """`db upgrade` creates the schema and reports its revision."""
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/new.db'}}\n")
    versions = Path(bot.__file__).parent / "adapters" / "storage" / "migrations" / "versions"
    head = max(path.name[:4] for path in versions.glob("0*.py"))
    assert f"schema at {head}" in invoke("db", "upgrade", "--config", str(config))
    assert (tmp_path / "new.db").exists()


def test_replay_reports_an_unreachable_server(config: Path, tmp_path: Path) -> None:
    """replay to nowhere exits 1 with the reason; a missing file too."""
    from bot.demo.data import __file__ as data_init

    payload = Path(data_init).parent / "alertmanager" / "01-higherrorrate-firing-2alerts.json"
    result = runner.invoke(cli, ["replay", str(payload), "--url", "http://127.0.0.1:1",
                                 "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:1" in result.output
    result = runner.invoke(cli, ["replay", str(tmp_path / "missing.json"), "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_a_broken_config_stops_commands_with_the_reason(tmp_path: Path) -> None:
    """Every command that reads the config names the bad key and exits 2."""
    config = tmp_path / "c.yaml"
    config.write_text("storage:\n  ulr: nowhere\n")
    result = runner.invoke(cli, ["incidents", "list", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}:2: storage.ulr:" in result.output


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """`backout demo`: the bad change ranked first, a revert branch, a resolution and exports."""
    out = tmp_path / "out"
    result = runner.invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "POST /webhooks/alertmanager -> 200" in result.output
    assert "revert branch backout/INC-1/revert-" in result.output
    exported = json.loads((out / "INC-1.json").read_text())
    assert exported["incident"]["status"] == "resolved"
    assert exported["suspects"]["confident"] is True
    assert exported["actions"][-1]["state"] == "pushed"
    assert (out / "INC-1.md").read_text().startswith("# INC-1")
    assert (out / "INC-1.png").read_bytes().startswith(b"\x89PNG")
    assert _metric_pixels(out / "INC-1.png") > 1500, "the chart draws the scenario's metric line"
    assert exported["actions"][-1]["auto"] is False, "the on-call engineer ran the rollback"
    assert "![The key metric" in (out / "INC-1.md").read_text()
    assert '<img class="chart" src="data:image/png;base64,' in (out / "INC-1.html").read_text()
    times = [entry["at"] for entry in exported["timeline"]]
    assert times == sorted(times), "the demo's timeline is chronological"
    again = runner.invoke(cli, ["demo", "--out", str(out)])
    assert again.exit_code == 0, "the demo runs again over its own output"


def _metric_pixels(png: Path) -> int:
    """How many pixels have the metric line's colour (#1d2433): a line across the plot is
    thousands; the text of a chart without one, a few hundred."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array([0x1D, 0x24, 0x33])).max(axis=2) < 30).sum())


def test_export_writes_markdown_and_json(config: Path, tmp_path: Path) -> None:
    """`backout export` writes the review in either format to a file or stdout."""
    out = tmp_path / "INC-1.md"
    assert f"wrote {out}" in invoke("export", "INC-1", "-o", str(out), "--config", str(config))
    assert out.read_text().startswith("# INC-1: HighErrorRate on checkout")
    data = json.loads(invoke("export", "1", "--format", "json", "--config", str(config)))
    assert data["schema_version"] == 1
    chart = tmp_path / "INC-1.png"
    assert f"wrote {chart}" in invoke("export", "1", "-f", "png", "-o", str(chart), "--config", str(config))
    assert chart.read_bytes().startswith(b"\x89PNG")
    result = runner.invoke(cli, ["export", "1", "-o", str(tmp_path / "no" / "such" / "dir.md"),
                                 "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot write" in result.output


def test_suspects_command(config: Path) -> None:
    """`backout suspects ID --json` prints the API's shape; pending before any ranking."""
    data = json.loads(invoke("suspects", "INC-1", "--json", "--config", str(config)))
    assert set(data) == {"status", "confident", "reason", "ranked_at", "best", "floor", "suspects"}
    assert "Suspects" in invoke("suspects", "INC-1", "--config", str(config))


def test_check_warns_when_playbooks_wait_for_controller_events_nobody_can_send(config: Path) -> None:
    """The checkout playbook names a Flux Kustomization; without flux.hmac_key every event would
    be refused, and `check` says so (as a warning: the rest still works)."""
    result = runner.invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "flux.hmac_key" in result.output
    data = yaml.safe_load(config.read_text())
    data["flux"] = {"hmac_key": "k"}
    config.write_text(yaml.safe_dump(data))
    assert "flux.hmac_key" not in runner.invoke(cli, ["check", "--config", str(config)]).output


def test_the_cli_imports_what_a_command_needs_when_it_runs_it() -> None:
    """`backout --help` must start at once mid-incident: the command line module pulls in no
    server, database, forge or chat library (bench/cli_start.py measures the times)."""
    import subprocess
    import sys

    heavy = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "github", "slack_sdk", "slack_bolt", "httpx",
             "apscheduler", "numpy", "ruptures", "bot.bootstrap", "bot.entrypoints")
    loaded = "{m.split('.')[0] if not m.startswith('bot.') else m for m in sys.modules}"
    probe = f"import sys, bot.cli; print(sorted({loaded} & {set(heavy)!r}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    shown = runner.invoke(cli, ["--version"])
    assert (shown.exit_code, shown.output.startswith("backout ")) == (0, True)
    completion = runner.invoke(cli, ["--help"])
    assert "--install-completion" in completion.output
    assert "--server" in completion.output


def test_report_prints_the_team_numbers_and_accuracy_stays_a_subcommand(config: Path) -> None:
    """`backout report` (DESIGN's `report [accuracy]`), with the config given before it."""
    text = invoke("-c", str(config), "report")
    assert "Incidents opened in the last 30d (all services)" in text
    # the fixture's incidents carry a fixed date: a window of a hundred years holds them whatever day this runs
    assert json.loads(invoke("-c", str(config), "report", "--since", "36500d", "--json"))["incidents"] == 2
    payments = invoke("-c", str(config), "report", "--since", "36500d", "--service", "payments", "-f", "json")
    assert json.loads(payments)["incidents"] == 1
    assert invoke("-c", str(config), "report", "-f", "markdown").startswith("## Incidents")
    assert json.loads(invoke("-c", str(config), "report", "accuracy", "--json"))["overall"]["incidents"] == 0


def test_update_role_and_severity_from_the_command_line(config: Path) -> None:
    """`update`, `role` and `severity` act as the operator; a resolved incident refuses them (exit 1)."""
    assert "Status update posted on INC-1" in invoke("update", "INC-1", "rolling back", "--config", str(config))
    assert "INC-1 lead: U0BOB" in invoke("role", "INC-1", "lead", "U0BOB", "--config", str(config))
    changed = json.loads(invoke("severity", "INC-1", "warning", "--json", "--config", str(config)))
    assert (changed["severity"], changed["changed"]) == ("warning", True)
    data = json.loads(invoke("incidents", "show", "1", "--json", "--config", str(config)))
    assert data["roles"] == {"lead": "U0BOB"}
    assert [e["kind"] for e in data["timeline"]][-3:] == [
        "incident.update", "incident.role", "incident.severity_lowered"]
    refused = runner.invoke(cli, ["role", "INC-1", "chef", "U0BOB", "--config", str(config)])
    assert (refused.exit_code, "the roles are lead" in refused.output) == (1, True)
    invoke("resolve", "1", "--config", str(config))
    refused = runner.invoke(cli, ["update", "INC-1", "done", "--config", str(config)])
    assert (refused.exit_code, "INC-1 is resolved" in refused.output) == (1, True)


def test_hold_stops_an_automatic_merge_and_says_when_none_waits(config: Path, clock: Clock) -> None:
    """`backout hold INC-1` holds the merge waiting in its veto window (by the operator), once; with
    none waiting it fails (1) saying so."""
    from bot.config import load_settings
    from bot.domain.actions import Action, ActionKind, ActionState

    built = bootstrap.build(load_settings(config), clock=clock)
    built.ctx.store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha="a" * 40, state=ActionState.PR_OPEN,
        branch="backout/INC-1/revert-aaaaaaa", created_at=clock(), updated_at=clock(),
        detail={"pr_number": 3, "auto_merge": {"state": "waiting", "due_at": clock().isoformat()}})))
    built.close()
    assert "INC-1: held; Backout will not merge pull request #3 by itself." in invoke("hold", "INC-1", "--config",
                                                                                       str(config))
    again = json.loads(invoke("hold", "1", "--json", "--config", str(config)))
    assert again["changed"] is False
    assert again["message"].startswith("INC-1: already held by cli")
    result = runner.invoke(cli, ["hold", "INC-2", "--config", str(config)])
    assert result.exit_code == 1
    assert "INC-2 has no automatic merge waiting" in result.output
