"""Incident rooms on Slack, driven from the outbox by the delivery's drain: the channel made
(`conversations.create`, a suffix on `name_taken`), people invited (`users.lookupByEmail`,
`conversations.invite`), a one-line pointer in the alerts channel, the channel archived a while
after the resolution, and unarchived (or replaced) if the incident is reopened. Each method keeps
to its rate tier; a 429 waits for Retry-After.

Idempotent: the name is stored before the create call, so after a crash (or a lost answer) the
`name_taken` that follows finds the channel Backout made (its creator, after the request) and
adopts it instead of making a second one; the pointer is looked for before it is posted again."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack import lookup
from bot.adapters.slack.pacing import MethodBudget, Paced
from bot.domain.chat import escape_mrkdwn
from bot.domain.durations import format_duration
from bot.domain.models import ACTIVE_STATUSES, Actor, Incident, IncidentStatus
from bot.domain.ports import ChatThread, Room, Store, Transaction
from bot.domain.rooms import Invitees, channel_name
from bot.domain.timeline import EventKind, event

log = structlog.get_logger(__name__)
MAX_SUFFIX = 20  # inc-7-checkout, inc-7-checkout-1, ...: past that, someone is squatting the names
SERVER_ERROR_RETRY = timedelta(seconds=10)
UNREACHABLE_RETRY = timedelta(seconds=30)
THREAD_CATCH_UP = timedelta(seconds=5)  # an archive waits for the thread to carry the last events
REFUSED_RETRY = timedelta(hours=1)  # an error of ours (a scope, a permission): tried again hourly
POINTER_TYPE = "backout_room_pointer"
NO_POINTER = "-"  # nowhere to point from (no alerts channel, or it is the room itself)
HINTS = {
    "missing_scope": "grant the app channels:manage, groups:write and users:read.email, then reinstall it",
    "restricted_action": "the workspace lets only some members make channels: ask an admin to allow the app",
    "not_in_channel": "invite the app to the channel",
    "is_archived": "the channel is archived",
    "name_taken": f"the template's name and {MAX_SUFFIX} suffixed ones are taken: change slack.channel_name",
}


class Find(Protocol):
    """(channel ID, ts) of a message Backout posted in a channel (by name or ID), by its metadata."""

    def __call__(self, name: str, marker: dict[str, Any], *, since: datetime,
                 event_type: str) -> tuple[str, str] | None: ...


class Refused(Exception):
    """A step Slack will not take however often it is asked (every name taken, say)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class Placement:
    """Where an incident's message goes, given its room."""

    channel: str | None = None  # its room's channel (with `hold`: the archived one being brought back)
    hold: bool = False  # the room is being made, or unarchived for a reopen: the message waits for it
    drop: bool = False  # the room is archived: nothing more is sent there


class SlackRooms:
    def __init__(self, *, store: Store, client: WebClient, template: str, archive_after: timedelta | None,
                 invitees: Callable[[int], Invitees], alerts_channel: Callable[[str | None], str | None],
                 declare: Callable[[datetime], object] = lambda _: None) -> None:
        """`invitees`: who belongs in an incident's room now; `alerts_channel`: where a playbook's
        incidents are announced (the pointer goes there); `declare`: declare the rooms now due."""
        self._store = store
        self._client = client
        self._template = template
        self._archive_after = archive_after
        self._invitees = invitees
        self._alerts_channel = alerts_channel
        self._declare = declare
        self._budget = MethodBudget()
        self._me: str | None = None

    def place(self, incident_id: int) -> Placement:
        def read(tx: Transaction) -> tuple[Room | None, bool]:
            room = tx.rooms.get(incident_id)
            if room is None or room.state != "archived":
                return room, False
            incident = tx.incidents.get(incident_id)
            return room, incident is not None and incident.status in ACTIVE_STATUSES

        room, reopened = self._store.run(read)
        if room is None:
            return Placement()
        if room.state == "archived":  # reopened: it waits for the channel to come back
            return Placement(hold=True, channel=room.channel_id) if reopened else Placement(drop=True)
        if room.channel_id is None:  # being made; refused (the error says why): the alerts channel
            return Placement(hold=room.error is None)
        return Placement(channel=room.channel_id)

    def drain(self, now: datetime, *, spend: Callable[[str, datetime], bool], find: Find) -> int:
        """Take the due steps of each room; returns how many rooms were worked on. A room paced or
        failing waits (`not_before`) and the others go on; a 429 stops its method for all.
        `spend`: a message's token in a channel; `find`: what an earlier attempt posted there."""
        self._declare(now)
        archive_before = now - self._archive_after if self._archive_after is not None else None
        rooms = self._store.run(lambda tx: tx.rooms.due(now, resolved_before=archive_before))
        for room in rooms:
            try:
                self._steps(room, now, spend, find)
            except Paced as paced:
                self._wait(room.incident_id, until=paced.until, failed=False)
            except Refused as refused:
                self._refused(room.incident_id, error=refused.error, now=now)
            except SlackApiError as exc:
                error = str(exc.response.get("error", "unknown_error"))
                if exc.response.status_code >= 500:
                    log.warning("slack.room_server_error", incident=room.incident_id, error=error)
                    self._wait(room.incident_id, until=now + SERVER_ERROR_RETRY, failed=True)
                else:
                    self._refused(room.incident_id, error=error, now=now)
            except Exception as exc:  # unreachable, timed out: a create may have gone through (name_taken finds it)
                log.warning("slack.room_unreachable", incident=room.incident_id, error=type(exc).__name__)
                self._wait(room.incident_id, until=now + UNREACHABLE_RETRY, failed=True)
        return len(rooms)

    def _steps(self, room: Room, now: datetime, spend: Callable[[str, datetime], bool], find: Find) -> None:
        incident = self._incident(room.incident_id)
        if room.state == "archived":  # `due` gives an archived room only when its incident is active again
            room = self._unarchive(room, incident, now)
        if room.state == "pending":
            room = self._create(room, incident, now)
        if room.invites_due:
            room = self._invite(room, now)
        if room.pointer_ts is None:
            room = self._point(room, incident, now, spend, find)
        after = self._archive_after
        if (after is not None and incident.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
                and incident.resolved_at is not None and now - incident.resolved_at >= after):
            self._archive(room, now, after)

    # ---- the steps ----
    def _create(self, room: Room, incident: Incident, now: datetime) -> Room:
        base = channel_name(self._template, incident_id=room.incident_id, service=incident.service)
        name = room.name or base
        suffix = _suffix(name, base)
        for _ in range(MAX_SUFFIX):
            room = self._save(replace(room, name=name))  # before the call: a crash finds it by this name
            try:
                answer = self._call("conversations.create", now, partial(
                    self._client.conversations_create, name=name, is_private=room.private))
                return self._opened(room, str(answer["channel"]["id"]), now)
            except SlackApiError as exc:
                if exc.response.get("error") != "name_taken":
                    raise
            ours = self._ours(name, room, now)
            if ours is not None:
                return self._opened(room, ours, now)
            suffix += 1
            name = channel_name(self._template, incident_id=room.incident_id, service=incident.service, suffix=suffix)
        raise Refused("name_taken")

    def _ours(self, name: str, room: Room, now: datetime) -> str | None:
        """The channel of that name if Backout made it for this room (a create whose answer was lost)."""
        self._budget.take("conversations.list", now)
        found = lookup.channel_by_name(self._client, name)
        if found is None or found.get("creator") != self._bot_user(now):
            return None
        made = float(found.get("created") or 0)
        return str(found["id"]) if made >= room.requested_at.timestamp() - 60 else None

    def _opened(self, room: Room, channel_id: str, now: datetime) -> Room:
        opened = replace(room, channel_id=channel_id, state="open", error=None, attempts=0, not_before=None)

        def work(tx: Transaction) -> None:
            tx.rooms.save(opened)
            kind = "private channel" if room.private else "channel"
            tx.timeline.append(event(incident_id=room.incident_id, at=now, kind=EventKind.ROOM_CREATED,
                                     actor=Actor.BACKOUT, text=f"Its own {kind}: #{room.name}",
                                     data={"channel": channel_id, "name": room.name, "private": room.private}))
            tx.chat.put_summary(room.incident_id, None, {"kind": "room.created"}, at=now)  # the message moves in

        self._store.run(work)
        return opened

    def _invite(self, room: Room, now: datetime) -> Room:
        wanted = self._invitees(room.incident_id)
        me = self._bot_user(now)
        matched: dict[str, str] = {}  # email -> Slack user
        named: list[str] = []
        for email, who in (wanted.emails or {}).items():
            if email in room.invited:
                continue
            try:
                answer = self._call("users.lookupByEmail", now, partial(self._client.users_lookupByEmail, email=email))
                matched[email] = str(answer["user"]["id"])
            except SlackApiError as exc:
                if exc.response.get("error") != "users_not_found":
                    raise
                named.append(f"{who} ({email})")
        invite = [u for u in dict.fromkeys([*wanted.users, *matched.values()]) if u not in room.invited and u != me]
        if invite:
            try:
                self._call("conversations.invite", now, lambda: self._client.conversations_invite(
                    channel=room.channel_id or "", users=",".join(invite), force=True))
            except SlackApiError as exc:
                if exc.response.get("error") not in ("already_in_channel", "cant_invite_self"):
                    raise
        looked_up = [e for e in (wanted.emails or {}) if e not in room.invited]
        done = replace(room, invites_due=False, invited=tuple(dict.fromkeys([*room.invited, *invite, *looked_up])))
        text = "; ".join(part for part in (
            f"Invited {', '.join(invite)}" if invite else "",
            f"named, not invited (no Slack user with their email): {', '.join(named)}" if named else "") if part)

        def work(tx: Transaction) -> None:
            tx.rooms.save(done)
            if text:
                tx.timeline.append(event(incident_id=room.incident_id, at=now, kind=EventKind.ROOM_INVITED,
                                         actor=Actor.BACKOUT, text=text, data={"invited": invite, "named": named}))

        self._store.run(work)
        return done

    def _point(self, room: Room, incident: Incident, now: datetime, spend: Callable[[str, datetime], bool],
               find: Find) -> Room:
        """One line where the incident was announced: the message already there becomes it, or one is
        posted. A post is marked unconfirmed first: after a lost answer (a time-out, a 5xx, a crash)
        the next attempt looks for it by its metadata before posting again."""
        text = f"{incident.ref} {escape_mrkdwn(incident.title)}: handled in its own channel <#{room.channel_id}>"
        thread: ChatThread | None = self._store.run(lambda tx: tx.chat.thread(room.incident_id))
        if thread is not None and thread.channel != room.channel_id:
            try:
                self._call("chat.update", now, lambda: self._client.chat_update(
                    channel=thread.channel, ts=thread.ts, text=text,
                    blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}]))
                return self._save(replace(room, pointer_ts=thread.ts))
            except SlackApiError as exc:  # the message is in an earlier room, archived: a pointer is posted
                if exc.response.get("error") != "is_archived":
                    raise
        channel = self._alerts_channel(incident.playbook)
        if not channel or channel == room.channel_id:
            return self._save(replace(room, pointer_ts=NO_POINTER))
        marker = {"incident": room.incident_id, "room": room.channel_id}
        if room.pointer_unconfirmed:
            found = self._call("conversations.history", now, lambda: find(
                channel, marker, since=room.requested_at, event_type=POINTER_TYPE))
            if found is not None:
                log.info("slack.lost_pointer_found", incident=room.incident_id)
                return self._save(replace(room, pointer_ts=found[1], pointer_unconfirmed=False))
        if not spend(channel, now):
            raise Paced(now + timedelta(seconds=1))
        room = self._save(replace(room, pointer_unconfirmed=True))
        answer = self._client.chat_postMessage(
            channel=channel, text=text, unfurl_links=False, unfurl_media=False,
            metadata={"event_type": POINTER_TYPE, "event_payload": marker})
        return self._save(replace(room, pointer_ts=str(answer["ts"]), pointer_unconfirmed=False))

    def _archive(self, room: Room, now: datetime, after: timedelta) -> None:
        """Archived once its thread has carried every event; the thread then stops there (an
        archived channel takes no more replies)."""
        thread = self._store.run(lambda tx: tx.chat.thread(room.incident_id))
        here = thread is not None and thread.channel == room.channel_id
        if here and thread is not None and self._store.run(
                lambda tx: tx.timeline.after(room.incident_id, thread.last_event_id, 1)):
            raise Paced(now + THREAD_CATCH_UP)
        try:
            self._call("conversations.archive", now,
                       lambda: self._client.conversations_archive(channel=room.channel_id or ""))
        except SlackApiError as exc:
            if exc.response.get("error") != "already_archived":
                raise

        def work(tx: Transaction) -> None:
            tx.rooms.save(replace(room, state="archived"))
            archived = tx.timeline.append(event(
                incident_id=room.incident_id, at=now, kind=EventKind.ROOM_ARCHIVED, actor=Actor.SCHEDULER,
                text=f"Channel #{room.name} archived, {format_duration(after)} after the resolution",
                data={"channel": room.channel_id}))
            if here and thread is not None:
                tx.chat.save_thread(replace(thread, last_event_id=archived.id or thread.last_event_id,
                                            reply_unconfirmed=False))

        self._store.run(work)

    def _unarchive(self, room: Room, incident: Incident, now: datetime) -> Room:
        """The incident was reopened after its channel was archived: the channel comes back, its people
        are invited again and the card goes there again. Where Slack refuses (bot tokens may not
        unarchive in every workspace; a missing scope), a new channel with the next suffix is made."""
        try:
            self._call("conversations.unarchive", now,
                       lambda: self._client.conversations_unarchive(channel=room.channel_id or ""))
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if exc.response.status_code >= 500:
                raise
            if error != "not_archived":  # someone brought it back already: as good as ours
                return self._replace(room, incident, now, error=error)
        back = replace(room, state="open", invites_due=True, invited=(), error=None, attempts=0, not_before=None)

        def work(tx: Transaction) -> None:
            tx.rooms.save(back)
            tx.timeline.append(event(incident_id=room.incident_id, at=now, kind=EventKind.ROOM_UNARCHIVED,
                                     actor=Actor.BACKOUT, data={"channel": room.channel_id},
                                     text=f"Channel #{room.name} unarchived: the incident was reopened"))
            tx.chat.put_summary(room.incident_id, None, {"kind": "room.unarchived"}, at=now)

        self._store.run(work)
        return back

    def _replace(self, room: Room, incident: Incident, now: datetime, *, error: str) -> Room:
        """A new channel for the reopened incident, named with the next suffix (made by the next step)."""
        base = channel_name(self._template, incident_id=room.incident_id, service=incident.service)
        name = channel_name(self._template, incident_id=room.incident_id, service=incident.service,
                            suffix=_suffix(room.name or base, base) + 1)
        fresh = replace(room, name=name, channel_id=None, state="pending", invites_due=True, invited=(),
                        pointer_ts=None, pointer_unconfirmed=False, error=None, attempts=0, not_before=None)
        hint = HINTS.get(error, "see Slack's documentation of the error")

        def work(tx: Transaction) -> None:
            tx.rooms.save(fresh)
            tx.timeline.append(event(
                incident_id=room.incident_id, at=now, kind=EventKind.ROOM_FAILED, actor=Actor.BACKOUT,
                text=f"Slack refused to unarchive #{room.name} for the reopened incident: {error}; {hint}. "
                     f"A new channel instead: #{name}",
                data={"error": error, "step": "unarchive", "channel": room.channel_id, "name": name}))

        log.warning("slack.room_unarchive_refused", incident=room.incident_id, error=error, name=name)
        self._store.run(work)
        return fresh

    # ---- calls and records ----
    def _call(self, method: str, now: datetime, call: Callable[[], Any]) -> Any:
        """One paced call; a 429 closes the method until Retry-After and pauses this room."""
        self._budget.take(method, now)
        try:
            return call()
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                headers = exc.response.headers
                wait = int(headers.get("Retry-After", headers.get("retry-after", "1")) or 1)
                self._budget.close(method, now + timedelta(seconds=wait))
                log.warning("slack.rate_limited", method=method, retry_after=wait)
                raise Paced(now + timedelta(seconds=wait)) from exc
            raise

    def _bot_user(self, now: datetime) -> str:
        """Backout's own Slack user (the creator of the channels it makes), asked once."""
        if self._me is None:
            self._me = str(self._call("auth.test", now, self._client.auth_test).get("user_id", ""))
        return self._me

    def _incident(self, incident_id: int) -> Incident:
        incident = self._store.run(lambda tx: tx.incidents.get(incident_id))
        assert incident is not None  # a room belongs to a stored incident (a foreign key)
        return incident

    def _save(self, room: Room) -> Room:
        self._store.run(lambda tx: tx.rooms.save(room))
        return room

    def _wait(self, incident_id: int, *, until: datetime, failed: bool) -> None:
        """Not before `until`: paced, or Slack's own trouble (the message keeps waiting for the room)."""

        def work(tx: Transaction) -> None:
            room = tx.rooms.get(incident_id)
            if room is not None:
                tx.rooms.save(replace(room, not_before=until, attempts=room.attempts + int(failed)))

        self._store.run(work)

    def _refused(self, incident_id: int, *, error: str, now: datetime) -> None:
        """Slack refused a step: said once on the timeline with what to do; tried again hourly. A room
        not made yet lets the incident's message go to the alerts channel meanwhile."""

        def work(tx: Transaction) -> None:
            room = tx.rooms.get(incident_id)
            if room is None:
                return
            if room.error != error:
                hint = HINTS.get(error, "see Slack's documentation of the error")
                tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.ROOM_FAILED,
                                         actor=Actor.BACKOUT, text=f"Slack refused a step of the incident's "
                                                                   f"channel: {error}; {hint}",
                                         data={"error": error}))
            tx.rooms.save(replace(room, not_before=now + REFUSED_RETRY, error=error, attempts=room.attempts + 1))
            if room.state == "pending":
                tx.chat.put_summary(incident_id, None, {"kind": "room.failed"}, at=now)

        log.warning("slack.room_refused", incident=incident_id, error=error)
        self._store.run(work)


def _suffix(name: str, base: str) -> int:
    """The number a channel's name adds to the template's (`inc-7-checkout-2`: 2; the name itself: 0)."""
    found = re.search(r"-(\d+)$", name) if name != base else None
    return int(found.group(1)) if found else 0
