"""`backout serve` and the collector: what start-up built is frozen out of the full collections,
which otherwise walk it all (about 200,000 objects: 0.1 to 0.4 s with the event loop stopped,
/healthz included) a few times a minute under a storm."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli.server import SWITCH_INTERVAL, GracefulServer, run_server


def test_serve_freezes_what_start_up_built_before_it_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the server starts serving, the start-up heap is in the collector's permanent generation."""
    frozen: list[int] = []
    switching: list[float] = []
    before = sys.getswitchinterval()

    def run(_server: GracefulServer, *_args: Any, **_kwargs: Any) -> None:
        frozen.append(gc.get_freeze_count())
        switching.append(sys.getswitchinterval())

    monkeypatch.setattr(GracefulServer, "run", run)
    (tmp_path / "playbooks").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0}, "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"}, "api": {"auth": "none"}, "playbooks_dir": str(tmp_path / "playbooks"),
        "git": {"mirror_dir": str(tmp_path / "mirrors")}}))
    try:
        assert run_server(config, echo=print) == 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)
    assert frozen
    assert frozen[0] > 10_000
    # A thread back from SQLite or a socket waits at most this for a busy parser to let go.
    assert switching == [SWITCH_INTERVAL]
    assert before > SWITCH_INTERVAL
