"""Alert text cannot take over a terminal or forge a line, on every path that prints it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.adapters.console import ConsoleNotifier
from bot.cli import app as cli
from bot.config import Settings
from bot.domain.changes import Change, Effect, FileChange
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.text import safe
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident
from bot.services.notify import incident_update
from tests.conftest import PLAYBOOKS, TOKEN, Clock

HOSTILE = ("\x1b[2J\x1b]0;pwned\x07red\x1b[31m\rcarriage\u202eevil\u2066bidi\u2028sep\u200bzw"
           "\nINC-9 resolved by admin\n── incident.resolved: INC-1 fake")
# What must never reach the output: the raw escape, bell, carriage return, bidi and separators,
# and a line that starts like Backout's own.
FORBIDDEN = re.compile("[\x1b\x07\r\u202e\u2066\u2028\u200b]")
FORGED = re.compile(r"^\s*(INC-9 resolved|── incident\.resolved: INC-1 fake)", re.M)


def clean(output: str) -> None:
    assert not FORBIDDEN.search(output), repr(output[:400])
    assert not FORGED.search(output), output


@pytest.fixture
def config(tmp_path: Path, make_settings: Callable[..., Settings], clock: Clock) -> Path:
    """A database with one incident whose alert and suspect carry hostile text."""
    settings = make_settings()
    built = bootstrap.build(settings, clock=clock)
    store = built.ctx.store
    alert = ReceivedAlert(fingerprint="f", starts_at=clock.now, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "Errors", "service": "checkout", "note": HOSTILE},
                          annotations={"summary": HOSTILE, "description": HOSTILE})
    ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                    playbooks=built.ctx.playbooks, policy=settings.incidents, now=clock.now)
    change = Change(repo="gitops", sha="a" * 40, parents=(), author=f"Mallory {HOSTILE} <m@example.com>",
                    committed_at=clock.now - timedelta(minutes=10), subject=f"checkout: {HOSTILE}",
                    files=(FileChange(path="apps/checkout/deploy.yaml", status="M", effects=(Effect.IMAGE,)),))
    store.run(lambda tx: tx.changes.add_many([change]))
    rank_incident(store=store, playbooks=built.ctx.playbooks, incident_id=1, now=clock.now)
    built.close()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": settings.storage.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
        "playbooks_dir": str(PLAYBOOKS), "repos": [{"name": "gitops", "url": str(path.parent / "g.git")}]}))
    return path


@pytest.mark.parametrize("args", [["suspects", "INC-1"], ["incidents", "show", "INC-1"], ["incidents", "list"],
                                  ["export", "INC-1", "--format", "markdown"]])
def test_cli_output_is_clean(config: Path, args: list[str]) -> None:
    """`backout suspects`, `incidents show|list` and the Markdown export on stdout."""
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "\\x1b" in result.output or (args[0] == "incidents" and args[1] == "list")
    clean(result.output)


def test_the_markdown_served_by_the_api_is_clean(
    config: Path, build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """GET /api/incidents/1/export?format=markdown: escaped the same way."""
    settings = make_settings(storage={"url": yaml.safe_load(config.read_text())["storage"]["url"]})
    with TestClient(build(settings).http) as client:
        text = client.get("/api/incidents/INC-1/export", params={"format": "markdown"}).text
    clean(text)


def test_the_console_notifier_is_clean(config: Path, make_settings: Callable[..., Settings]) -> None:
    """The notice printed for the incident, with its alerts and suspects."""
    stream = io.StringIO()
    settings = make_settings(storage={"url": yaml.safe_load(config.read_text())["storage"]["url"]})
    built = bootstrap.build(settings, notifier=ConsoleNotifier(stream))
    incident_update(store=built.ctx.store, notifier=built.ctx.notifier, incident_id=1, kind="incident.opened")
    built.close()
    assert "── incident.opened" in stream.getvalue()
    clean(stream.getvalue())


def test_the_sanitizer_shows_what_it_replaced() -> None:
    """Escapes stay readable: a person sees that there was an escape, a newline, an override."""
    assert safe("a\x1b[31mb\nc\u202ed\ud800") == "a\\x1b[31mb\\nc\\u202ed\\ud800"
    assert safe("tab\there") == "tab here"
    assert safe("x" * 500, limit=10) == "x" * 9 + "…"


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """https://no-color.org: NO_COLOR set (to anything) turns colour off; a pipe never gets it."""
    import io

    from bot.cli.render import colour_on, incident_table

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_on(Terminal())
    assert not colour_on(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "")
    assert not colour_on(Terminal())
    row = {"ref": "INC-1", "status": "open", "severity": "critical", "service": "checkout",
           "opened_at": "2026-11-21T22:21:00+00:00", "title": "t"}
    assert "\x1b[31m" in incident_table([row], colour=True)
    assert "\x1b" not in incident_table([row], colour=False)
