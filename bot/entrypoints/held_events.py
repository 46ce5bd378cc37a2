"""Held controller events, wired (bot.services.held_events): the webhook holds an event it answers
202 and settles it when its fetch lands; the leader's sweep, at start and on `scheduler.sweep_every`,
settles what a restart, a shutdown or another replica left held."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from bot.domain.gitops import ControllerEvent
from bot.entrypoints.context import AppContext
from bot.entrypoints.refreshing import refresh_and_rerank
from bot.services.gitops import ControllerReport
from bot.services.held_events import HeldWork, settle

log = structlog.get_logger(__name__)


def held_work(ctx: AppContext, *, record: Callable[[ControllerEvent], ControllerReport],
              recorded: Callable[[ControllerEvent, ControllerReport], None]) -> HeldWork:
    """What settling needs, from the settings: every watched repository is fetched (with re-ranking
    of what it brings), and an event is held at most `git.hold_for`."""
    return HeldWork(store=ctx.store, git=ctx.git, repos=[repo.name for repo in ctx.settings.repos],
                    refresh=lambda repos: refresh_and_rerank(ctx, repos), record=record, recorded=recorded,
                    hold_for=ctx.settings.git.hold_for)


def settle_later(ctx: AppContext, work: HeldWork, events: Sequence[ControllerEvent]) -> None:
    """In a git-wait thread: wait for the fetch, then record the held events it brought."""
    chosen = list(events)

    def run() -> None:
        try:
            settle(work, clock=ctx.clock, events=chosen)
        except Exception as exc:  # logged; the events stay held for the sweep
            log.exception("held_events.settle_failed", error=str(exc))

    ctx.git_waits.submit(run)


def held_events_job(ctx: AppContext) -> None:
    """Record the held controller events whose revision a fetch brought (or that waited too long)."""
    if ctx.held is not None:
        settle(ctx.held, clock=ctx.clock, keep_going=ctx.leader.is_leader)
