"""The Slack app (slack-bolt): the slash command, the buttons and the rollback confirmation.

Every listener acks at once; the work runs after the ack in bolt's listener pool, which is
sized here (bolt's default has 5 threads), so a slow GitHub never makes Slack time out."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.blocks import ActionId, override_view, rollback_view
from bot.domain.chat import escape_mrkdwn, parse_command, usage
from bot.domain.errors import BackoutError, InvalidInput
from bot.domain.models import IncidentStatus
from bot.domain.verdicts import VerdictKind
from bot.entrypoints.slack_marks import register_marks
from bot.services.chat import ChatCommands, Reply
from bot.services.chat_timeline import ChatTimeline

Respond = Callable[..., Any]


class GroupMembership:
    """Which of some user groups a user is in (usergroups.users.list), cached for five minutes."""

    def __init__(self, client: WebClient, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, set[str]]] = {}

    def of(self, user: str) -> Callable[[Collection[str]], set[str]]:
        def member_of(groups: Collection[str]) -> set[str]:
            return {group for group in groups if user in self._members(group)}

        return member_of

    def _members(self, group: str) -> set[str]:
        cached = self._cache.get(group)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            users: set[str] = set(self._client.usergroups_users_list(usergroup=group).get("users", []))
        except SlackApiError:
            users = set()  # unknown group or no scope: nobody is a member (refusal explains)
        self._cache[group] = (time.monotonic(), users)
        return users


class Clicks:
    """A button pressed twice within a few seconds runs once."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._seen: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def first(self, *key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if now - t < self._window}
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def build_slack_app(*, commands: ChatCommands, client: WebClient, signing_secret: str, slash: str,
                    listeners: ThreadPoolExecutor, slow: Executor, timeline: ChatTimeline,
                    timeline_emoji: Collection[str] = ("pushpin",)) -> App:
    """The bolt App with every listener registered (the one place they are)."""
    logger = logging.getLogger("bot.slack")
    app = App(
        client=client, signing_secret=signing_secret, logger=logger,
        token_verification_enabled=False,  # no auth.test at start-up: `backout check` validates
        listener_executor=listeners,
    )
    register(app, commands=commands, groups=GroupMembership(client), slash=slash, slow=slow)
    register_marks(app, timeline=timeline, emoji=timeline_emoji)
    return app


def register(app: App, *, commands: ChatCommands, groups: GroupMembership, slash: str,
             slow: Executor) -> None:
    """Every listener acks first. Git and GitHub work (rollback, branch) then goes to `slow`, so
    a GitHub that takes seconds never holds the listener pool that acks the next request."""
    clicks = Clicks()

    @app.command(slash)
    def on_command(ack: Callable[..., None], body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        user = str(body.get("user_id", ""))
        try:
            command = parse_command(str(body.get("text", "")))
        except InvalidInput as exc:
            respond(response_type="ephemeral", text=escape_mrkdwn(f"{exc}\n{usage()}"))
            return
        reply = commands.run(command, user=user, groups=groups.of(user), channel=body.get("channel_id"))
        send(reply, respond=respond, client=client, trigger_id=body.get("trigger_id"),
             channel=body.get("channel_id"))

    def incident_of(body: dict[str, Any]) -> int:
        """The incident a button acts on: its value is "7", or "7:<sha>" for the commit it names."""
        return int(str(body["actions"][0]["value"]).partition(":")[0])

    def status_button(action_id: ActionId, target: IncidentStatus) -> None:
        @app.action(action_id)
        def on_status(ack: Callable[..., None], body: dict[str, Any], respond: Respond) -> None:
            ack()
            user, number = body["user"]["id"], incident_of(body)
            if clicks.first(user, action_id, str(number)):
                reply(respond, commands.status(number, target, user), private_only=True)

    status_button(ActionId.ACK, IncidentStatus.ACKNOWLEDGED)
    status_button(ActionId.RESOLVE, IncidentStatus.RESOLVED)
    status_button(ActionId.REOPEN, IncidentStatus.OPEN)  # a person's reopen of a resolved incident

    @app.action(ActionId.TIMELINE)
    def on_timeline(ack: Callable[..., None], body: dict[str, Any], respond: Respond) -> None:
        ack()
        respond(response_type="ephemeral", replace_original=False,
                text=escape_mrkdwn(commands.timeline(incident_of(body))))

    def owner_click(body: dict[str, Any], respond: Respond, action_id: ActionId, what: str) -> tuple[str, int] | None:
        """(user, incident) for the first press by someone allowed; a refusal is answered privately."""
        user, number = body["user"]["id"], incident_of(body)
        if not clicks.first(user, action_id, str(number)):
            return None
        refusal = commands.refuse(number, user=user, groups=groups.of(user), what=what)
        if refusal is not None:
            reply(respond, refusal, private_only=True)
            return None
        return user, number

    @app.action(ActionId.ROLLBACK)
    def on_rollback(ack: Callable[..., None], body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        allowed = owner_click(body, respond, ActionId.ROLLBACK, "roll back")
        if allowed is None:
            return
        _user, number = allowed
        # The card names the rollback plan's step to take now; a message from before names no commit.
        sha = str(body["actions"][0]["value"]).partition(":")[2] or None
        try:
            plan = commands.plan(number, sha=sha)
        except BackoutError as exc:
            respond(response_type="ephemeral", replace_original=False, text=escape_mrkdwn(str(exc)))
            return
        send(Reply("Confirm the rollback.", confirm=plan), respond=respond, client=client,
             trigger_id=body.get("trigger_id"), channel=None)

    @app.action(ActionId.BRANCH)
    def on_branch(ack: Callable[..., None], body: dict[str, Any], respond: Respond) -> None:
        ack()
        allowed = owner_click(body, respond, ActionId.BRANCH, "open an incident branch")
        if allowed is None:
            return
        user, number = allowed

        def branch() -> None:
            try:
                reply(respond, commands.branch(number, user=user), private_only=True)
            except BackoutError as exc:
                respond(response_type="ephemeral", replace_original=False, text=escape_mrkdwn(str(exc)))

        slow.submit(_quietly, branch)

    @app.action(ActionId.HOLD)
    def on_hold(ack: Callable[..., None], body: dict[str, Any], respond: Respond) -> None:
        ack()
        allowed = owner_click(body, respond, ActionId.HOLD, "hold")
        if allowed is None:
            return
        user, number = allowed
        try:
            reply(respond, commands.hold(number, user=user), private_only=True)
        except BackoutError as exc:
            respond(response_type="ephemeral", replace_original=False, text=escape_mrkdwn(str(exc)))

    def verdict_button(pattern: str, kind: VerdictKind) -> None:
        @app.action(re.compile(f"^{pattern}"))
        def on_verdict(ack: Callable[..., None], body: dict[str, Any], respond: Respond) -> None:
            ack()
            user = body["user"]["id"]
            number, _, sha = str(body["actions"][0]["value"]).partition(":")
            if clicks.first(user, kind.value, number, sha):
                reply(respond, commands.verdict(int(number), kind=kind, sha=sha or None, user=user),
                      private_only=True)

    # Anyone in the channel may say what caused it: verdicts teach the accuracy report, they act on nothing.
    verdict_button(f"{ActionId.CULPRIT}_", VerdictKind.CULPRIT)
    verdict_button(f"{ActionId.NOT_CULPRIT}_", VerdictKind.NOT_CULPRIT)
    verdict_button(f"{ActionId.NO_CHANGE}$", VerdictKind.NO_CHANGE)

    @app.action(re.compile(f"^{ActionId.LINK}_"))
    def on_link(ack: Callable[..., None]) -> None:
        ack()  # a URL button: Slack opens the link; it still tells the app

    @app.view(ActionId.CONFIRM_ROLLBACK)
    def on_confirm(ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any],
                   client: WebClient) -> None:
        user = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        number, sha, force = int(meta["incident"]), str(meta["sha"]), meta.get("force") is True
        # A change the ranking excludes now (even one that was not when the modal opened) takes a
        # second confirmation naming why: decided before the ack, which is what shows it (one read).
        why = None if force else commands.excluded(number, sha=sha)
        if why is not None:
            ack(response_action="update", view=override_view(incident_ref=f"INC-{number}", incident_id=number,
                                                             sha=sha, excluded=why))
            return
        ack()
        if not clicks.first(user, ActionId.CONFIRM_ROLLBACK, str(number), sha):
            return
        if commands.refuse(number, user=user, groups=groups.of(user), what="roll back") is not None:
            return  # audited on the timeline; the modal was opened for someone allowed
        slow.submit(_quietly, lambda: commands.rollback(number, sha=sha, user=user, force=force))


def _quietly(work: Callable[[], object]) -> None:
    """Slow work's failures are recorded on the timeline (action.failed, with the way to retry)."""
    try:
        work()
    except BackoutError:
        pass
    except Exception:
        logging.getLogger("bot.slack").exception("slack.work_failed")


def reply(respond: Respond, answer: Reply, *, private_only: bool = False) -> None:
    private = answer.private or private_only
    respond(response_type="ephemeral" if private else "in_channel", replace_original=False,
            text=escape_mrkdwn(answer.text))


def send(answer: Reply, *, respond: Respond, client: WebClient, trigger_id: str | None,
         channel: str | None) -> None:
    """Deliver a command's reply: text, a confirmation modal, or an uploaded file."""
    if answer.confirm is not None and trigger_id:
        plan = answer.confirm
        client.views_open(trigger_id=trigger_id, view=rollback_view(
            incident_ref=plan.incident_ref, incident_id=plan.incident_id, sha=plan.change.sha,
            repo=plan.change.repo, subject=plan.change.subject, author=plan.change.author, reasons=plan.reasons,
            warnings=plan.warnings, branch=plan.branch, files=plan.files, diff=plan.diff, excluded=plan.excluded))
        return
    if answer.file is not None and channel:
        name, content = answer.file
        client.files_upload_v2(channel=channel, filename=name, title=name, content=content)
        return
    reply(respond, answer)
