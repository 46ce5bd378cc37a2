"""The incident's channel feeds its timeline: a message people mark (a pin, a reaction with the
timeline emoji) becomes an entry at the message's own time, with its author and permalink, once
per message whichever mark came first; when its last mark is removed a correction hides the entry
(nothing is deleted), and a new mark shows it again."""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from bot.domain.chat import clip
from bot.domain.chat_marks import TEXT_LIMIT, ChatMessage, Mark, MarkedMessage, message_time
from bot.domain.models import Actor, TimelineEvent, format_incident_ref
from bot.domain.ports import ChatMessages, Clock, Store, Transaction
from bot.domain.timeline import EventKind, event

log = structlog.get_logger(__name__)


def incident_for(tx: Transaction, channel: str, ts: str, thread_ts: str | None) -> int | None:
    """The incident a message in `channel` belongs to: the one whose message it is or whose thread
    it is in. The one place to look: a channel of the incident's own joins it here."""
    found = tx.chat.incident_by_message(channel, ts)
    if found is None and thread_ts and thread_ts != ts:
        found = tx.chat.incident_by_message(channel, thread_ts)
    return found


@dataclass
class ChatTimeline:
    store: Store
    messages: ChatMessages
    clock: Clock

    def marked(self, mark: Mark, *, message: ChatMessage | None = None) -> int | None:
        """Record a mark; the message's entry is added on its first. `message`: the message when
        the event carried it (a pin does), else it is read. Returns the timeline entry's id, or
        None when the message belongs to no incident or cannot be read."""
        existing = self.store.run(lambda tx: self._mark_existing(tx, mark))
        if existing is not None:
            return existing
        incident_id, message = self._incident(mark, message)
        if incident_id is None:
            return None
        message = message or self.messages.message(mark.channel, mark.ts)
        if message is None:
            log.info("chat_timeline.unreadable", channel=mark.channel, ts=mark.ts)
            return None
        if message.permalink is None:
            message = replace(message, permalink=self.messages.permalink(mark.channel, mark.ts))
        return self.store.run(lambda tx: self._mark_existing(tx, mark) or self._add(tx, incident_id, mark, message))

    def unmarked(self, mark: Mark) -> int | None:
        """Remove a mark; when it was the message's last, a correction hides its entry. Returns
        the correction's id, or None when the entry stays (or there was none)."""
        return self.store.run(lambda tx: self._unmark(tx, mark))

    def _incident(self, mark: Mark, message: ChatMessage | None) -> tuple[int | None, ChatMessage | None]:
        """The incident the marked message belongs to, and the message if it had to be read."""
        thread_ts = message.thread_ts if message else mark.thread_ts
        incident_id, looked_in = self.store.run(lambda tx: (
            incident_for(tx, mark.channel, mark.ts, thread_ts), tx.chat.has_messages_in(mark.channel)))
        if incident_id is not None or message is not None or not looked_in:
            return incident_id, message
        # A reaction says only where the message is, not which thread it is in: read it to know.
        read = self.messages.message(mark.channel, mark.ts)
        if read is None or not read.thread_ts:
            return None, read
        return self.store.run(lambda tx: incident_for(tx, mark.channel, mark.ts, read.thread_ts)), read

    def _mark_existing(self, tx: Transaction, mark: Mark) -> int | None:
        found = tx.chat_marks.get(mark.channel, mark.ts)
        if found is None:
            return None
        if mark.marker not in found.markers:
            tx.chat_marks.save(found.marked(mark.marker))
            if found.hidden:  # marked again after every mark was removed: shown again
                tx.timeline.hide(found.event_id, hidden=False)
                tx.timeline.append(self._event(found, EventKind.CHAT_REPINNED, mark.by,
                                               "Marked again: the message is back on the timeline."))
        return found.event_id

    def _add(self, tx: Transaction, incident_id: int, mark: Mark, message: ChatMessage) -> int:
        at = message.at or self.clock()
        entry = tx.timeline.append(event(
            incident_id=incident_id, at=at, kind=EventKind.CHAT_PINNED, actor=Actor.USER,
            actor_id=message.author, text=clip(message.text, TEXT_LIMIT) or "(no text)",
            data={"channel": message.channel, "ts": message.ts, "thread_ts": message.thread_ts,
                  "permalink": message.permalink, "author": message.author, "marked_by": mark.by,
                  "marker": mark.marker}))
        assert entry.id is not None
        tx.chat_marks.add(MarkedMessage(incident_id=incident_id, channel=mark.channel, ts=mark.ts,
                                        event_id=entry.id, markers=frozenset({mark.marker})))
        log.info("chat_timeline.marked", incident=incident_id, channel=mark.channel, ts=mark.ts, marker=mark.marker)
        return entry.id

    def _unmark(self, tx: Transaction, mark: Mark) -> int | None:
        found = tx.chat_marks.get(mark.channel, mark.ts)
        if found is None or mark.marker not in found.markers:
            return None
        after = found.unmarked(mark.marker)
        tx.chat_marks.save(after)
        if found.hidden or not after.hidden:
            return None
        tx.timeline.hide(found.event_id)
        correction = tx.timeline.append(self._event(
            found, EventKind.CHAT_UNPINNED, mark.by,
            f"Unmarked: the message of {_when(found.ts)} is hidden from "
            f"{format_incident_ref(found.incident_id)}'s timeline."))
        return correction.id

    def _event(self, found: MarkedMessage, kind: EventKind, by: str, text: str) -> TimelineEvent:
        return event(incident_id=found.incident_id, at=self.clock(), kind=kind, actor=Actor.USER, actor_id=by,
                     text=text, data={"channel": found.channel, "ts": found.ts, "entry": found.event_id})


def _when(ts: str) -> str:
    at = message_time(ts)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else ts
