"""The running server over HTTP: replays are idempotent and a killed server loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PAYLOADS, payload_names
from tests.integration.conftest import backout_config
from tests.integration.processes import BackoutServer

pytestmark = pytest.mark.integration

ALL = [PAYLOADS / name for name in payload_names()]


def replay(server: BackoutServer, files: list[Any]) -> subprocess.CompletedProcess[str]:
    """`backout replay` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "replay", *map(str, files), "--url", server.url,
         "--config", str(server.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def state(server: BackoutServer) -> list[tuple[Any, ...]]:
    """What must not change with replays or crashes: incidents, their alerts and the events the
    deliveries made (Backout's own background events interleave with them in any order)."""
    result = []
    for incident in server.api("/api/incidents")["incidents"]:
        view = server.api(f"/api/incidents/{incident['ref']}")
        result.append((
            incident["ref"], incident["status"], incident["service"], incident["severity"],
            sorted((a["fingerprint"], a["status"]) for a in view["alerts"]),
            [event["kind"] for event in view["timeline"] if event["actor"] == "alertmanager"],
        ))
    return result


def test_replaying_every_fixture_in_order_and_repeated_gives_the_same_state(
    backout: BackoutServer,
) -> None:
    """`backout replay` of all captured payloads, then all of them again: nothing changes."""
    first = replay(backout, ALL)
    assert first.returncode == 0, first.stdout + first.stderr
    once = state(backout)
    assert [(ref, status) for ref, status, *_ in once] == [
        ("INC-5", "resolved"), ("INC-4", "resolved"), ("INC-3", "open"),
        ("INC-2", "resolved"), ("INC-1", "resolved"),
    ]
    again = replay(backout, ALL + ALL)
    assert again.returncode == 0
    assert state(backout) == once


def test_a_killed_server_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL between deliveries, restart, deliver everything again: the state of one clean run."""
    reference = BackoutServer(tmp_path / "reference", backout_config(tmp_path / "reference"))
    crashing = BackoutServer(tmp_path / "crashing", backout_config(tmp_path / "crashing"))
    reference.start()
    try:
        assert replay(reference, ALL).returncode == 0
        expected = state(reference)
    finally:
        reference.stop()

    crashing.start()
    assert replay(crashing, ALL[:3]).returncode == 0
    crashing.kill()
    crashing.start()
    try:
        assert replay(crashing, ALL).returncode == 0
        assert state(crashing) == expected
    finally:
        crashing.stop()


def test_serve_refuses_to_start_without_webhook_credentials(tmp_path: Path) -> None:
    """No auth configured: `serve` exits 2 and says which key to set."""
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/b.db'}}\n")
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert result.returncode == 2
    assert "alertmanager.auth: not set" in result.stderr
