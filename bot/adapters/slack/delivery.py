"""Slack delivery from the outbox: the incident's message (posted once, then updated) and a
thread that follows the timeline. A Slack outage or a 429 delays delivery; nothing is lost,
and within an incident the order is kept (message first, then the events in timeline order)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack import lookup
from bot.adapters.slack.blocks import thread_line
from bot.adapters.slack.card import card_message, suspects_message
from bot.adapters.slack.rooms import Placement, SlackRooms
from bot.domain.chat import clip
from bot.domain.models import TimelineEvent
from bot.domain.ports import ChatThread, Clock, IncidentMessage, PendingSummary, Store, Transaction

log = structlog.get_logger(__name__)
QUIET_KINDS = frozenset({"chat.command"})  # on the timeline for the audit, not worth a thread line
# Also shown in the channel: reminders, a failed recovery, a person's status update, a room unarchived for a reopen.
LOUD_KINDS = frozenset({"incident.reminder", "verify.not_recovered", "incident.update", "incident.update_reminder",
                        "room.unarchived"})
SUSPECTS_KIND = "suspects.ranked"  # a post of its own: the suspects new to the thread, with their verdict buttons
ALONE_KINDS = LOUD_KINDS | {SUSPECTS_KIND}
ROOM_WAIT = timedelta(seconds=1)  # a message waiting for its incident's channel to be made
UPDATE_EVERY = timedelta(seconds=2)  # chat.update at most this often per incident (alert storms)
# A drainer holds the summaries it took this long; if it dies, another takes them over and finds
# a post that went out (its metadata) instead of posting again.
CLAIM = timedelta(minutes=2)
CHANNEL_RATE, CHANNEL_BURST = 1.0, 10  # messages a second per channel, and the burst allowed
CLAIM_BATCH = 20  # summaries taken by one drain, at most
SERVER_ERROR_RETRY = timedelta(seconds=10)  # after a 5xx from Slack


@dataclass
class DeliveryReport:
    posted: int = 0
    updated: int = 0
    replies: int = 0
    delayed: int = 0
    paced: int = 0  # held back to stay within a channel's rate; sent by a later drain
    paused_until: datetime | None = None
    errors: list[str] = field(default_factory=list)


class SlackDelivery:
    """Drains the outbox on one thread; `kick()` asks for a drain soon (several kicks coalesce)."""

    def __init__(self, *, store: Store, client: WebClient, clock: Clock,
                 describe: Callable[[int], IncidentMessage],
                 channel_for: Callable[[str | None], str | None],
                 may_deliver: Callable[[], bool] = lambda: True, channel_rate: float = CHANNEL_RATE,
                 claim: timedelta = CLAIM,
                 links_for: Callable[[int], list[tuple[str, str]]] = lambda _: [],
                 review_files: Callable[[int], list[tuple[str, bytes]]] = lambda _: [],
                 rooms: SlackRooms | None = None) -> None:
        """`review_files`: what goes in the thread when the incident resolves (the chart and the
        post-mortem draft), as (file name, content); `rooms`: a channel per declared incident."""
        self._rooms = rooms
        self._store = store
        self._review_files = review_files
        self._describe = describe  # what the message says is decided by the notify service
        # Only the leading replica delivers: two replicas draining one outbox would post twice.
        self._may_deliver = may_deliver
        self._client = client
        self._clock = clock
        self._channel_for = channel_for
        self._links_for = links_for
        self._paused_until: datetime | None = None
        self._last_update: dict[int, datetime] = {}
        self._budget: dict[str, tuple[float, datetime]] = {}  # channel ID -> (calls left, as of)
        self._ids: dict[str, str] = {}  # channel name -> ID, as Slack's answers (kept in the store) say
        self._rate = channel_rate
        self._claim = claim
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-delivery")
        self._kicked = threading.Event()
        self._lock = threading.Lock()

    def kick(self) -> None:
        if not self._kicked.is_set():
            self._kicked.set()
            try:
                self._executor.submit(self._drain_kicked)
            except RuntimeError:
                self._kicked.clear()  # shutting down: the outbox keeps it for the next start

    def _drain_kicked(self) -> None:
        self._kicked.clear()
        try:
            self.drain()
        except Exception as exc:  # logged; the scheduler's next drain retries
            log.exception("slack.drain_failed", error=str(exc))

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def drain(self) -> DeliveryReport:
        """Deliver what is due. Safe to call from the scheduler and after kicks (one at a time);
        on a replica that does not lead, nothing (the leader's next drain delivers it)."""
        if not self._may_deliver():
            return DeliveryReport()
        with self._lock:
            return self._drain()

    def _drain(self) -> DeliveryReport:
        report = DeliveryReport()
        now = self._clock()
        if self._paused_until and now < self._paused_until:
            report.paused_until = self._paused_until
            return report
        self._paused_until = None
        if self._rooms is not None:  # first: a message waits for its room, and then goes there
            self._rooms.drain(now, spend=lambda channel, at: self._spend(self._known_id(channel) or channel, at),
                              find=self._find_posted)
        if self._spent(now):
            report.paced += 1  # a backlog waits in the outbox, untouched, for the channel's next token
            return report
        limit = self._claimable(now)
        claimed = self._store.run(lambda tx: tx.chat.claim_summaries(now, until=now + self._claim, limit=limit))
        for index, summary in enumerate(claimed):
            if not self._deliver(summary, report, now):
                for rest in claimed[index + 1:]:  # paused: give the others back at once
                    self._delay(rest.id, now, "")
                return report
        for thread in self._store.run(lambda tx: tx.chat.threads_behind()):
            if not self._replies(thread, report, now):
                return report
        return report

    def _tokens(self, channel: str, now: datetime) -> float:
        left, since = self._budget.get(channel, (float(CHANNEL_BURST), now))
        return min(float(CHANNEL_BURST), left + (now - since).total_seconds() * self._rate)

    def _next_token(self, channel: str, now: datetime) -> datetime:
        return now + timedelta(seconds=max(0.0, 1 - self._tokens(channel, now)) / self._rate)

    def _spent(self, now: datetime) -> bool:
        """Every channel in use is out of tokens: nothing could go now (a channel not used yet
        waits for one of them, at most a token's time)."""
        return bool(self._budget) and all(self._tokens(channel, now) < 1 for channel in self._budget)

    def _claimable(self, now: datetime) -> int:
        """How many summaries to take: what the channels in use can send now, and one more (for a
        channel not used yet); claiming more would only build messages to give back."""
        if not self._budget:
            return CLAIM_BATCH
        return min(CLAIM_BATCH, 1 + sum(int(self._tokens(channel, now)) for channel in self._budget))

    def _spend(self, channel: str, now: datetime) -> bool:
        """Slack allows about one message a second per channel, with short bursts: a token bucket
        per channel keeps an alert storm inside that instead of into 429s. False: not now."""
        left = self._tokens(channel, now)
        if left < 1:
            self._budget[channel] = (left, now)
            return False
        self._budget[channel] = (left - 1, now)
        return True

    def _deliver(self, summary: PendingSummary, report: DeliveryReport, now: datetime) -> bool:
        """Post or update one incident's message; False when delivery must pause."""
        last = self._last_update.get(summary.incident_id)
        if last is not None and now - last < UPDATE_EVERY:
            # Debounced: it goes out (or a newer summary replaces it) once the interval has passed.
            self._delay(summary.id, last + UPDATE_EVERY, "")
            return True
        thread = self._thread(summary.incident_id)
        message = self._describe(summary.incident_id)
        channel = thread.channel if thread else self._channel_for(message.playbook)
        place = self._rooms.place(summary.incident_id) if self._rooms is not None else Placement()
        if place.hold:
            self._delay(summary.id, now + ROOM_WAIT, "")
            return True
        if place.drop:  # its channel is archived
            self._finish(summary.id)
            return True
        if place.channel is not None and place.channel != channel:  # it moves to the incident's channel
            channel, thread = place.channel, None
        if channel is None:
            self._delay(summary.id, now + timedelta(hours=1), "no channel: set slack.channel")
            report.errors.append(f"INC-{summary.incident_id}: no channel")
            return True
        bucket = self._known_id(channel) or channel
        if not self._spend(bucket, now):
            self._delay(summary.id, self._next_token(bucket, now), "")
            report.paced += 1
            return True
        text, blocks = card_message(message.payload, incident_id=summary.incident_id,
                                    links=self._links_for(summary.incident_id))
        try:
            if thread is None:
                marker = lookup.message_marker(summary.incident_id, message.opened_at)
                # A post whose answer was lost (a timeout, a crash) is found, not posted again; a
                # first attempt has nothing to find, and saves Slack a history call.
                found = self._find_posted(channel, marker, since=message.opened_at) if summary.attempts else None
                if found is not None:
                    where, ts = found
                    self._client.chat_update(channel=where, ts=ts, text=text, blocks=blocks)
                else:
                    answer = self._client.chat_postMessage(
                        channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                        metadata={"event_type": lookup.METADATA_TYPE, "event_payload": marker})
                    where, ts = str(answer["channel"]), str(answer["ts"])
                new = ChatThread(incident_id=summary.incident_id, channel=where, ts=ts, last_event_id=0)
                self._posted(new, summary.id, name=channel)
                self._learned(channel, where)
                report.posted += 1
            else:
                self._client.chat_update(channel=thread.channel, ts=thread.ts, text=text, blocks=blocks)
                self._finish(summary.id)
                report.updated += 1
            self._last_update[summary.incident_id] = now
        except Exception as exc:
            return not self._failed(exc, report, now, retry=partial(self._delay, summary.id))
        return True

    def _find_posted(self, name: str, marker: dict[str, Any], *, since: datetime,
                     event_type: str = lookup.METADATA_TYPE) -> tuple[str, str] | None:
        """(channel ID, ts) of this incident's message (or a room's pointer) if an earlier attempt
        posted it (its metadata says so); None when there is none or it cannot be looked for."""
        channel_id = self._channel_id(name)
        if channel_id is None:
            log.warning("slack.lost_post_unchecked", channel=name,
                        reason="the channel's ID is unknown: set the channel by ID, or grant channels:read")
            return None
        ts = lookup.find_message(self._client, channel_id, marker, since=since, event_type=event_type)
        return (channel_id, ts) if ts else None

    def _channel_id(self, name: str) -> str | None:
        """The ID for a channel the settings name: known, or from the workspace's channel list."""
        known = self._known_id(name)
        if known is None:
            known = lookup.channel_id_by_name(self._client, name)
            if known is not None:
                self._store.run(lambda tx: tx.chat.save_channel_id(name, known))
                self._learned(name, known)
        return known

    def _known_id(self, name: str) -> str | None:
        """The ID for a channel the settings name: as given, or from Slack's answer to an earlier
        post there (kept in the store, so a restart knows it too)."""
        if lookup.CHANNEL_ID.fullmatch(name):
            return name
        if name not in self._ids:
            stored = self._store.run(lambda tx: tx.chat.channel_id(name))
            if stored is not None:
                self._ids[name] = stored
        return self._ids.get(name)

    def _learned(self, name: str, channel_id: str) -> None:
        """Slack named the channel's ID: the rate budget spent under its name is the ID's."""
        self._ids[name] = channel_id
        spent = self._budget.pop(name, None) if name != channel_id else None
        current = self._budget.get(channel_id)
        if spent is not None and (current is None or spent[0] < current[0]):  # the one with fewer calls left
            self._budget[channel_id] = spent

    def _replies(self, thread: ChatThread, report: DeliveryReport, now: datetime) -> bool:
        """Post the thread's next timeline events: several waiting events go in one reply (a line
        each), a reminder or a failed recovery alone, broadcast to the channel too. Each reply is
        marked as unconfirmed before it is sent, so a lost answer is looked for, not sent twice."""
        if thread.reply_unconfirmed:
            try:
                thread = self._recover_reply(thread)
            except Exception as exc:
                return not self._failed(exc, report, now, retry=lambda _until, _error: None)
        events = self._store.run(lambda tx: tx.timeline.after(thread.incident_id, thread.last_event_id, 20))
        place = self._rooms.place(thread.incident_id) if events and self._rooms is not None else Placement()
        if place.drop:  # its channel is archived and takes no replies: the events stay on the timeline only
            self._save_thread(replace(thread, last_event_id=events[-1].id or thread.last_event_id))
            return True
        if place.hold and place.channel == thread.channel:  # a reopen: they wait for the channel to come back
            return True
        cursor = thread.last_event_id
        batch: list[TimelineEvent] = []
        for index, event in enumerate(events):
            if event.kind not in QUIET_KINDS:
                batch.append(event)
            last = index == len(events) - 1
            loud = event.kind in LOUD_KINDS
            nxt = events[index + 1] if not last else None
            if not (last or event.kind in ALONE_KINDS or (nxt is not None and nxt.kind in ALONE_KINDS)):
                continue
            if batch:
                if not self._spend(thread.channel, now):
                    report.paced += 1
                    return True  # the rest waits for the next drain, with what arrives meanwhile
                lines = [thread_line(when=e.at.strftime("%H:%M:%S"), kind=e.kind, who=e.who,
                                     text=e.text) for e in batch]
                marker = lookup.reply_marker(thread.incident_id, after=cursor, through=event.id or cursor)
                self._save_thread(replace(thread, last_event_id=cursor, reply_unconfirmed=True))
                try:
                    self._client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts, unfurl_links=False,
                                                  reply_broadcast=loud, text=clip("\n".join(lines), 3900),
                                                  blocks=self._suspects_blocks(thread.incident_id, batch),
                                                  metadata={"event_type": lookup.REPLY_METADATA_TYPE,
                                                            "event_payload": marker})
                    report.replies += 1
                except Exception as exc:
                    if self._failed(exc, report, now, retry=lambda _until, _error: None):
                        return False  # paused; the reply stays unconfirmed, looked for before it is sent again
                    if _maybe_sent(exc):
                        return True  # the same, at the next drain
                    # Refused (`ok: false`): it did not go out, and these events are passed over.
                if any(e.kind == "incident.resolved" for e in batch):
                    self._attach_review(thread)
            cursor = event.id or cursor
            batch = []
            self._save_thread(replace(thread, last_event_id=cursor, reply_unconfirmed=False))
        return True

    def _suspects_blocks(self, incident_id: int, batch: list[TimelineEvent]) -> list[dict[str, Any]] | None:
        """A ranking's post: the suspects it lists for the first time, with their reasons and verdict
        buttons, as the notify service decided; None for any other reply (plain lines)."""
        if len(batch) != 1 or batch[0].kind != SUSPECTS_KIND:
            return None
        post = self._describe(incident_id).payload.get("suspect_posts", {}).get(str(batch[0].id))
        return suspects_message(post, incident_id=incident_id) if post is not None else None

    def _recover_reply(self, thread: ChatThread) -> ChatThread:
        """After a reply whose answer was lost: if the thread shows it (its metadata), the cursor
        moves past the events it carried instead of sending them again."""
        through = lookup.find_reply(self._client, thread.channel, thread.ts, incident_id=thread.incident_id,
                                    after=thread.last_event_id)
        if through is None:
            return replace(thread, reply_unconfirmed=False)  # it did not go out: sent (and marked) again
        log.info("slack.lost_reply_found", incident=thread.incident_id, through=through)
        found = replace(thread, last_event_id=through, reply_unconfirmed=False)
        self._save_thread(found)
        return found

    def _attach_review(self, thread: ChatThread) -> None:
        """The chart and the draft in the thread once the incident resolves. A failure is logged
        and costs nothing else: the thread goes on, the export stays one command away."""
        try:
            files = self._review_files(thread.incident_id)
            if files:
                self._client.files_upload_v2(
                    channel=thread.channel, thread_ts=thread.ts,
                    initial_comment="The chart and the post-mortem draft, to start the review from.",
                    file_uploads=[{"filename": name, "content": content, "title": name} for name, content in files])
        except Exception as exc:
            log.warning("slack.review_upload_failed", incident=thread.incident_id, error=type(exc).__name__)

    # Storage steps, one transaction each.
    def _thread(self, incident_id: int) -> ChatThread | None:
        return self._store.run(lambda tx: tx.chat.thread(incident_id))

    def _delay(self, summary_id: int, until: datetime, error: str) -> None:
        self._store.run(lambda tx: tx.chat.delay_summary(summary_id, until=until, error=error))

    def _finish(self, summary_id: int) -> None:
        self._store.run(lambda tx: tx.chat.finish_summary(summary_id))

    def _save_thread(self, thread: ChatThread) -> None:
        self._store.run(lambda tx: tx.chat.save_thread(thread))

    def _posted(self, thread: ChatThread, summary_id: int, *, name: str) -> None:
        def work(tx: Transaction) -> None:
            tx.chat.save_thread(thread)
            tx.chat.finish_summary(summary_id)
            if name != thread.channel:  # Slack's answer names the channel's ID: reads need it
                tx.chat.save_channel_id(name, thread.channel)

        self._store.run(work)

    def _failed(self, exc: Exception, report: DeliveryReport, now: datetime,
                retry: Callable[[datetime, str], Any]) -> bool:
        """Record a failed call. True when delivery must pause (rate limit, outage)."""
        if isinstance(exc, SlackApiError):
            response = exc.response
            if response.status_code == 429:
                wait = int(response.headers.get("Retry-After", response.headers.get("retry-after", "1")))
                self._paused_until = now + timedelta(seconds=wait)
                retry(self._paused_until, f"rate limited: retry after {wait}s")
                report.delayed += 1
                report.paused_until = self._paused_until
                log.warning("slack.rate_limited", retry_after=wait)
                return True
            error = str(response.get("error", "unknown_error"))
            # Slack's own trouble (5xx) passes soon; an error of ours (a channel not found, a
            # missing scope) waits a minute for someone to fix it.
            retry(now + (SERVER_ERROR_RETRY if response.status_code >= 500 else timedelta(minutes=1)), error)
            report.errors.append(error)
            log.warning("slack.api_error", error=error)
            return False
        # Connection errors and time-outs: Slack is unreachable. A time-out may hide a post that
        # went through, so the message stays queued rather than being sent blind again at once.
        self._paused_until = now + timedelta(seconds=30)
        retry(self._paused_until, f"{type(exc).__name__}: {exc}"[:300])
        report.delayed += 1
        report.paused_until = self._paused_until
        log.warning("slack.unreachable", error=type(exc).__name__)
        return True


def _maybe_sent(exc: Exception) -> bool:
    """Slack's own trouble (a 5xx) may come after the message went out."""
    return isinstance(exc, SlackApiError) and exc.response.status_code >= 500
