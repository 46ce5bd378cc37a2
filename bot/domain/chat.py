"""Chat rules, pure: escaping untrusted text for Slack, who may act, parsing commands."""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection
from dataclasses import dataclass

from bot.domain.errors import InvalidInput

SECTION_LIMIT = 3000  # characters in one Block Kit section
MAX_BLOCKS = 50

COMMANDS = {
    "help": "help",
    "list": "list",
    "show": "show ID",
    "suspects": "suspects ID",
    "plan": "plan ID",
    "ack": "ack ID",
    "rollback": "rollback ID [SHA]",
    "branch": "branch ID",
    "restore": "restore ID [GOOD-SHA] [SHARED-PATH...]",
    "freeze": "freeze ID|SERVICE [reconcile-disabled]",
    "unfreeze": "unfreeze ID|SERVICE",
    "hold": "hold ID",
    "ready": "ready ID",
    "resolve": "resolve ID [note]",
    "reopen": "reopen ID [note]",
    "note": "note ID text",
    "update": "update ID text",
    "role": "role ID ROLE @user",
    "severity": "severity ID LEVEL",
    "timeline": "timeline ID",
    "export": "export ID [markdown|json]",
    "open": 'open "title" [service]',
}
# How many words each command needs after the incident id (its usage says which).
NEEDS = {"note": 1, "update": 1, "role": 2, "severity": 1}
_REF = re.compile(r"^(?:inc-)?\d{1,18}$", re.IGNORECASE)


def escape_mrkdwn(text: str) -> str:
    """Untrusted text shown literally in Slack: `<!channel>` or `<url|x>` ping and link no one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Command:
    name: str
    incident: str | None = None
    args: tuple[str, ...] = ()


def parse_command(text: str) -> Command:
    """`rollback INC-7 abc123` -> Command("rollback", "INC-7", ("abc123",)); InvalidInput if unknown."""
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"cannot read the command: {exc}") from exc
    if not words:
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    if name not in COMMANDS:
        raise InvalidInput(f"unknown command {name[:30]!r}")
    if name in ("help", "list"):
        return Command(name)
    if name == "open":
        if not rest:
            raise InvalidInput('open needs a title: open "title" [service]')
        return Command(name, None, tuple(rest[:2]))
    # In an incident's own channel the id may be left out: the channel says which incident.
    incident, args = (rest[0], rest[1:]) if rest and _REF.match(rest[0]) else (None, rest)
    if len(args) < NEEDS.get(name, 0):
        raise InvalidInput(f"{name} needs more: {COMMANDS[name]} (ID may be left out in the incident's channel)")
    return Command(name, incident, tuple(args))


def usage() -> str:
    return ("Usage: " + " · ".join(f"`{COMMANDS[name]}`" for name in COMMANDS)
            + ". In an incident's channel, ID may be left out.")


def may_roll_back(*, user: str, user_groups: Collection[str], owners_users: Collection[str],
                  owners_groups: Collection[str], responders: Collection[str]) -> bool:
    """Rollback, restore, branch and hold (an automatic merge): the playbook's owners (users or groups)
    or the global responders."""
    allowed = set(owners_users) | set(owners_groups) | set(responders)
    return user in allowed or bool(set(user_groups) & allowed)
