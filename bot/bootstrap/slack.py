"""Slack from the settings: the bolt app, its delivery and its notifier, over a built context."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.adapters.slack.delivery import SlackDelivery
from bot.adapters.slack.marks import SlackMessages
from bot.adapters.slack.notifier import SlackNotifier
from bot.adapters.slack.rooms import SlackRooms
from bot.config import ConfigError, Problem
from bot.entrypoints.charts import review_files
from bot.entrypoints.context import AppContext, SlackParts
from bot.entrypoints.slack_app import build_slack_app
from bot.services.card import incident_message
from bot.services.chat import ChatCommands
from bot.services.chat_timeline import ChatTimeline
from bot.services.incidents import get_incident
from bot.services.rooms import declare_due, invitees

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler


def build_slack(ctx: AppContext, *, client: WebClient | None = None) -> SlackParts:
    """The Slack app, its delivery and its notifier, over an already-built context."""
    slack = ctx.settings.slack
    problems = [Problem("config", key, reason) for key, reason in slack.problems()
                if key in ("slack.bot_token", "slack.channel")]
    if problems:
        raise ConfigError(problems)
    assert slack.bot_token is not None
    client = client or WebClient(token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=10)
    by_name = {p.name: p for p in ctx.playbooks}

    def channel_for(playbook: str | None) -> str | None:
        found = by_name.get(playbook or "")
        return (found.chat.channel if found and found.chat.channel else None) or slack.channel

    def links_for(incident_id: int) -> list[tuple[str, str]]:
        incident = ctx.store.run(lambda tx: tx.incidents.get(incident_id))
        found = by_name.get(incident.playbook or "") if incident else None
        links = [("Runbook", found.runbook)] if found and found.runbook else []
        page = ctx.signed_page_url(incident_id)  # a person opens it now: signed, fresh at each post
        return links + ([("Incident page", page)] if page else [])

    def thread_files(incident_id: int) -> list[tuple[str, bytes]]:
        """The chart and the post-mortem draft for the thread when the incident resolves."""
        view = get_incident(store=ctx.store, incident_id=incident_id)
        markdown, chart = review_files(ctx, view, f"{view.incident.ref}.png")
        return [(f"{view.incident.ref}.png", chart), (f"{view.incident.ref}.md", markdown)]

    rooms = SlackRooms(
        store=ctx.store, client=client, template=slack.channel_name, archive_after=slack.archive_after,
        alerts_channel=channel_for, declare=lambda now: declare_due(store=ctx.store, playbooks=ctx.playbooks, now=now),
        invitees=lambda incident_id: invitees(store=ctx.store, playbooks=ctx.playbooks, incident_id=incident_id,
                                              pager=ctx.pager))
    delivery = SlackDelivery(store=ctx.store, client=client, clock=ctx.clock, channel_for=channel_for,
                             links_for=links_for, may_deliver=lambda: ctx.leader.is_leader(), review_files=thread_files,
                             channel_rate=slack.channel_rate, claim=ctx.settings.scheduler.follow_up_lease,
                             describe=lambda incident_id: incident_message(store=ctx.store, incident_id=incident_id,
                                                                          playbooks=ctx.playbooks, now=ctx.clock()),
                             rooms=rooms)
    ctx.notifier = SlackNotifier(store=ctx.store, kick=delivery.kick, clock=ctx.clock)
    commands = ChatCommands(
        store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier, playbooks=ctx.playbooks,
        clock=ctx.clock, responders=tuple(slack.responders), applied=ctx.applied,
        import_window=ctx.settings.git.import_window, page_url=ctx.page_url, metrics=ctx.metrics_query,
        markdown=ctx.export.markdown, export_links=ctx.export_links, rooms=True)
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
    listeners = ThreadPoolExecutor(max_workers=slack.workers, thread_name_prefix="slack-listener")
    slow = ThreadPoolExecutor(max_workers=slack.workers, thread_name_prefix="slack-work")
    timeline = ChatTimeline(store=ctx.store, messages=SlackMessages(client), clock=ctx.clock)
    app = build_slack_app(commands=commands, client=client, signing_secret=secret or "unused-in-socket-mode",
                          slash=slack.command, listeners=listeners, slow=slow, timeline=timeline,
                          timeline_emoji=slack.timeline_emoji)
    return SlackParts(app=app, delivery=delivery, signing_secret=secret, listeners=listeners, slow=slow)


def socket_mode(slack: SlackParts, app_token: str) -> SocketModeHandler:
    """Slack in Socket Mode (not connected yet): slack_sdk's built-in client, over the app's own
    WebClient, so `apps.connections.open` goes where the settings send every call (slack.api_url).
    Each envelope is acknowledged by its envelope_id; on Slack's `disconnect` it opens a new
    connection before closing the old one."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler  # only `serve` in Socket Mode needs it

    return SocketModeHandler(slack.app, app_token, web_client=slack.app.client)
