"""Controller events through two replicas' writer processes on a real PostgreSQL: every event is
stored once, whichever replica records it first; the other answers it as a duplicate."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from tests.adapters.test_controllers import DEPLOY, KEY, PLAYBOOK, flux_body
from tests.fakes.git import InlineExecutor
from tests.gitrepos import Remote
from tests.integration.processes import Postgres
from tests.integration.test_postgres import engines

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
__all__ = ["engines"]  # the fixture, shared with test_postgres.py


@pytest.fixture
def replicas(tmp_path: Path, engines: list[sa.Engine], postgres: Postgres) -> Iterator[tuple[Remote, list[TestClient]]]:
    """Two replicas on one database and one Git repository, each recording in its writer process."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=2)})
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump(PLAYBOOK))
    apps = []
    for n in range(2):
        config = tmp_path / f"config-{n}.yaml"
        config.write_text(yaml.safe_dump({
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "none"}, "api": {"auth": "none"},
            "flux": {"hmac_key": KEY}, "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": str(remote.bare), "branch": "main"}],
            "git": {"mirror_dir": str(tmp_path / f"mirrors-{n}"), "import_window": "30d"},
        }))
        app = bootstrap.build(load_settings(config), notifier=RecordingNotifier(), work_executor=InlineExecutor())
        bootstrap.record_in_process(app)
        apps.append(app)
    clients = [TestClient(app.http).__enter__() for app in apps]
    yield remote, clients
    for client, app in zip(clients, apps, strict=True):
        client.__exit__(None, None, None)
        app.close()


def test_two_replicas_writer_processes_store_each_event_once(
        replicas: tuple[Remote, list[TestClient]], engines: list[sa.Engine]) -> None:
    """Ten Flux events, each delivered to both replicas: 202 from one, 200 duplicate from the other,
    and ten rows."""
    remote, clients = replicas
    sha = remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)})
    statuses = []
    for n in range(10):
        body = flux_body("kustomization-succeeded", sha=sha, at=remote.clock + timedelta(seconds=n))
        signature = "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
        for client in clients if n % 2 else reversed(clients):
            answer = client.post("/webhooks/flux", content=body, headers={
                "Content-Type": "application/json", "X-Signature": signature})
            statuses.append(answer.status_code)
    assert sorted(statuses) == [200] * 10 + [202] * 10
    with engines[0].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM controller_events")).scalar_one() == 10
