"""Incident rooms: a channel per declared incident. Declaring records the wish (with the timeline
event, in one transaction); the chat outbox makes the channel, invites people, points to it from
the alerts channel and archives it after the resolution. Here: when to declare and who to invite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import structlog

from bot.domain.errors import BackoutError
from bot.domain.incidents import refuse
from bot.domain.models import Actor
from bot.domain.paging import OnCall
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Pager, Room, Store, Transaction
from bot.domain.rooms import LEAD, Invitees, RoomPolicy, author_email
from bot.domain.timeline import EventKind, event
from bot.services.incidents import require

log = structlog.get_logger(__name__)
AUTHORS = 3  # the authors of this many top suspects, when the playbook invites them
_SLACK_USER = ("U", "W")


def declare_room(*, store: Store, playbooks: Sequence[Playbook], incident_id: int, actor: Actor, actor_id: str,
                 now: datetime, reason: str) -> bool:
    """Ask for the incident's own channel; False when it has one already (asked once, kept)."""

    def work(tx: Transaction) -> bool:
        incident = require(tx, incident_id)
        refuse(incident, "get a channel of its own")
        policy = _policy(playbooks, incident.playbook)
        who = actor_id or actor.value
        if not tx.rooms.add(Room(incident_id=incident_id, private=policy.private, requested_at=now,
                                 requested_by=who, not_before=now)):
            return False
        kind = "a private channel" if policy.private else "a channel"
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.ROOM_DECLARED, actor=actor,
                                 actor_id=actor_id, text=f"Declared: {kind} of its own ({reason})",
                                 data={"private": policy.private, "reason": reason}))
        return True

    return store.run(work)


def declare_due(*, store: Store, playbooks: Sequence[Playbook], now: datetime) -> list[int]:
    """Declare the active incidents whose severity reached their playbook's `room.declare_at`."""
    if not any(p.room.declare_at for p in playbooks):
        return []

    def candidates(tx: Transaction) -> list[int]:
        due = [i for i in tx.incidents.list(active=True, limit=500)
               if i.id is not None and _policy(playbooks, i.playbook).due(i)]
        return [i.id for i in due if i.id is not None and tx.rooms.get(i.id) is None]

    declared = []
    for incident_id in store.run(candidates):
        incident = store.run(partial(require, incident_id=incident_id))
        threshold = _policy(playbooks, incident.playbook).declare_at
        if declare_room(store=store, playbooks=playbooks, incident_id=incident_id, actor=Actor.BACKOUT,
                        actor_id="", now=now,
                        reason=f"severity {incident.severity.value}, at or above the playbook's {threshold}"):
            declared.append(incident_id)
    return declared


def invitees(*, store: Store, playbooks: Sequence[Playbook], incident_id: int, pager: Pager | None) -> Invitees:
    """Who belongs in the room now: who asked for it, the role holders, the playbook's responders
    and owners, the on-call (PagerDuty, when configured) and, if the playbook says so, the authors
    of the top suspects. The on-call lookup failing costs only the on-call's invitation."""

    def read(tx: Transaction) -> tuple[Room | None, list[str], list[str], str | None]:
        incident = require(tx, incident_id)
        ranking = tx.rankings.get(incident_id)
        authors = [s.author for s in (ranking.candidates[:AUTHORS] if ranking else ())]
        return tx.rooms.get(incident_id), list(tx.roles.for_incident(incident_id).values()), authors, incident.playbook

    room, holders, authors, playbook_name = store.run(read)
    playbook = playbook_named(playbooks, playbook_name)
    users = [room.requested_by] if room is not None else []
    users += holders
    emails: dict[str, str] = {}
    if playbook is not None:
        users += [*playbook.room.responders, *playbook.owners.slack_users]
        emails |= {person.email.lower(): person.name for person in _on_call(pager, playbook)}
        if playbook.room.invite_authors:
            emails |= {found[0]: found[1] for found in map(author_email, authors) if found}
    people = tuple(dict.fromkeys(u for u in users if u.startswith(_SLACK_USER) and u[1:].isalnum() and u.isupper()))
    return Invitees(users=people, emails=emails)


def _on_call(pager: Pager | None, playbook: Playbook) -> Sequence[OnCall]:
    """The first level on call for the playbook's PagerDuty service or escalation policy."""
    policy = playbook.pagerduty
    if pager is None or not (policy.service_id or policy.escalation_policy_id):
        return ()
    try:
        people = pager.on_call(service_id=policy.service_id, escalation_policy_id=policy.escalation_policy_id)
    except BackoutError as exc:  # PagerDuty down never holds the room back
        log.warning("rooms.oncall_unavailable", playbook=playbook.name, error=str(exc))
        return ()
    first = min((person.level for person in people), default=1)
    return [person for person in people if person.level == first]  # who is paged first, not the backups


def _policy(playbooks: Sequence[Playbook], name: str | None) -> RoomPolicy:
    playbook = playbook_named(playbooks, name)
    return playbook.room if playbook else RoomPolicy()


def role_names(playbooks: Sequence[Playbook], name: str | None) -> tuple[str, ...]:
    """The roles an incident of this playbook has: `lead`, then the playbook's."""
    return _policy(playbooks, name).role_names() if name else (LEAD,)
