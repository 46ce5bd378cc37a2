"""The page links' shared key on a real PostgreSQL: replicas without api.link_secret agree on one
key, made by whichever commits first, and open each other's links."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.storage.store import SqlStore
from bot.config import Settings
from bot.services.keys import LINK_KEY, shared_key
from tests.conftest import PLAYBOOKS, Clock, payload_bytes
from tests.fakes.git import FakeGit, InlineExecutor
from tests.integration.processes import Postgres
from tests.integration.test_postgres import engines, race

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
__all__ = ["engines"]  # the fixture, shared with test_postgres.py
NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
TOKEN = "read-token-abcdefghijklmnop"


def test_replicas_starting_at_once_agree_on_one_key(engines: list[sa.Engine]) -> None:
    """Eight starts over two engines ask for the key at the same moment: all get the same one, and one row."""
    found: list[bytes] = []
    race([SqlStore(engine) for engine in engines],
         lambda store: found.append(shared_key(store=store, name=LINK_KEY, now=NOW)))
    assert len(found) == 8
    assert len(set(found)) == 1
    assert len(found[0]) == 32
    with engines[0].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM server_keys")).scalar_one() == 1


@pytest.fixture
def replicas(engines: list[sa.Engine], postgres: Postgres) -> Iterator[list[bootstrap.App]]:
    """Two apps on the one database, none with api.link_secret."""
    settings = Settings(storage={"url": postgres.url}, alertmanager={"auth": "none"}, playbooks_dir=PLAYBOOKS,
                        api={"tokens": [TOKEN]}, server={"public_url": "https://b.example"},
                        repos=[{"name": "gitops", "url": "/nonexistent/gitops.git"}])
    apps = [bootstrap.build(settings, clock=Clock(), git=FakeGit(), notifier=RecordingNotifier(),
                            work_executor=InlineExecutor()) for _ in range(2)]
    yield apps
    for app in apps:
        app.close()


def test_replicas_on_postgres_open_each_others_links(replicas: list[bootstrap.App]) -> None:
    """A link either replica hands out opens the page on both; a forged one on neither."""
    with TestClient(replicas[0].http) as client:
        assert client.post("/webhooks/alertmanager", content=payload_bytes("01")).status_code == 200
    for made in replicas:
        link = made.ctx.signed_page_url(1)
        assert link is not None
        query = link.split("/incidents/INC-1", 1)[1]
        for app in replicas:
            with TestClient(app.http) as client:
                assert client.get(f"/incidents/INC-1{query}").status_code == 200
                assert client.get(f"/incidents/INC-1{query[:-4]}0000").status_code == 401
