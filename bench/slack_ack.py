"""Time from a signed Slack request to its ack, while GitHub takes 10 s to answer.

The app runs in HTTP mode on SQLite with a real git remote and the fake GitHub, whose
pull-request creation is delayed by 10 s. Requests signed as Slack signs them arrive at a
fixed rate: rollback confirmations (each starts a revert whose PR waits on GitHub), slash
commands and buttons. Latency counts from each request's scheduled send time to the HTTP
answer (the ack). Target: p99 under 300 ms.
Usage: python bench/slack_ack.py [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.slack_app import OWNER, service_playbooks, signed, slack_settings
from bot import bootstrap
from bot.config import LoggingSettings
from bot.entrypoints.serving import serve_in_thread
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote

INCIDENTS = 12


def requests_for(n: int, slack: FakeSlack, shas: dict[int, str]) -> str:
    """The n-th request: a confirmation for each incident first, then commands and buttons."""
    incident = n % INCIDENTS + 1
    if n < INCIDENTS:
        view = {"type": "view_submission", "user": {"id": OWNER}, "team": {"id": "T1"},
                "view": {"id": f"V{n}", "type": "modal", "callback_id": "backout_confirm_rollback",
                         "state": {"values": {}},
                         "private_metadata": json.dumps({"incident": incident, "sha": shas[incident]})}}
        return urlencode({"payload": json.dumps(view)})
    if n % 2:
        return urlencode({"team_id": "T1", "channel_id": "C1", "user_id": OWNER, "command": "/incident",
                          "text": f"show INC-{incident}", "trigger_id": f"t{n}",
                          "response_url": f"{slack.base_url}/respond/{n}"})
    action = {"type": "block_actions", "user": {"id": OWNER}, "team": {"id": "T1"}, "trigger_id": f"t{n}",
              "response_url": f"{slack.base_url}/respond/{n}",
              "actions": [{"action_id": "backout_timeline", "value": str(incident), "type": "button",
                           "action_ts": f"{n}.{time.time()}"}]}
    return urlencode({"payload": json.dumps(action)})


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        root = Path(tmp)
        remote = Remote(root / "gitops")
        shas: dict[int, str] = {}
        for n in range(1, INCIDENTS + 1):
            shas[n] = remote.commit(f"svc{n}: bump", {f"apps/svc{n}/deploy.yaml": f"image: svc{n}:2\n"},
                                    minutes=1, push=False)
        remote.push()
        with FakeGitHub(remote.bare).serving() as github, FakeSlack().serving() as slack:
            github.fail("POST", r"/pulls$", 0, delay=10.0, times=1000)
            settings = slack_settings(root, remote=remote.bare, github_url=github.base_url, slack_url=slack.base_url)
            playbooks = service_playbooks(INCIDENTS)
            app = bootstrap.build(settings, playbooks=playbooks)
            with serve_in_thread(app.http) as base, httpx.Client(base_url=base, timeout=30) as client:
                for n in range(1, INCIDENTS + 1):
                    alert = {"status": "firing", "fingerprint": f"{n:016x}",
                             "labels": {"alertname": "HighErrorRate", "service": f"svc{n}"}, "annotations": {},
                             "startsAt": (remote.clock + timedelta(minutes=1)).isoformat(),
                             "endsAt": "0001-01-01T00:00:00Z"}
                    client.post("/webhooks/alertmanager", json={
                        "version": "4", "status": "firing", "groupKey": f"g{n}", "alerts": [alert]})
                time.sleep(2)  # let the investigations rank
                samples = run(base, slack, shas, rate=args.rate, seconds=args.seconds)
                pending = len(github.pulls)
            app.close()
    samples.sort()
    p50, p99 = statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000
    print(f"{len(samples)} signed requests at {args.rate:.0f}/s ({INCIDENTS} rollback confirmations, the rest "
          f"commands and buttons), GitHub PR creation delayed 10 s")
    print(f"ack latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {samples[-1] * 1000:.1f} ms "
          f"(target p99 < 300 ms)")
    print(f"pull requests GitHub had answered for when the run ended: {pending} of {INCIDENTS} "
          "(the rollbacks were still waiting on it; the acks were not)")


def run(base: str, slack: FakeSlack, shas: dict[int, str], *, rate: float, seconds: float) -> list[float]:
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(16)]
    samples: list[float] = []

    def send(n: int, scheduled: float) -> None:
        body = requests_for(n, slack, shas)
        answer = clients[n % len(clients)].post("/slack/events", content=body, headers=signed(body))
        if answer.status_code != 200:
            raise SystemExit(f"request {n}: {answer.status_code} {answer.text}")
        samples.append(time.monotonic() - scheduled)

    total = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=16) as pool:
        begin = time.monotonic() + 0.1
        futures = []
        for n in range(total):
            scheduled = begin + n / rate
            pause = scheduled - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(send, n, scheduled))
        for future in futures:
            future.result()
    for client in clients:
        client.close()
    return samples


if __name__ == "__main__":
    main()
