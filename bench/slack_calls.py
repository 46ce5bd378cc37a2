"""Slack calls per incident, from the Alertmanager webhook to its resolution, and how soon the card is out.

The app runs in HTTP mode on SQLite with a real git remote, the fake GitHub and the fake Slack
Web API over HTTP. Each incident, one after the other: the firing webhook; the card posted and
its thread; Acknowledge; the rollback confirmed (the revert's pull request opened); the pull
request merged and followed; Resolve; then quiet until delivery has sent everything. Prints the
Slack Web API calls per incident by method (goal: at most 20 with an incident channel; the
channel's calls, conversations.*, are counted when the app makes them), the time from the
webhook to the card posted (p50, max) and the card's length as a person reads it.
With `--channel`, each incident is critical at its playbook's `room.declare_at`: it gets a channel
of its own (created, people invited, a pointer in the alerts channel, archived at once after the
resolution with `slack.archive_after: 0s`, so the archive is counted too).
Usage: python bench/slack_calls.py [--incidents N] [--channel]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.slack_app import OWNER, service_playbooks, signed, slack_settings
from bot import bootstrap
from bot.adapters.slack.card import visible_text
from bot.adapters.slack.lookup import METADATA_TYPE
from bot.config import LoggingSettings
from bot.domain.rooms import RoomPolicy
from bot.entrypoints.serving import serve_in_thread
from bot.services.pull_requests import follow_pull_requests
from tests.adapters.test_slack_http import wait_for
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote

QUIET = 3.0  # seconds without a Slack call: delivery is done (the card's debounce is 2 s)


def interaction(client: httpx.Client, slack: FakeSlack, payload: dict[str, Any]) -> None:
    body = urlencode({"payload": json.dumps({"user": {"id": OWNER}, "team": {"id": "T1"},
                                             "response_url": f"{slack.base_url}/respond/bench", **payload})})
    answer = client.post("/slack/events", content=body, headers=signed(body))
    if answer.status_code != 200:
        raise SystemExit(f"Slack request refused: {answer.status_code} {answer.text}")


def button(client: httpx.Client, slack: FakeSlack, action: str, value: str) -> None:
    interaction(client, slack, {"type": "block_actions", "trigger_id": "t", "actions": [
        {"action_id": action, "value": value, "type": "button", "action_ts": f"{time.time():.6f}"}]})


def quiet(slack: FakeSlack) -> None:
    """Wait until Slack has had no call for QUIET seconds."""
    seen, since = len(slack.calls), time.monotonic()
    while time.monotonic() - since < QUIET:
        time.sleep(0.1)
        if len(slack.calls) != seen:
            seen, since = len(slack.calls), time.monotonic()


def card_of(args: dict[str, Any], incident: int) -> bool:
    meta = args.get("metadata") or {}
    meta = json.loads(meta) if isinstance(meta, str) else meta
    return (not args.get("thread_ts") and meta.get("event_type") == METADATA_TYPE
            and (meta.get("event_payload") or {}).get("incident") == incident)


def one_incident(n: int, *, client: httpx.Client, slack: FakeSlack, github: FakeGitHub, app: bootstrap.App,
                 sha: str, starts: datetime) -> tuple[Counter[str], float, int]:
    """(Slack calls by method, seconds from the webhook to the card posted, the card's length)."""
    first = len(slack.calls)
    alert = {"status": "firing", "fingerprint": f"{n:016x}", "labels": {"alertname": "HighErrorRate",
             "service": f"svc{n}", "severity": "critical"}, "annotations": {"summary": f"svc{n} answers 5xx"},
             "startsAt": starts.isoformat(), "endsAt": "0001-01-01T00:00:00Z"}
    began = time.monotonic()
    client.post("/webhooks/alertmanager", json={"version": "4", "status": "firing", "groupKey": f"g{n}",
                                                 "alerts": [alert]})
    wait_for(lambda: any(name == "chat.postMessage" and card_of(args, n) for name, args in slack.calls[first:]),
             timeout=30)
    posted = time.monotonic() - began
    quiet(slack)
    button(client, slack, "backout_ack", str(n))
    interaction(client, slack, {"type": "view_submission", "view": {
        "id": f"V{n}", "type": "modal", "callback_id": "backout_confirm_rollback", "state": {"values": {}},
        "private_metadata": json.dumps({"incident": n, "sha": sha})}})
    number = wait_for(lambda: next((p for p, pull in github.pulls.items() if f"INC-{n}/" in pull["head"]["ref"]),
                                   None), timeout=30)
    github.merge(number)
    follow_pull_requests(store=app.ctx.store, forge=app.ctx.forge, notifier=app.ctx.notifier,
                         now=datetime.now(UTC))
    quiet(slack)
    button(client, slack, "backout_resolve", str(n))
    quiet(slack)
    calls = slack.calls[first:]
    cards = [args["blocks"] for name, args in calls if (name == "chat.update" and args.get("blocks"))
             or (name == "chat.postMessage" and card_of(args, n))]
    length = max(len(visible_text(json.loads(b) if isinstance(b, str) else b)) for b in cards)
    return Counter(name for name, _ in calls), posted, length


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5)
    parser.add_argument("--channel", action="store_true", help="a channel per incident (room.declare_at: critical)")
    args = parser.parse_args()
    count = args.incidents
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        root = Path(tmp)
        remote = Remote(root / "gitops", start=datetime.now(UTC) - timedelta(hours=2))
        shas = {n: remote.commit(f"svc{n}: raise the pool size", {f"apps/svc{n}/deploy.yaml": f"pool: {n}\n"},
                                 minutes=1, push=False) for n in range(1, count + 1)}
        remote.push()
        with FakeGitHub(remote.bare).serving() as github, FakeSlack().serving() as slack:
            settings = slack_settings(root, remote=remote.bare, github_url=github.base_url, slack_url=slack.base_url)
            playbooks = service_playbooks(count)
            if args.channel:
                playbooks = [p.model_copy(update={"room": RoomPolicy(declare_at="critical")}) for p in playbooks]
                settings = settings.model_copy(update={"slack": settings.slack.model_copy(
                    update={"archive_after": timedelta(0)})})
            app = bootstrap.build(settings, playbooks=playbooks)
            results = []
            with serve_in_thread(app.http) as base, httpx.Client(base_url=base, timeout=30) as client:
                for n in range(1, count + 1):
                    results.append(one_incident(n, client=client, slack=slack, github=github, app=app, sha=shas[n],
                                                starts=remote.clock + timedelta(minutes=5)))
            app.close()
    report(results)


def report(results: list[tuple[Counter[str], float, int]]) -> None:
    totals = [sum(calls.values()) for calls, _, _ in results]
    methods = sorted({m for calls, _, _ in results for m in calls})
    channel = sum(calls[m] for calls, _, _ in results for m in calls if m.startswith("conversations.")) > 0
    print(f"{len(results)} incidents, each: webhook, card, ack, rollback confirmed, revert PR merged, resolve")
    print(f"Slack Web API calls per incident ({'with' if channel else 'without'} an incident channel; "
          "goal <= 20 with one):")
    for method in methods:
        counts = [calls[method] for calls, _, _ in results]
        print(f"  {method:34} {statistics.mean(counts):5.1f}  (min {min(counts)}, max {max(counts)})")
    print(f"  {'total':34} {statistics.mean(totals):5.1f}  (min {min(totals)}, max {max(totals)})")
    seconds = sorted(posted for _, posted, _ in results)
    print(f"webhook to card posted: p50 {statistics.median(seconds) * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms")
    lengths = [length for _, _, length in results]
    print(f"card length as read (the longest version of each card): max {max(lengths)} characters (limit 600)")


if __name__ == "__main__":
    main()
