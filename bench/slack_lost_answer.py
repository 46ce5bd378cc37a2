"""What a lost Slack answer costs the next delivery: an incident's message is posted, its answer
lost, then N other messages follow in the channel; a restarted delivery (SQLite, the fake Slack
over HTTP) pages the history back to the post, finds it and updates it. Prints, for each N, the
Slack calls of that retry by method, its time, and how many messages the incident has (must be 1).
Usage: python bench/slack_lost_answer.py [--newer 300 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slack_sdk import WebClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.slack.delivery import SlackDelivery
from bot.adapters.slack.notifier import SlackNotifier
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.services import card, notify
from bot.services.ingest import ingest_delivery
from tests.conftest import Clock
from tests.fakes.slack import AnswerLost, FakeSlack

CHANNEL = "#incidents"
TOKEN = "xoxb-bench"


def retry_after_lost_post(newer: int, folder: Path) -> tuple[Counter[str], float, int]:
    clock = Clock(datetime.now(UTC))
    engine = create_engine(f"sqlite:///{folder / f'lost-{newer}.db'}")
    migrate.upgrade(engine)
    store = SqlStore(engine)
    with FakeSlack(clock=clock).serving() as slack:
        api = f"{slack.base_url}/api/"

        def delivery(client: WebClient) -> SlackDelivery:
            return SlackDelivery(store=store, client=client, clock=clock, channel_for=lambda _: CHANNEL,
                                 describe=lambda n: card.incident_message(store=store, incident_id=n))

        alert = ReceivedAlert(fingerprint="0" * 16, starts_at=clock(), ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "Down", "service": "checkout"}, annotations={})
        ingest_delivery(store=store, playbooks=[], policy=IncidentPolicy(), now=clock(),
                        delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)))
        notify.incident_update(store=store, notifier=SlackNotifier(store=store, kick=lambda: None, clock=clock),
                               incident_id=1, kind="incident.opened")
        first = delivery(AnswerLost(replies=False, token=TOKEN, base_url=api))
        first.drain()
        first.close()
        people = WebClient(token=TOKEN, base_url=api)
        for n in range(newer):
            people.chat_postMessage(channel=CHANNEL, text=f"message {n}")
        before = len(slack.calls)
        clock.now += timedelta(minutes=1)
        restarted = delivery(WebClient(token=TOKEN, base_url=api))
        began = time.perf_counter()
        restarted.drain()
        took = time.perf_counter() - began
        restarted.close()
        calls = Counter(name for name, _ in slack.calls[before:])
        posts = sum(1 for m in slack.history[slack.channels["incidents"]] if "metadata" in m)
    engine.dispose()
    return calls, took, posts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--newer", type=int, nargs="+", default=[300, 3000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for newer in args.newer:
            calls, took, posts = retry_after_lost_post(newer, Path(tmp))
            print(f"lost post behind {newer:>5} messages: retry {took * 1000:.0f} ms, Slack calls {dict(calls)}; "
                  f"messages of the incident in the channel: {posts}")


if __name__ == "__main__":
    main()
