"""Running an incident: its roles (the lead, and those a playbook lists), status updates for the
channel, its severity set by a person, and the reminder when no update was posted for a while."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from bot.domain.errors import InvalidInput
from bot.domain.incidents import refuse
from bot.domain.models import Actor, Incident, Severity, acting
from bot.domain.playbooks import Playbook
from bot.domain.ports import Store, Transaction
from bot.domain.rooms import LEAD, UpdateReminders, check_role
from bot.domain.timeline import EventKind, event
from bot.domain.untrusted import storable
from bot.services.incidents import require
from bot.services.rooms import role_names

UPDATE_LIMIT = 3000  # characters of a status update (a Slack section holds 3000)


def assign_role(*, store: Store, playbooks: Sequence[Playbook], incident_id: int, role: str, user: str,
                actor_id: str, now: datetime, on_behalf_of: str = "") -> str:
    """Give a role to someone (the lead is handed over this way); what changed, in words.
    `on_behalf_of`: whom the actor says it acts for (the API's `by`)."""
    who = acting(actor_id, on_behalf_of)

    def work(tx: Transaction) -> str:
        incident = require(tx, incident_id)
        refuse(incident, "change its roles")
        name = check_role(role, role_names(playbooks, incident.playbook))
        before = tx.roles.assign(incident_id, name, user, at=now, by=who)
        if before == user:
            return f"{user} is already the {name} of {incident.ref}"
        said = f"{name}: {user}" + (f" (was {before})" if before else "") + f", set by {who}"
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.ROLE_ASSIGNED, actor=Actor.USER,
                                 actor_id=actor_id, on_behalf_of=on_behalf_of, text=said,
                                 data={"role": name, "user": user, "was": before}))
        tx.rooms.request_invites(incident_id)  # the new holder belongs in the channel
        return f"{incident.ref} {said}"

    return store.run(work)


def post_update(*, store: Store, incident_id: int, text: str, actor_id: str, now: datetime,
                on_behalf_of: str = "") -> str:
    """A status update: on the timeline, and in the channel (the thread broadcasts it)."""
    try:
        words = storable(" ".join(text.split()))
    except ValueError as exc:
        raise InvalidInput(f"the update {exc}") from None
    if not words:
        raise InvalidInput("an update needs some text: update ID text")

    def work(tx: Transaction) -> str:
        incident = require(tx, incident_id)
        refuse(incident, "take a status update (use `note` for the record)")
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.STATUS_UPDATE, actor=Actor.USER,
                                 actor_id=actor_id, on_behalf_of=on_behalf_of, text=words[:UPDATE_LIMIT]))
        return f"Status update posted on {incident.ref}."

    return store.run(work)


def set_severity(*, store: Store, incident_id: int, level: str, actor_id: str, now: datetime,
                 on_behalf_of: str = "") -> tuple[Incident, bool]:
    """Raise or lower the severity by hand; (the incident, whether it changed)."""
    choices = [s.value for s in Severity if s is not Severity.NONE]
    if level.strip().lower() not in choices:
        raise InvalidInput(f"no severity {level[:30]!r}: one of {', '.join(choices)}")
    target = Severity(level.strip().lower())

    def work(tx: Transaction) -> tuple[Incident, bool]:
        incident = require(tx, incident_id)
        refuse(incident, "change its severity")
        if incident.severity is target:
            return incident, False
        raised = target.rank > incident.severity.rank
        updated = incident.model_copy(update={"severity": target})
        tx.incidents.save(updated)
        verb = "raised" if raised else "lowered"
        tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.SEVERITY_RAISED if raised else EventKind.SEVERITY_LOWERED,
            actor=Actor.USER, actor_id=actor_id, on_behalf_of=on_behalf_of,
            text=f"Severity {verb} from {incident.severity.value} to {target.value} by "
                 f"{acting(actor_id, on_behalf_of)}",
            data={"from": incident.severity.value, "to": target.value}))
        return updated, True

    return store.run(work)


def remind_updates(*, store: Store, policy: UpdateReminders, now: datetime) -> list[int]:
    """Remind the incidents someone works on that went the `reminders` interval without an update."""
    reminded = []
    for incident in store.run(lambda tx: tx.incidents.list(active=True, limit=500)):
        if incident.id is None or policy.updates.get(incident.severity) is None:
            continue
        if store.run(partial(_remind, incident=incident, policy=policy, now=now)):
            reminded.append(incident.id)
    return reminded


def _remind(tx: Transaction, *, incident: Incident, policy: UpdateReminders, now: datetime) -> bool:
    number = incident.id or 0
    events = tx.timeline.for_incident(number)
    updates = [e.at for e in events if e.kind == EventKind.STATUS_UPDATE]
    reminders = [e.at for e in events if e.kind == EventKind.UPDATE_REMINDER]
    every = policy.due(incident, last_update=max(updates, default=None), last_reminder=max(reminders, default=None),
                       now=now)
    if every is None:
        return False
    lead = tx.roles.for_incident(number).get(LEAD)
    minutes = int(every.total_seconds() // 60)
    tx.timeline.append(event(
        incident_id=number, at=now, kind=EventKind.UPDATE_REMINDER, actor=Actor.SCHEDULER,
        text=f"No status update for {minutes} min{f'; lead: {lead}' if lead else ''}: post one with "
             f"`update {incident.ref} <text>`", data={"lead": lead, "every_seconds": every.total_seconds()}))
    return True
