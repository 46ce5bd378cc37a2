"""The command line on a real SQLite database: listing, showing, acting and migrating."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

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
    """Unknown or malformed ids, and impossible transitions, say so and exit 1."""
    result = runner.invoke(cli, ["ack", "INC-99", "--config", str(config)])
    assert (result.exit_code, "INC-99 does not exist" in result.output) == (1, True)
    result = runner.invoke(cli, ["ack", "seven", "--config", str(config)])
    assert result.exit_code == 1
    assert "not an incident id" in result.output
    invoke("resolve", "2", "--config", str(config))
    result = runner.invoke(cli, ["ack", "2", "--config", str(config)])
    assert result.exit_code == 1
    assert "INC-2 is resolved; it cannot become acknowledged" in result.output


def test_db_upgrade_makes_a_new_database(tmp_path: Path) -> None:
    """`db upgrade` creates the schema and reports its revision."""
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/new.db'}}\n")
    assert "schema at 0001" in invoke("db", "upgrade", "--config", str(config))
    assert (tmp_path / "new.db").exists()


def test_replay_reports_an_unreachable_server(config: Path, tmp_path: Path) -> None:
    """replay to nowhere exits 1 with the reason; a missing file too."""
    from bot.demo_data import __file__ as data_init

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
    """`backout demo` replays the shipped deliveries over HTTP and prints the incidents."""
    result = runner.invoke(cli, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "HTTP 200" in result.output
    assert "INC-1  HighErrorRate on checkout" in result.output
    assert "Resolved: all its alerts resolved" in result.output
