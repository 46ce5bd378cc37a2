"""The channel feeding the timeline: Slack calls per marked message, and how soon it is on the timeline.

The app runs on SQLite against the fake Slack Web API over HTTP, with one incident whose card is
posted; people's messages are in its thread. Each message is marked one way: a pin (the event
carries the message), a 📌 on a message in the thread (the message is read: history, then the
thread), a reaction with another emoji (ignored), a second mark on a marked message. Marks arrive
as Slack sends them, signed to /slack/events (HTTP mode), then over the fake Socket Mode server
(Socket Mode). Prints the Slack calls per mark by method, and the time from the event sent to the
entry on the timeline (p50, max), per mode.
Usage: python bench/slack_marks.py [--messages N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import LoggingSettings, Settings
from tests.adapters.slack_room import OTHER, PERSON, Timeline, open_incident, post_event
from tests.adapters.test_slack_http import SECRET, wait_for
from tests.conftest import PLAYBOOKS
from tests.fakes.git import FakeGit
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode

APP_TOKEN = "xapp-1-bench"
READS = ("conversations.history", "conversations.replies", "chat.getPermalink")


def settings(root: Path, slack: FakeSlack, mode: str) -> Settings:
    return Settings.model_validate({
        "storage": {"url": f"sqlite:///{root / f'{mode}.db'}"}, "alertmanager": {"auth": "none"},
        "api": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS),
        "repos": [{"name": "gitops", "url": str(root / "gitops.git")}], "chat": {"kind": "slack"},
        "slack": {"mode": mode, "bot_token": "xoxb-bench", "signing_secret": SECRET, "app_token": APP_TOKEN,
                  "api_url": f"{slack.base_url}/api/", "channel": "#incidents"}})


def measure(slack: FakeSlack, client: TestClient, send: Callable[[dict[str, Any]], None], channel: str,
            thread_ts: str, count: int) -> tuple[dict[str, Counter[str]], list[float]]:
    """Mark `count` messages each way; the Slack reads each way made, and the seconds to each entry."""
    calls: dict[str, Counter[str]] = {}
    seconds: list[float] = []
    timeline = Timeline(client)
    for n in range(count):
        for way in ("pin", "pushpin", "other emoji", "second mark"):
            ts = slack.say(channel, f"{way} {n}", user=PERSON, thread_ts=thread_ts)
            if way == "second mark":
                send(slack.pin(channel, ts, user=OTHER))
                wait_for(lambda: len(timeline.entries()) >= len(seconds) + 1, timeout=30)
                seconds.append(0.0)  # not timed: the first mark was
            before = len(slack.calls)
            entries = len(timeline.entries())
            started = time.perf_counter()
            if way == "pin":
                send(slack.pin(channel, ts, user=OTHER))
            else:
                send(slack.react(channel, ts, user=OTHER, name="thumbsup" if way == "other emoji" else "pushpin"))
            if way in ("pin", "pushpin"):
                wait_for(lambda seen=entries: len(timeline.entries()) > seen, timeout=30)
                seconds.append(time.perf_counter() - started)
            else:
                time.sleep(0.2)  # nothing to wait for: give the listener its time to do nothing
            calls.setdefault(way, Counter()).update(m for m, _ in slack.calls[before:] if m in READS)
    return calls, [s for s in seconds if s > 0]


def report(mode: str, calls: dict[str, Counter[str]], seconds: list[float], count: int) -> None:
    print(f"{mode}: {count} messages marked each way")
    for way, found in calls.items():
        per = ", ".join(f"{method} {n / count:g}" for method, n in sorted(found.items())) or "none"
        print(f"  {way:12} Slack calls per mark: {sum(found.values()) / count:g} ({per})")
    print(f"  event sent -> entry on the timeline: p50 {statistics.median(seconds) * 1000:.0f} ms, "
          f"max {max(seconds) * 1000:.0f} ms over {len(seconds)} entries")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20)
    count = parser.parse_args().messages
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    with tempfile.TemporaryDirectory() as tmp, FakeSlack().serving() as slack, FakeSocketMode().serving() as socket:
        slack.socket_url = socket.url
        for mode in ("http", "socket"):
            app = bootstrap.build(settings(Path(tmp), slack, mode), git=FakeGit())
            handler = None
            try:
                with TestClient(app.http) as client:
                    thread = open_incident(app, client)
                    if mode == "socket":
                        assert app.ctx.slack is not None
                        handler = bootstrap.socket_mode(app.ctx.slack, APP_TOKEN)
                        handler.connect()  # type: ignore[no-untyped-call]
                        socket.wait_connections(1)

                        def send(event: dict[str, Any]) -> None:
                            socket.ack(socket.send("events_api", FakeSlack.event_callback(event)))
                    else:
                        def send(event: dict[str, Any]) -> None:
                            post_event(client, event)
                    calls, seconds = measure(slack, client, send, thread.channel, thread.ts, count)
                report(mode, calls, seconds, count)
            finally:
                if handler is not None:
                    handler.close()  # type: ignore[no-untyped-call]
                app.close()


if __name__ == "__main__":
    main()
