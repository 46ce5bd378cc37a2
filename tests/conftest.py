"""Shared test helpers: real Alertmanager payloads, settings, and apps built in one line."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.alertmanager.payload import AmPayload, to_delivery
from bot.adapters.console import RecordingNotifier
from bot.config import AlertmanagerSettings, ApiSettings, Settings, StorageSettings
from bot.domain.models import Delivery
from tests.fakes.git import FakeGit, InlineExecutor

TOKEN = "test-token-0123456789"
PAYLOADS = resources.files("bot.demo.data") / "alertmanager"
PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"


def payload_names() -> list[str]:
    return sorted(entry.name for entry in PAYLOADS.iterdir() if entry.name.endswith(".json"))


def payload_bytes(prefix: str) -> bytes:
    """The captured Alertmanager body whose file name starts with `prefix` (e.g. "01")."""
    name = next(name for name in payload_names() if name.startswith(prefix))
    return (PAYLOADS / name).read_bytes()


def payload(prefix: str) -> dict[str, Any]:
    return json.loads(payload_bytes(prefix))


def delivery(prefix: str) -> Delivery:
    return to_delivery(AmPayload.model_validate(payload(prefix)))


def need_binary(name: str) -> str:
    """The binary's path; skip without it, but fail under CI, where it must be installed."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install the package that has it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 21, 22, 21, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """A test that configures logging (the demo, the CLI) must not leak it into the next."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "storage": StorageSettings(url=f"sqlite:///{tmp_path / 'backout.db'}"),
            "alertmanager": AlertmanagerSettings(auth="bearer", bearer_token=TOKEN),
            # Reads are open in these tests; test_read_auth.py checks the default (bearer).
            "api": ApiSettings(auth="none"),
            "playbooks_dir": PLAYBOOKS,
            "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}],
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def fake_git() -> FakeGit:
    return FakeGit()


@pytest.fixture
def notices() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def build(make_settings: Callable[..., Settings], clock: Clock, fake_git: FakeGit,
          notices: RecordingNotifier) -> Iterator[Callable[..., bootstrap.App]]:
    """Build the whole app with fake git and chat, background work run inline."""
    built: list[bootstrap.App] = []

    def make(settings: Settings | None = None, **overrides: Any) -> bootstrap.App:
        parts: dict[str, Any] = {"clock": clock, "git": fake_git, "notifier": notices,
                                 "work_executor": InlineExecutor()}
        app = bootstrap.build(settings or make_settings(), **(parts | overrides))
        built.append(app)
        return app

    yield make
    for app in built:
        app.close()


@pytest.fixture
def app(build: Callable[..., bootstrap.App]) -> bootstrap.App:
    return build()


@pytest.fixture
def client(app: bootstrap.App) -> Iterator[TestClient]:
    with TestClient(app.http) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}
