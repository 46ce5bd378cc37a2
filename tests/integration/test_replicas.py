"""Two replicas on one PostgreSQL database: duplicate deliveries spread over both make one
incident, one chat message and one thread post per event."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from tests.conftest import PLAYBOOKS, TOKEN, payload
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote
from tests.integration.processes import BackoutServer, Postgres, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_duplicates_over_two_replicas_make_one_incident_one_message_one_post_per_event(
    tmp_path: Path, postgres: Postgres,
) -> None:
    """100 copies of one firing group and 20 of its resolution, alternating between replicas."""
    engine = create_engine(postgres.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    remote = Remote(tmp_path / "gitops", start=now - timedelta(minutes=30))
    remote.commit("checkout: bump", {"apps/checkout/deploy.yaml": "image: checkout:2\n"})
    firing = payload("01")
    for alert in firing["alerts"]:
        alert["startsAt"] = now.isoformat()
    resolved = json.loads(json.dumps(firing))
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", (now + timedelta(minutes=1)).isoformat()
    with FakeSlack().serving() as slack:
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(PLAYBOOKS), "repos": [{"name": "gitops", "url": str(remote.bare)}],
            "chat": {"kind": "slack"},
            "slack": {"mode": "http", "bot_token": "xoxb-test", "signing_secret": "s" * 32,
                      "api_url": f"{slack.base_url}/api/", "channel": "#incidents"},
            "scheduler": {"leader_interval": "3s"}, "logging": {"format": "json"},
        }
        replicas = [BackoutServer(tmp_path / name, {**config, "git": {"mirror_dir": str(tmp_path / name / "m")}})
                    .start() for name in ("one", "two")]
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}

            def post(n: int, body: dict[str, object]) -> int:
                url = f"{replicas[n % 2].url}/webhooks/alertmanager"
                return httpx.post(url, json=body, headers=headers, timeout=20).status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(lambda n: post(n, firing), range(100))) == {200}
            wait_until(lambda: replicas[0].api("/api/incidents/INC-1/suspects")["status"] == "ranked",
                       timeout=30, what="the incident ranked")
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(lambda n: post(n, resolved), range(20))) == {200}
            wait_until(lambda: replicas[0].api("/api/incidents/INC-1")["status"] == "resolved", timeout=20,
                       what="the resolution")

            def delivered() -> bool:
                timeline = replicas[0].api("/api/incidents/INC-1/timeline")["timeline"]
                shown = [e for e in timeline if e["kind"] != "chat.command"]
                replies = [c for c in slack.called("chat.postMessage") if c.get("thread_ts")]
                return len(replies) >= len(shown)
            wait_until(delivered, timeout=30, what="the thread to follow the timeline")
            time.sleep(3)  # anything doubled would have been posted by now
            incidents = replicas[0].api("/api/incidents")["incidents"]
            assert [i["ref"] for i in incidents] == ["INC-1"]
            top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            assert len(top) == 1
            replies = Counter(c["text"] for c in slack.called("chat.postMessage") if c.get("thread_ts"))
            assert set(replies.values()) == {1}, replies
            with engine.connect() as conn:
                kinds = Counter(row[0] for row in conn.execute(sa.text("SELECT kind FROM timeline_events")))
            assert kinds["alert.resolved"] == 2
            assert kinds["incident.resolved"] == 1
            assert kinds["incident.opened"] == 1
        finally:
            for replica in replicas:
                replica.stop()
            engine.dispose()
