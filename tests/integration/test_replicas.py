"""Two replicas on one PostgreSQL database: duplicate deliveries spread over both make one
incident, one chat message and one thread post per event."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from tests.conftest import PLAYBOOKS, TOKEN, payload
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote
from tests.integration.processes import BackoutServer, Postgres, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def thread_lines(slack: FakeSlack) -> list[str]:
    """Every line posted in threads: one a timeline event (several may share a reply)."""
    return [line for c in slack.called("chat.postMessage") if c.get("thread_ts") for line in c["text"].splitlines()]


def fresh_database(postgres: Postgres) -> sa.Engine:
    """An empty, migrated database (the postgres fixture is shared by the module)."""
    engine = create_engine(postgres.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(engine)
    return engine


def bad_bump_to_open_pr(tmp_path: Path) -> tuple[Remote, str, Path, dict[str, Any]]:
    """A GitOps remote whose last commit is the bad one, a playbook that opens its revert pull
    request, and a firing group for it: (remote, bad sha, playbooks folder, payload)."""
    now = datetime.now(UTC)
    remote = Remote(tmp_path / "gitops", start=now - timedelta(minutes=60))
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: checkout:1\n"}, minutes=1)
    bad = remote.commit("checkout: bump to 2", {"apps/checkout/deploy.yaml": "image: checkout:2\n"}, minutes=50)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"}, "actions": {"on_open": "open_pr"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}]}))
    firing = payload("01")
    for alert in firing["alerts"]:
        alert["startsAt"] = now.isoformat()
    return remote, bad, playbooks, firing


def slack_settings(slack: FakeSlack, **extra: object) -> dict[str, object]:
    return {"mode": "http", "bot_token": "xoxb-test", "signing_secret": "s" * 32,
            "api_url": f"{slack.base_url}/api/", "channel": "#incidents", **extra}


def start_replicas(tmp_path: Path, config: dict[str, object], names: tuple[str, ...] = ("one", "two"),
                   ) -> list[BackoutServer]:
    """Replicas on one config, each with its own mirrors (as pods would have)."""
    return [BackoutServer(tmp_path / name, {**config, "git": {"mirror_dir": str(tmp_path / name / "m")}}).start()
            for name in names]



def test_duplicates_over_two_replicas_make_one_incident_one_message_one_post_per_event(
    tmp_path: Path, postgres: Postgres,
) -> None:
    """100 copies of one firing group and 20 of its resolution, alternating between replicas."""
    engine = fresh_database(postgres)
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
            "slack": slack_settings(slack),
            "scheduler": {"leader_interval": "3s"}, "logging": {"format": "json"},
        }
        replicas = start_replicas(tmp_path, config)
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
                return len(thread_lines(slack)) >= len(shown)
            wait_until(delivered, timeout=30, what="the thread to follow the timeline")
            time.sleep(3)  # anything doubled would have been posted by now
            incidents = replicas[0].api("/api/incidents")["incidents"]
            assert [i["ref"] for i in incidents] == ["INC-1"]
            top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            assert len(top) == 1
            replies = Counter(thread_lines(slack))
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


def test_150_incidents_over_two_replicas_survive_a_20s_database_stop(tmp_path: Path, postgres: Postgres) -> None:
    """150 distinct groups alternate between the replicas while PostgreSQL stops for 20 s: the
    webhooks answer 503 meanwhile (Alertmanager retries), and in the end every group is an
    incident announced exactly once."""
    engine = fresh_database(postgres)
    engine.dispose()
    now = datetime.now(UTC)

    def group(n: int) -> dict[str, object]:
        body = payload("01")
        body["groupKey"] = f'{{}}:{{service="svc{n}"}}'
        body["groupLabels"] = body["commonLabels"] = {"alertname": "Down", "service": f"svc{n}"}
        for index, alert in enumerate(body["alerts"]):  # type: ignore[attr-defined]
            alert["labels"] = {"alertname": "Down", "service": f"svc{n}", "instance": f"i{index}"}
            alert["fingerprint"] = f"{n:08x}{index:08x}"
            alert["startsAt"] = (now + timedelta(seconds=n)).isoformat()
        return body

    with FakeSlack().serving() as slack:
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(PLAYBOOKS), "repos": [{"name": "gitops", "url": str(tmp_path / "none.git")}],
            "chat": {"kind": "slack"},
            "slack": slack_settings(slack, channel_rate=50),
            "scheduler": {"leader_interval": "3s", "sweep_every": "2s"}, "logging": {"format": "json"},
        }
        replicas = start_replicas(tmp_path, config)
        statuses: Counter[int] = Counter()
        accepted = 0
        outage = {"from": 0.0, "to": 0.0}
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}

            def deliver(n: int) -> None:
                """Alertmanager's way: post, and on a 5xx or no answer, try again a moment later."""
                nonlocal accepted
                body = group(n)
                for attempt in range(200):
                    url = f"{replicas[(n + attempt) % 2].url}/webhooks/alertmanager"
                    try:
                        status = httpx.post(url, json=body, headers=headers, timeout=10).status_code
                    except httpx.HTTPError:
                        status = 0
                    statuses[status] += 1
                    if status == 200:
                        accepted += 1
                        return
                    time.sleep(0.5)
                raise AssertionError(f"group {n} was never accepted")

            def cut() -> None:
                wait_until(lambda: accepted >= 50, timeout=60, what="50 groups before the outage")
                outage["from"] = time.monotonic()
                postgres.pause()
                time.sleep(20)
                postgres.resume()
                outage["to"] = time.monotonic()

            with ThreadPoolExecutor(5) as pool:
                stopper = pool.submit(cut)
                list(pool.map(deliver, range(150)))
                stopper.result()
            assert statuses[503] > 0, statuses  # refused while the database was down, never lost
            assert set(statuses) <= {200, 503, 0}, statuses

            def announced() -> Counter[int]:
                found: Counter[int] = Counter()
                for call in slack.called("chat.postMessage"):
                    if call.get("thread_ts"):
                        continue
                    metadata = call.get("metadata")
                    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
                    found[int(metadata["event_payload"]["incident"])] += 1
                return found
            wait_until(lambda: len(announced()) >= 150, timeout=120, every=1, what="150 incidents announced")
            time.sleep(4)  # anything doubled would have been posted by now
            counts = announced()
            assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
            incidents = replicas[0].api("/api/incidents?limit=1000")["incidents"]
            # One incident a group. Their numbers come from a PostgreSQL sequence, which a transaction
            # cut by the outage may leave with a gap: the numbers are not asserted to be 1..150.
            assert sorted(incident["service"] for incident in incidents) == sorted(f"svc{n}" for n in range(150))
            assert set(counts) == {incident["id"] for incident in incidents}
        finally:
            for replica in replicas:
                replica.stop()


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_killing_the_replica_between_push_and_pull_request_leaves_one_branch_one_pull_request(
    tmp_path: Path, postgres: Postgres, forge: str,
) -> None:
    """Replica one pushes the revert and asks the forge for the pull (merge) request; it is killed
    (-9) before the answer. Replica two takes the leadership and, once the claim lapses, the
    investigation: it adopts the pushed branch and the request the forge made anyway. One of each,
    and a complete timeline, on GitHub and on GitLab."""
    from tests.fakes.github import FakeGitHub
    from tests.fakes.gitlab import FakeGitLab
    from tests.gitrepos import git

    fresh_database(postgres).dispose()
    remote, bad, playbooks, firing = bad_bump_to_open_pr(tmp_path)
    fake: FakeGitHub | FakeGitLab
    if forge == "github":
        fake, create = FakeGitHub(remote.bare), ("POST", "/repos/acme/gitops/pulls")
    else:
        fake, create = FakeGitLab(remote.bare), ("POST", "/api/v4/projects/acme/platform/gitops/merge_requests")
    with fake.serving():
        fake.fail("POST", r"/(pulls|merge_requests)$", 0, delay=10)  # made, but the answer comes too late
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(playbooks),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops"}
                      if forge == "github" else
                      {"name": "gitops", "url": str(remote.bare), "forge": "gitlab",
                       "gitlab_project": "acme/platform/gitops"}],
            "github": {"api_url": fake.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"},
            "gitlab": {"url": fake.base_url, "token": "glpat-fake", "max_wait": "2s"},
            "scheduler": {"leader_interval": "3s", "sweep_every": "2s", "follow_up_lease": "5s"},
            "logging": {"format": "json"},
        }
        one = BackoutServer(tmp_path / "one", {**config, "git": {"mirror_dir": str(tmp_path / "one" / "m")}}).start()
        wait_until(lambda: one.api("/readyz").get("leader") is True, timeout=20, what="replica one leading")
        two = BackoutServer(tmp_path / "two", {**config, "git": {"mirror_dir": str(tmp_path / "two" / "m")}}).start()
        try:
            answer = httpx.post(f"{one.url}/webhooks/alertmanager", json=firing,
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20)
            assert answer.status_code == 200
            wait_until(lambda: fake.calls[create] >= 1, timeout=30, what="replica one asking for the request")
            one.kill()
            branch = f"backout/INC-1/revert-{bad[:7]}"
            assert branch in remote.branches()

            def finished() -> bool:
                actions = two.api("/api/incidents/INC-1")["actions"]
                return any(a["state"] == "pr_open" for a in actions)
            wait_until(finished, timeout=60, every=0.5, what="replica two finishing the revert")
            assert two.api("/readyz")["leader"] is True
            made = fake.pulls if isinstance(fake, FakeGitHub) else fake.merge_requests
            assert len(made) == 1
            assert [b for b in remote.branches() if b.startswith("backout/")] == [branch]
            kinds = [e["kind"] for e in two.api("/api/incidents/INC-1/timeline")["timeline"]]
            assert kinds.count("revert.pushed") == 1
            assert kinds.count("pr.opened") == 1
            assert git("log", "-1", "--format=%s", branch, cwd=remote.bare).startswith('Revert "checkout: bump to 2"')
        finally:
            two.stop()
            if one.proc is not None and one.proc.poll() is None:
                one.stop()


def test_a_real_alertmanager_ha_pair_delivering_to_two_replicas(tmp_path: Path, postgres: Postgres) -> None:
    """Two clustered Alertmanagers, each routed to its own replica, get the same alerts (as from
    two Prometheus servers): one incident, one chat message, one thread post per event."""
    from tests.integration.processes import Alertmanager, free_port
    from tests.integration.test_alertmanager import alert

    engine = fresh_database(postgres)
    with FakeSlack().serving() as slack:
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(PLAYBOOKS), "repos": [{"name": "gitops", "url": str(tmp_path / "none.git")}],
            "chat": {"kind": "slack"},
            "slack": slack_settings(slack),
            "scheduler": {"leader_interval": "3s"}, "logging": {"format": "json"},
        }
        replicas = start_replicas(tmp_path, config)
        ports = (free_port(), free_port())
        pair = [Alertmanager(tmp_path / f"am{i}", webhook_url=f"{replicas[i].url}/webhooks/alertmanager", token=TOKEN,
                             cluster_port=ports[i], peers=(ports[1 - i],)) for i in (0, 1)]
        try:
            for am in pair:
                am.start()
            started = datetime.now(UTC) - timedelta(seconds=30)
            for am in pair:
                am.post_alerts([alert("10.0.0.1:8080", started), alert("10.0.0.2:8080", started)])
            wait_until(lambda: replicas[1].api("/api/incidents")["incidents"] != [], timeout=30,
                       what="the incident to open")
            ended = datetime.now(UTC)
            for am in pair:
                am.post_alerts([alert("10.0.0.1:8080", started, ended), alert("10.0.0.2:8080", started, ended)])
            wait_until(lambda: replicas[0].api("/api/incidents/INC-1")["status"] == "resolved", timeout=40,
                       what="the resolution")

            def delivered() -> bool:
                timeline = replicas[0].api("/api/incidents/INC-1/timeline")["timeline"]
                return len(thread_lines(slack)) >= len([e for e in timeline if e["kind"] != "chat.command"])
            wait_until(delivered, timeout=30, what="the thread to follow the timeline")
            time.sleep(3)  # anything doubled would have been posted by now
            assert [i["ref"] for i in replicas[0].api("/api/incidents")["incidents"]] == ["INC-1"]
            assert len([c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]) == 1
            replies = Counter(thread_lines(slack))
            assert set(replies.values()) == {1}, replies
            with engine.connect() as conn:
                kinds = Counter(row[0] for row in conn.execute(sa.text("SELECT kind FROM timeline_events")))
            assert (kinds["alert.firing"], kinds["alert.resolved"], kinds["incident.opened"]) == (2, 2, 1)
            assert all(am.failed_notifications() == 0 for am in pair)
        finally:
            for am in pair:
                am.stop()
            for replica in replicas:
                replica.stop()
            engine.dispose()


def test_faults_from_github_and_slack_with_two_replicas_are_retried_within_bounds(
    tmp_path: Path, postgres: Postgres,
) -> None:
    """GitHub answers 502 three times to the pull request and Slack 429 (Retry-After) twice and 500
    once to the incident's message, while two replicas run: each call is retried by one replica
    only, within bounds, and the end is one pull request and one message."""
    from tests.fakes.github import FakeGitHub

    fresh_database(postgres).dispose()
    remote, _, playbooks, firing = bad_bump_to_open_pr(tmp_path)
    with FakeGitHub(remote.bare).serving() as github, FakeSlack().serving() as slack:
        github.fail("POST", r"/pulls$", 502, times=3)
        slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
        slack.fail("chat.postMessage", status=500, times=1)
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(playbooks),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops"}],
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"},
            "chat": {"kind": "slack"},
            "slack": slack_settings(slack),
            "scheduler": {"leader_interval": "3s"}, "logging": {"format": "json"},
        }
        replicas = start_replicas(tmp_path, config)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for n in range(6):  # the same group, to both replicas
                answer = httpx.post(f"{replicas[n % 2].url}/webhooks/alertmanager", json=firing, headers=headers,
                                    timeout=20)
                assert answer.status_code == 200

            def done() -> bool:
                actions = replicas[0].api("/api/incidents/INC-1")["actions"]
                top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
                return any(a["state"] == "pr_open" for a in actions) and len(top) >= 4
            wait_until(done, timeout=60, every=0.5, what="the pull request and the message")
            time.sleep(3)  # a retry storm, or a second replica retrying too, would show by now
            assert len(github.pulls) == 1
            assert github.calls[("POST", "/repos/acme/gitops/pulls")] == 4  # three 502s, then one success
            top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            assert len(top) == 4  # two 429s, one 500, then one message
            assert [i["ref"] for i in replicas[0].api("/api/incidents")["incidents"]] == ["INC-1"]
        finally:
            for replica in replicas:
                replica.stop()


def test_killing_either_replica_at_any_time_loses_and_doubles_nothing(tmp_path: Path, postgres: Postgres) -> None:
    """Ten incidents arrive, Alertmanager-style (retried until a 200), while one replica or the
    other is killed (-9) and restarted every few seconds; each incident's work (investigation,
    revert, pull request, message) is cut wherever the kill lands. In the end: ten incidents, each
    announced once, each with one pull request and a timeline that says so."""
    import random
    import threading

    from tests.fakes.github import FakeGitHub

    fresh_database(postgres).dispose()
    remote, bad, playbooks, _ = bad_bump_to_open_pr(tmp_path)
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "svc.*"}, "group_by": ["service"],
        "actions": {"on_open": "open_pr", "max_per_hour": 100},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}]}))
    now = datetime.now(UTC)

    def group(n: int) -> dict[str, object]:
        body = payload("01")
        body["groupKey"] = f'{{}}:{{service="svc{n}"}}'
        for index, alert in enumerate(body["alerts"]):  # type: ignore[attr-defined]
            alert["labels"] = {"alertname": "HighErrorRate", "service": f"svc{n}", "instance": f"i{index}"}
            alert["fingerprint"] = f"{n:08x}{index:08x}"
            alert["startsAt"] = now.isoformat()
        return body

    rng = random.Random(11)  # noqa: S311 - when to kill, not a secret
    with FakeGitHub(remote.bare).serving() as github, FakeSlack().serving() as slack:
        config = {
            "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(playbooks),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops"}],
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"},
            "chat": {"kind": "slack"}, "slack": slack_settings(slack, channel_rate=50),
            "scheduler": {"leader_interval": "3s", "sweep_every": "1s", "follow_up_lease": "4s",
                          "push_retry_every": "2s"},
            "logging": {"format": "json"},
        }
        github.fail("POST", r"/pulls$", 0, delay=1.5, times=1000)  # slow pull requests: kills land mid-revert
        replicas = start_replicas(tmp_path, config)
        stop = threading.Event()

        kills = 0

        def chaos() -> None:
            nonlocal kills
            while not stop.wait(rng.uniform(1.5, 3.0)):
                victim = replicas[rng.randrange(2)]
                victim.kill()
                kills += 1
                victim.start()

        killer = threading.Thread(target=chaos)
        try:
            killer.start()
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for n in range(10):
                for attempt in range(100):
                    try:
                        url = f"{replicas[(n + attempt) % 2].url}/webhooks/alertmanager"
                        if httpx.post(url, json=group(n), headers=headers, timeout=10).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.3)
                time.sleep(rng.uniform(0.2, 1.0))
            wait_until(lambda: kills >= 6, timeout=60, what="six kills")  # more while the work is under way
            stop.set()
            killer.join()

            def settled() -> bool:
                incidents = replicas[0].api("/api/incidents")["incidents"]
                opened = [replicas[0].api(f"/api/incidents/{i['ref']}")["actions"] for i in incidents]
                top = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
                return (len(incidents) == 10 and all(any(a["state"] == "pr_open" for a in acts) for acts in opened)
                        and len(top) >= 10)
            wait_until(settled, timeout=120, every=1, what="ten incidents with their pull requests and messages")
            time.sleep(4)  # anything doubled would have been posted by now
            heads = Counter(pull["head"]["ref"] for pull in github.pulls.values())
            assert len(heads) == 10
            assert set(heads.values()) == {1}, heads
            assert all(head.endswith(f"/revert-{bad[:7]}") for head in heads)
            metadata = [json.loads(c["metadata"]) if isinstance(c["metadata"], str) else c["metadata"]
                        for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
            announced = Counter(m["event_payload"]["incident"] for m in metadata)
            assert sorted(announced) == list(range(1, 11))
            assert set(announced.values()) == {1}, announced
            for n in range(1, 11):
                kinds = Counter(e["kind"] for e in replicas[0].api(f"/api/incidents/INC-{n}/timeline")["timeline"])
                assert kinds["incident.opened"] == 1
                assert kinds["pr.opened"] == 1, (n, kinds)
                assert kinds["alert.firing"] == 2
        finally:
            stop.set()
            if killer.is_alive():
                killer.join()
            for replica in replicas:
                replica.stop()
