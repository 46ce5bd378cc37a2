"""Incident rooms and roles, pure: a channel per declared incident (its name by Slack's rules,
when it is due), who holds which role, and when a status update is overdue."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.durations import Duration
from bot.domain.errors import InvalidInput
from bot.domain.models import Incident, IncidentStatus, Severity

LEAD = "lead"  # every incident has this role: the first to acknowledge, unless someone is set
NAME_MAX = 80  # Slack's longest channel name
DEFAULT_TEMPLATE = "inc-{id}-{service}"
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")
_ROLE = r"^[a-z][a-z0-9_-]{0,29}$"
SeverityName = Literal["info", "warning", "error", "critical"]


class RoomPolicy(BaseModel):
    """A playbook's `room`: when its incidents get a channel of their own, and who is in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    declare_at: SeverityName | None = None  # at or above this severity, declared without asking
    private: bool = False  # a private channel (security incidents)
    responders: tuple[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")], ...] = ()  # invited
    invite_authors: bool = False  # the authors of the top suspects, found by their commit email
    roles: tuple[Annotated[str, Field(pattern=_ROLE)], ...] = ()  # beyond `lead`: comms, scribe, ...

    def due(self, incident: Incident) -> bool:
        """Whether the incident is severe enough to be declared without anyone asking."""
        if self.declare_at is None or not incident.active:
            return False
        return incident.severity.rank >= Severity(self.declare_at).rank

    def role_names(self) -> tuple[str, ...]:
        return (LEAD, *(role for role in self.roles if role != LEAD))


class UpdateReminders(BaseModel):
    """The config's `reminders`: how long an incident someone works on may go without a status
    update (`/incident update`), by severity, before the channel is reminded. Absent: never."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    updates: dict[Severity, Duration] = Field(default_factory=lambda: {
        Severity.CRITICAL: timedelta(minutes=15), Severity.ERROR: timedelta(minutes=30),
        Severity.WARNING: timedelta(hours=1)})

    @field_validator("updates")
    @classmethod
    def _positive(cls, value: dict[Severity, timedelta]) -> dict[Severity, timedelta]:
        if any(every < timedelta(minutes=1) for every in value.values()):
            raise ValueError("each interval must be at least 1m")
        return value

    def due(self, incident: Incident, *, last_update: datetime | None, last_reminder: datetime | None,
            now: datetime) -> timedelta | None:
        """The interval that passed without an update, when a reminder is due now; else None.
        It counts from the acknowledgement (an open incident has the acknowledgement reminders)."""
        every = self.updates.get(incident.severity)
        if every is None or incident.status is IncidentStatus.OPEN or not incident.active:
            return None
        since = max(t for t in (incident.acknowledged_at, last_update, last_reminder, incident.opened_at) if t)
        return every if now - since >= every else None


def channel_name(template: str, *, incident_id: int, service: str, suffix: int = 0) -> str:
    """The channel's name from the template, by Slack's rules: lowercase letters, digits, `-`
    and `_`, at most 80 characters; `suffix` (after a `name_taken`) is kept within them."""
    try:
        raw = template.format(id=incident_id, service=service)
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(f"the channel name template {template!r} takes only {{id}} and {{service}}") from exc
    name = _NOT_ALLOWED.sub("-", raw.lower()).strip("-_") or f"inc-{incident_id}"
    tail = f"-{suffix}" if suffix else ""
    return name[: NAME_MAX - len(tail)].rstrip("-_") + tail


def check_template(template: str) -> str:
    """A template that makes a name (for the settings' validation: a ValueError otherwise)."""
    try:
        channel_name(template, incident_id=1, service="checkout")
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return template


_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def mentioned_user(text: str) -> str:
    """The Slack user ID in `<@U123|name>` (how Slack sends a mention with `should_escape`) or `U123`."""
    found = _MENTION.match(text.strip()) or _USER_ID.match(text.strip())
    if found is None:
        raise InvalidInput(f"{text[:40]!r} is not a Slack user: mention them (@name) so Slack sends their ID")
    return found.group(1) if found.groups() else found.group(0)


def check_role(role: str, allowed: Sequence[str]) -> str:
    """The role, lowercased, if the playbook knows it; InvalidInput naming the roles otherwise."""
    name = role.strip().lower()
    if name not in allowed:
        raise InvalidInput(f"no role {role[:30]!r} here: the roles are {', '.join(allowed)}")
    return name


@dataclass(frozen=True)
class Invitees:
    """Who goes in an incident's channel: Slack users, and people known by email only (the
    on-call, suspects' authors), looked up in Slack; one not found is named, not invited."""

    users: tuple[str, ...] = ()
    emails: Mapping[str, str] | None = None  # email -> how to name them (the commit's author)


def author_email(author: str) -> tuple[str, str] | None:
    """(email, name) from a commit author `Name <email>`; None without an email."""
    match = re.match(r"^(.*?)\s*<([^<>@\s]+@[^<>\s]+)>$", author.strip())
    if match is None:
        return None
    return match.group(2).lower(), match.group(1) or match.group(2)
