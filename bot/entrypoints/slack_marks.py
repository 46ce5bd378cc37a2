"""The Slack listeners that feed the timeline from the incident's channel: pins and reactions with
the timeline emoji (pin_added, pin_removed, reaction_added, reaction_removed). Bolt acknowledges
events before they run; the Slack reads they need run in bolt's listener pool."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import structlog
from slack_bolt import App

from bot.adapters.slack.marks import pin_mark, reaction_mark
from bot.domain.errors import BackoutError
from bot.services.chat_timeline import ChatTimeline

log = structlog.get_logger(__name__)


def register_marks(app: App, *, timeline: ChatTimeline, emoji: Collection[str]) -> None:
    """`emoji`: the reactions that put a message on the timeline (names without colons)."""
    wanted = frozenset(emoji)

    @app.event("pin_added")
    def on_pin_added(event: dict[str, Any]) -> None:
        if parsed := pin_mark(event):
            mark, message = parsed
            _quietly(lambda: timeline.marked(mark, message=message))

    @app.event("pin_removed")
    def on_pin_removed(event: dict[str, Any]) -> None:
        if parsed := pin_mark(event):
            mark, _message = parsed
            _quietly(lambda: timeline.unmarked(mark))

    @app.event("reaction_added")
    def on_reaction_added(event: dict[str, Any]) -> None:
        if mark := reaction_mark(event, wanted):
            _quietly(lambda: timeline.marked(mark))

    @app.event("reaction_removed")
    def on_reaction_removed(event: dict[str, Any]) -> None:
        if mark := reaction_mark(event, wanted):
            _quietly(lambda: timeline.unmarked(mark))


def _quietly(work: Callable[[], object]) -> None:
    """Slack does not show an event's failure to anyone: it is logged (storage down, say)."""
    try:
        work()
    except BackoutError as exc:
        log.warning("slack.mark_failed", error=str(exc))
