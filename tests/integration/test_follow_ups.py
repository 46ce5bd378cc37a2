"""Killed after the 200, before the work: every acknowledged incident is still investigated and
announced, once, by the restarted server's sweep."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PLAYBOOKS, TOKEN
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote
from tests.integration.processes import BackoutServer, wait_until

pytestmark = pytest.mark.integration
INCIDENTS = 40


def delivery(n: int, at: datetime) -> dict[str, Any]:
    return {"version": "4", "groupKey": f'{{}}:{{alertname="Burst{n}"}}', "status": "firing",
            "receiver": "backout", "alerts": [{
                "status": "firing", "labels": {"alertname": f"Burst{n}", "service": "checkout",
                                               "severity": "critical"},
                "annotations": {}, "startsAt": at.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"{n:016x}"}]}


def test_a_kill_after_the_answers_leaves_nothing_uninvestigated_or_unannounced(tmp_path: Path) -> None:
    """40 incidents opened as fast as they are answered, SIGKILL at once, restart: each is ranked
    and posted to Slack exactly once."""
    now = datetime.now(UTC)
    remote = Remote(tmp_path / "gitops", start=now - timedelta(minutes=30))
    remote.commit("checkout: bump", {"apps/checkout/deploy.yaml": "image: checkout:2\n"})
    with FakeSlack().serving() as slack:
        config = {
            "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(PLAYBOOKS),
            "repos": [{"name": "gitops", "url": str(remote.bare)}],
            "git": {"mirror_dir": str(tmp_path / "mirrors")},
            "chat": {"kind": "slack"},
            "slack": {"mode": "http", "bot_token": "xoxb-test", "signing_secret": "s" * 32,
                      "api_url": f"{slack.base_url}/api/", "channel": "#incidents"},
            "scheduler": {"sweep_every": "1s"},
            "logging": {"format": "json"},
        }
        server = BackoutServer(tmp_path / "backout", config).start()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            for n in range(INCIDENTS):
                assert client.post("/webhooks/alertmanager", json=delivery(n, now)).status_code == 200
        server.kill()
        with sqlite3.connect(tmp_path / "backout.db") as db:
            [(left,)] = db.execute("SELECT count(*) FROM follow_ups WHERE done_at IS NULL").fetchall()
        assert left > 0, "the kill came after every investigation: the test proves nothing"

        server.start()
        try:
            def settled() -> bool:
                incidents = server.api("/api/incidents")["incidents"]
                ranked = [server.api(f"/api/incidents/{i['ref']}/suspects")["status"] for i in incidents]
                return (len(incidents) == INCIDENTS and set(ranked) == {"ranked"}
                        and len(slack.called("chat.postMessage")) >= INCIDENTS)
            wait_until(settled, timeout=60, what="every incident ranked and posted")
            wait_until(lambda: not pending(tmp_path), timeout=30, what="no work left")
            top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            per_incident = Counter(str(c.get("text", "")).split(" ")[0] for c in top)
            assert len(per_incident) == INCIDENTS
            assert set(per_incident.values()) == {1}, per_incident
        finally:
            server.stop()


def pending(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "backout.db") as db:
        [(left,)] = db.execute("SELECT count(*) FROM follow_ups WHERE done_at IS NULL").fetchall()
    return int(left)
