"""Killed after the 200, before the work: every acknowledged incident is still investigated and
announced, once, by the restarted server's sweep."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bot.adapters.storage.engine import create_engine
from tests.conftest import TOKEN
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote
from tests.integration.processes import BackoutServer, silent_git_host, wait_until

pytestmark = pytest.mark.integration
INCIDENTS = 40


def delivery(n: int, at: datetime) -> dict[str, Any]:
    return {"version": "4", "groupKey": f'{{}}:{{alertname="Burst{n}"}}', "status": "firing",
            "receiver": "backout", "alerts": [{
                "status": "firing", "labels": {"alertname": f"Burst{n}", "service": "checkout",
                                               "severity": "critical"},
                "annotations": {}, "startsAt": at.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"{n:016x}"}]}


@pytest.mark.parametrize("storage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_kill_after_the_answers_leaves_nothing_uninvestigated_or_unannounced(
    tmp_path: Path, storage: str, request: pytest.FixtureRequest,
) -> None:
    """40 incidents answered 200 while their investigations wait on a Git host that does not
    answer; SIGKILL; restart with the host back: each is ranked and posted to Slack exactly once.
    The work the killed process held is its own again at once on restart (it keeps its replica
    name; a new epoch frees the old one's claims), not after the 10-minute lease, on SQLite and on
    PostgreSQL alike."""
    url = f"sqlite:///{tmp_path / 'backout.db'}"
    if storage == "postgresql":
        from tests.integration.test_replicas import fresh_database

        postgres = request.getfixturevalue("postgres")
        fresh_database(postgres).dispose()
        url = postgres.url
    now = datetime.now(UTC)
    remote = Remote(tmp_path / "gitops", start=now - timedelta(minutes=30))
    remote.commit("checkout: bump", {"apps/checkout/deploy.yaml": "image: checkout:2\n"})
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"}, "group_by": ["alertname", "service"],
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "actions": {"on_open": "propose"}}))
    with FakeSlack().serving() as slack, silent_git_host() as silent:
        config = {
            "storage": {"url": url},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(playbooks),
            "repos": [{"name": "gitops", "url": silent}],
            # Investigations wait for the fetch (as they did before git.fetch_wait), so the kill finds them all waiting.
            "git": {"mirror_dir": str(tmp_path / "mirrors-before"), "timeout": "2m", "fetch_wait": "10m"},
            "chat": {"kind": "slack"},
            "slack": {"mode": "http", "bot_token": "xoxb-test", "signing_secret": "s" * 32,
                      "api_url": f"{slack.base_url}/api/", "channel": "#incidents", "channel_rate": 20},
            "scheduler": {"sweep_every": "1s", "follow_up_lease": "10m"},
            "logging": {"format": "json"},
        }
        server = BackoutServer(tmp_path / "backout", config).start()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            for n in range(INCIDENTS):
                assert client.post("/webhooks/alertmanager", json=delivery(n, now)).status_code == 200
        server.kill()
        assert pending(url) == INCIDENTS, "every investigation was still waiting on the Git host"
        assert held(url) > 0, "the killed process held some of the work"

        # The host is back (here: the real remote, in a fresh mirror folder).
        config["repos"] = [{"name": "gitops", "url": str(remote.bare)}]
        config["git"] = {"mirror_dir": str(tmp_path / "mirrors-after")}
        server.config_path.write_text(yaml.safe_dump({**config, **{
            k: v for k, v in yaml.safe_load(server.config_path.read_text()).items() if k in ("server", "api")}}))
        server.start()
        try:
            def settled() -> bool:
                incidents = server.api("/api/incidents")["incidents"]
                ranked = [server.api(f"/api/incidents/{i['ref']}/suspects")["status"] for i in incidents]
                posted = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
                return len(incidents) == INCIDENTS and set(ranked) == {"ranked"} and len(posted) >= INCIDENTS
            wait_until(settled, timeout=60, what="every incident ranked and posted")
            wait_until(lambda: not pending(url), timeout=30, what="no work left")
            top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            per_incident = Counter(str(c.get("text", "")).split(" ")[0] for c in top)
            assert len(per_incident) == INCIDENTS
            assert set(per_incident.values()) == {1}, per_incident
        finally:
            server.stop()


def pending(url: str) -> int:
    return count(url, "SELECT count(*) FROM follow_ups WHERE done_at IS NULL")


def held(url: str) -> int:
    return count(url, "SELECT count(*) FROM follow_ups WHERE done_at IS NULL AND claimed_until IS NOT NULL")


def count(url: str, query: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()
