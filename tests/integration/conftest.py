"""Fixtures that start real processes; each test gets fresh ones and stops them after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PLAYBOOKS, TOKEN
from tests.integration.processes import BackoutServer, Postgres


def backout_config(tmp_path: Path) -> dict[str, object]:
    return {
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        # The captured payloads keep the day they were captured on: accepted whatever day this runs.
        "alertmanager": {"auth": "bearer", "bearer_token": TOKEN, "max_start_age": "36500d"},
        "playbooks_dir": str(PLAYBOOKS),
        "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}],
        "logging": {"format": "json"},
    }


@pytest.fixture
def backout(tmp_path: Path) -> Iterator[BackoutServer]:
    server = BackoutServer(tmp_path, backout_config(tmp_path)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    yield server
    server.stop()
