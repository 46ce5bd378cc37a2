"""Chat commands and buttons, for any chat adapter: what each does, who may, and the audit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bot.domain.chat import COMMANDS, Command, escape_mrkdwn, may_roll_back, usage
from bot.domain.errors import BackoutError, InvalidInput
from bot.domain.models import Actor, IncidentStatus, parse_incident_ref
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import AppliedTimes, Clock, Forge, GitRepos, MetricsQuery, Notifier, Store, Transaction
from bot.domain.rooms import LEAD, mentioned_user
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import VerdictKind
from bot.services import act, automerge, incident_branch, override, roles
from bot.services import incidents as incident_service
from bot.services import verdicts as verdict_service
from bot.services.act import RollbackPlan
from bot.services.authors import notify_authors
from bot.services.export import ExportLinks, build_export
from bot.services.freeze import freeze, incident_for, unfreeze
from bot.services.investigate import investigate
from bot.services.notify import incident_lines, incident_update
from bot.services.plan import incident_plan
from bot.services.restore import plan_restore, restore
from bot.services.restore_body import restore_summary
from bot.services.rooms import declare_due, declare_room
from bot.services.text import render_incident_list, when

_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
ROOM_COMMANDS = frozenset({"update", "role", "severity"})


@dataclass(frozen=True)
class Reply:
    text: str
    private: bool = True
    confirm: RollbackPlan | None = None
    file: tuple[str, str] | None = None  # (file name, content)


@dataclass
class ChatCommands:
    store: Store
    git: GitRepos
    forge: Forge
    notifier: Notifier
    playbooks: Sequence[Playbook]
    clock: Clock
    responders: Collection[str] = ()
    applied: AppliedTimes | None = None
    import_window: timedelta = timedelta(days=7)
    page_url: Callable[[int], str | None] = field(default=lambda _: None)
    metrics: MetricsQuery | None = None
    markdown: Callable[[dict[str, Any]], str] | None = None  # the export renderer's Markdown
    export_links: Callable[[], ExportLinks] = field(default=ExportLinks)
    rooms: bool = False  # a channel per declared incident (Slack)

    def run(self, command: Command, *, user: str, groups: Callable[[Collection[str]], set[str]],
            channel: str | None = None) -> Reply:
        """Run a parsed command for a Slack user; `groups(candidates)` says which of those
        user groups the user is in; `channel`: where it was typed (an incident's own channel names
        the incident when the command does not). Errors come back as a private reply."""
        try:
            reply = self._run(command, user=user, groups=groups, channel=channel)
        except BackoutError as exc:
            return Reply(f"{exc}")
        return reply

    def _run(self, command: Command, *, user: str, groups: Callable[[Collection[str]], set[str]],
             channel: str | None) -> Reply:
        now = self.clock()
        if command.name == "help":
            return Reply(usage())
        if command.name == "list":
            found = incident_service.list_incidents(store=self.store, status=None, limit=20)
            active = [i for i in found if i.active] or found[:5]
            return Reply("```" + render_incident_list(active) + "```")
        if command.name == "open":
            return self._open(command, user=user, now=now)
        if command.name in ("freeze", "unfreeze"):
            return self.freeze(command, user=user, groups=groups, now=now, channel=channel)
        number = self._incident(command, channel)
        self._audit(number, user, f"/incident {command.name} {' '.join(command.args)}".strip(), now)
        if command.name in ROOM_COMMANDS:
            return self._room_command(command, number, user=user, groups=groups, now=now)
        if command.name in ("show", "suspects"):
            view = incident_service.get_summary(store=self.store, incident_id=number)
            return Reply(f"{view.incident.ref} {view.incident.title}\n" + "\n".join(incident_lines(view)))
        if command.name == "plan":
            plan = incident_plan(store=self.store, playbooks=self.playbooks, incident_id=number, now=now)
            return Reply(f"INC-{number} rollback plan: {plan.reason}\n{plan.line()}")
        if command.name == "timeline":
            return Reply(self.timeline(number))
        if command.name == "ack":
            return self._status(number, IncidentStatus.ACKNOWLEDGED, user, now)
        if command.name == "resolve":
            return self._status(number, IncidentStatus.RESOLVED, user, now, note=" ".join(command.args))
        if command.name == "reopen":
            return self._status(number, IncidentStatus.OPEN, user, now, note=" ".join(command.args))
        if command.name == "note":
            incident_service.add_note(store=self.store, incident_id=number, text=" ".join(command.args),
                                      actor=Actor.USER, actor_id=user, now=now)
            return Reply(f"Noted on INC-{number}.", private=False)
        if command.name == "export":
            return self._export(command, number, now)
        if command.name in ("rollback", "branch", "restore", "hold", "ready"):
            refusal = self.refuse(number, user=user, groups=groups, what=command.name)
            if refusal is not None:
                return refusal
            if command.name == "hold":
                return self.hold(number, user=user)
            if command.name == "branch":
                return self.branch(number, user=user)
            if command.name == "restore":
                return self.restore(number, args=command.args, user=user)
            if command.name == "ready":
                return self.ready(number, user=user)
            return Reply("Confirm the rollback.", confirm=self.plan(number, sha=(command.args or (None,))[0]))
        return Reply(usage())

    def _room_command(self, command: Command, number: int, *, user: str,
                      groups: Callable[[Collection[str]], set[str]], now: datetime) -> Reply:
        """update (anyone), role and severity (the lead, the playbook's owners, the responders)."""
        if command.name == "update":
            said = roles.post_update(store=self.store, incident_id=number, text=" ".join(command.args),
                                     actor_id=user, now=now)
            incident_update(store=self.store, notifier=self.notifier, incident_id=number, kind="incident.update")
            return Reply(said, private=False)
        lead = self.store.run(lambda tx: tx.roles.for_incident(number).get(LEAD))
        what = "hand over roles of" if command.name == "role" else "change the severity of"
        refusal = self.refuse(number, user=user, groups=groups, what=what, lead=lead)
        if refusal is not None:
            return refusal
        if command.name == "role":
            said = roles.assign_role(store=self.store, playbooks=self.playbooks, incident_id=number,
                                     role=command.args[0], user=mentioned_user(command.args[1]), actor_id=user,
                                     now=now)
            incident_update(store=self.store, notifier=self.notifier, incident_id=number, kind="incident.role")
            return Reply(said, private=False)
        incident, changed = roles.set_severity(store=self.store, incident_id=number, level=command.args[0],
                                               actor_id=user, now=now)
        if not changed:
            return Reply(f"{incident.ref} is already {incident.severity.value}")
        incident_update(store=self.store, notifier=self.notifier, incident_id=number, kind="incident.severity")
        if self.rooms:  # raised to the playbook's threshold: its channel now
            declare_due(store=self.store, playbooks=self.playbooks, now=now)
        return Reply(f"{incident.ref} severity is now {incident.severity.value} (by {user})", private=False)

    def _incident(self, command: Command, channel: str | None) -> int:
        """The incident the command names, else the one whose own channel it was typed in."""
        if command.incident is not None:
            return parse_incident_ref(command.incident)
        room = self.store.run(lambda tx: tx.rooms.by_channel(channel)) if channel else None
        if room is None:
            raise InvalidInput(f"which incident? {COMMANDS[command.name]} (ID may be left out only in an "
                               "incident's own channel)")
        return room.incident_id

    def _export(self, command: Command, number: int, now: datetime) -> Reply:
        fmt = (command.args or ("markdown" if self.markdown else "json",))[0].lower()
        if fmt not in ("markdown", "json") or (fmt == "markdown" and self.markdown is None):
            return Reply("export takes markdown or json")
        view = incident_service.get_incident(store=self.store, incident_id=number)
        document = build_export(view, generated_at=now, links=self.export_links())
        content = (self.markdown(document) if fmt == "markdown" and self.markdown
                   else json.dumps(document, indent=2))
        return Reply(f"Export of INC-{number}", file=(f"INC-{number}.{'md' if fmt == 'markdown' else 'json'}",
                                                      content))

    # ---- pieces the buttons use too ----
    def refuse(self, number: int, *, user: str, groups: Callable[[Collection[str]], set[str]],
               what: str, lead: str | None = None) -> Reply | None:
        """None when the user may (the playbook's owners, the responders, and `lead` when given);
        otherwise a private refusal, audited."""
        incident = incident_service.get_summary(store=self.store, incident_id=number).incident
        playbook = playbook_named(self.playbooks, incident.playbook)
        owners_users = playbook.owners.slack_users if playbook else ()
        owners_groups = playbook.owners.slack_groups if playbook else ()
        candidates = {g for g in (*owners_groups, *self.responders) if g.startswith("S")}
        if user == lead or may_roll_back(user=user, user_groups=groups(candidates) if candidates else set(),
                                         owners_users=owners_users, owners_groups=owners_groups,
                                         responders=self.responders):
            return None
        now = self.clock()
        self.store.run(lambda tx: tx.timeline.append(event(
            incident_id=number, at=now, kind=EventKind.CHAT_REFUSED, actor=Actor.USER, actor_id=user,
            text=f"Refused {what} for {user}: not an owner of playbook "
                 f"{incident.playbook or '(none)'} nor a responder{' nor the lead' if lead else ''}")))
        names = ", ".join([*owners_users, *owners_groups, *self.responders]) or "nobody is named"
        who = f"its lead ({lead}), " if lead else ""
        return Reply(f"You may not {what} INC-{number}: only {who}the playbook's owners and the responders "
                     f"may ({names}). Ask one of them, or an admin to add you to the playbook's owners.")

    def plan(self, number: int, *, sha: str | None) -> RollbackPlan:
        return act.plan_rollback(store=self.store, git=self.git, playbooks=self.playbooks, incident_id=number,
                                 sha=sha)

    def rollback(self, number: int, *, sha: str, user: str, force: bool = False) -> str:
        """The confirmed rollback; slow work (git, GitHub): run it off the request thread. `force`:
        the user confirmed the override for a change the ranking excluded."""
        result = act.confirmed_rollback(store=self.store, git=self.git, notifier=self.notifier, forge=self.forge,
                                        playbooks=self.playbooks, incident_id=number, sha=sha, actor=Actor.USER,
                                        actor_id=user, now=self.clock(), page_url=self.page_url(number),
                                        force=force)
        return result.message

    def excluded(self, number: int, *, sha: str) -> str | None:
        """Why the ranking excludes this change as a rollback target now, or None (a quick read)."""
        return self.store.run(lambda tx: override.excluded(tx, number, sha))

    def branch(self, number: int, *, user: str) -> Reply:
        """The incident branch in every repository of the playbook, each with its draft pull request."""
        made = incident_branch.open_branches(store=self.store, git=self.git, forge=self.forge,
                                             notifier=self.notifier, playbooks=self.playbooks, incident_id=number,
                                             actor=Actor.USER, actor_id=user, now=self.clock(),
                                             page_url=self.page_url(number))
        lines = [f"{a.repo}: {a.branch}" + (f" ({a.url})" if a.url else "") for a in made]
        return Reply(f"Incident branch of INC-{number}:\n" + "\n".join(lines), private=False)

    def ready(self, number: int, *, user: str) -> Reply:
        """The incident branch's pull requests marked ready for review, the playbook's reviewers asked."""
        done = incident_branch.mark_ready(store=self.store, forge=self.forge, notifier=self.notifier,
                                          playbooks=self.playbooks, incident_id=number, actor=Actor.USER,
                                          actor_id=user, now=self.clock())
        return Reply(f"INC-{number}: ready for review: " + ", ".join(a.url or a.repo for a in done), private=False)

    def restore(self, number: int, *, args: Sequence[str], user: str) -> Reply:
        """`restore ID` shows what a restore to last known good would do and how to confirm it;
        `restore ID <good sha> [shared paths]`, naming the revision shown, makes it."""
        confirm, include = (args[0], tuple(args[1:])) if args and _SHA.match(args[0]) else (None, tuple(args))
        plan = plan_restore(store=self.store, git=self.git, playbooks=self.playbooks, incident_id=number,
                            now=self.clock(), include=include)
        if confirm is None or not plan.good.sha.startswith(confirm.lower()):
            again = " ".join((f"INC-{number}", plan.good.short, *include))
            return Reply(escape_mrkdwn(restore_summary(plan)) + f"\nTo make it: `/incident restore {again}`")
        playbook = playbook_named(self.playbooks, plan.playbook)
        result = restore(store=self.store, git=self.git, notifier=self.notifier, plan=plan, actor=Actor.USER,
                         actor_id=user, now=self.clock(), forge=self.forge, page_url=self.page_url(number),
                         reviewers=playbook.actions.reviewers if playbook else ())
        return Reply(escape_mrkdwn(result.message), private=False)

    def freeze(self, command: Command, *, user: str, groups: Callable[[Collection[str]], set[str]],
               now: datetime, channel: str | None = None) -> Reply:
        """`freeze INC-7|checkout [reconcile-disabled]`, `unfreeze ...`: who may roll back may freeze.
        In an incident's own channel the incident may be left out."""
        named = [word for word in command.args if word != "reconcile-disabled"]
        target = command.incident or (named[0] if named else None)
        number = incident_for(self.store, target) if target else self._incident(command, channel)
        self._audit(number, user, f"/incident {command.name} {target or ''} {' '.join(command.args)}".strip(), now)
        refusal = self.refuse(number, user=user, groups=groups, what=command.name)
        if refusal is not None:
            return refusal
        act_on = partial(freeze if command.name == "freeze" else unfreeze, store=self.store, git=self.git,
                         notifier=self.notifier, forge=self.forge, playbooks=self.playbooks, incident_id=number,
                         actor=Actor.USER, actor_id=user, now=now, page_url=self.page_url(number))
        result = (act_on(reconcile_disabled="reconcile-disabled" in command.args) if command.name == "freeze"
                  else act_on())
        return Reply(f"INC-{number} {command.name}: {result.message}", private=False)

    def hold(self, number: int, *, user: str) -> Reply:
        """Hold the automatic merge announced for the incident (the caller checked the permission)."""
        result = automerge.hold(store=self.store, notifier=self.notifier, incident_id=number, actor=Actor.USER,
                                actor_id=user, now=self.clock())
        return Reply(result.message, private=not result.changed)

    def status(self, number: int, target: IncidentStatus, user: str) -> Reply:
        """A status button: a state that does not allow it is answered privately, naming the state."""
        try:
            return self._status(number, target, user, self.clock())
        except BackoutError as exc:
            return Reply(str(exc))

    def verdict(self, number: int, *, kind: VerdictKind, sha: str | None, user: str) -> Reply:
        """A responder's verdict from a button: recorded with who, the message refreshed."""
        try:
            found = verdict_service.record_verdict(
                store=self.store, playbooks=self.playbooks, incident_id=number, kind=kind, sha=sha,
                actor=Actor.USER, actor_id=user, now=self.clock(), metrics=self.metrics)
        except BackoutError as exc:
            return Reply(str(exc))
        notify_authors(store=self.store, forge=self.forge, playbooks=self.playbooks, incident_id=number,
                       now=self.clock(), page_url=self.page_url(number))
        incident_update(store=self.store, notifier=self.notifier, incident_id=number, kind="verdict")
        said = {VerdictKind.CULPRIT: f"marked {str(found.sha)[:7]} as the cause",
                VerdictKind.NOT_CULPRIT: f"ruled out {str(found.sha)[:7]}",
                VerdictKind.NO_CHANGE: "marked it as caused by no change"}[kind]
        return Reply(f"INC-{number}: {said}. Thank you: it counts in `backout report accuracy`.")

    def timeline(self, number: int) -> str:
        events = incident_service.get_timeline(store=self.store, incident_id=number)
        lines = [f"`{when(e.at)}` {e.kind} · {e.who}: {e.text}" for e in events[-30:]]
        return f"INC-{number} timeline (last {len(lines)}):\n" + "\n".join(lines)

    def _status(self, number: int, target: IncidentStatus, user: str, now: datetime, note: str = "") -> Reply:
        result = incident_service.change_status(store=self.store, incident_id=number, target=target,
                                                actor=Actor.USER, actor_id=user, now=now, note=note)
        if result.changed:
            incident_update(store=self.store, notifier=self.notifier, incident_id=number, kind=target.value)
        return Reply(result.message + ("" if not result.changed else f" (by {user})"),
                     private=not result.changed)

    def _open(self, command: Command, *, user: str, now: datetime) -> Reply:
        title, service = command.args[0], (command.args[1] if len(command.args) > 1 else "unknown")
        playbook = next((p for p in self.playbooks if p.service == service), None)
        incident = incident_service.open_manually(store=self.store, title=title, service=service,
                                                  playbook=playbook.name if playbook else None,
                                                  actor_id=user, now=now)
        if self.rooms:  # declared before the first message, so the card goes to its channel
            declare_room(store=self.store, playbooks=self.playbooks, incident_id=incident.id or 0,
                         actor=Actor.USER, actor_id=user, now=now, reason=f"opened by {user}")
        investigate(store=self.store, git=self.git, notifier=self.notifier, playbooks=self.playbooks,
                    incident_id=incident.id or 0, now=now, import_window=self.import_window,
                    forge=self.forge, applied=self.applied, page_url=self.page_url(incident.id or 0),
                    metrics=self.metrics)
        return Reply(f"Declared {incident.ref}: {incident.title}", private=False)

    def _audit(self, number: int, user: str, text: str, now: datetime) -> None:
        """Every command lands on the timeline with its Slack user (quiet in the thread)."""
        def work(tx: Transaction) -> None:
            if tx.incidents.get(number) is not None:  # an unknown id: the command answers the error
                tx.timeline.append(event(incident_id=number, at=now, kind=EventKind.CHAT_COMMAND,
                                         actor=Actor.USER, actor_id=user, text=text[:300]))

        self.store.run(work)
