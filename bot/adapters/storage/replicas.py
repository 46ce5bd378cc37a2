"""Replica epochs: who holds a claim, and freeing what a process's previous run held.

A serving process has a stable name (kept on disk by the caller) and, at each start, the next
epoch of that name. Every claim it takes (follow-up work, a chat summary being sent, a held
controller event being recorded, a review head) carries both. A process that starts again knows
that any claim under its name with an older epoch was held by its previous run, which is dead: it
frees them at once instead of waiting out the lease.
Claims of other names are left to their lease (another replica may be alive and busy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.store_changes import _insert

UNHELD: dict[str, object] = {"claimed_by": None, "claimed_epoch": None}


@dataclass(frozen=True)
class Holder:
    """Who takes claims: a replica's name and its epoch (how many times that name has started)."""

    name: str
    epoch: int

    def stamp(self) -> dict[str, object]:
        return {"claimed_by": self.name, "claimed_epoch": self.epoch}


def stamp(holder: Holder | None) -> dict[str, object]:
    """The columns a claim sets: its holder, or none (a process that is no replica: its claims only lapse)."""
    return holder.stamp() if holder else dict(UNHELD)


@dataclass(frozen=True)
class Released:
    """What a start freed of its previous run's claims."""

    follow_ups: int
    summaries: int
    held_events: int
    reviews: int = 0


def next_epoch(conn: Connection, name: str, *, at: datetime) -> Holder:
    """Count one more start of `name` (the first is epoch 1)."""
    statement = _insert(conn)(t.replicas).values(name=name, epoch=1, started_at=at)
    statement = statement.on_conflict_do_update(
        index_elements=["name"], set_={"epoch": t.replicas.c.epoch + 1, "started_at": at},
    ).returning(t.replicas.c.epoch)
    return Holder(name=name, epoch=int(conn.execute(statement).scalar_one()))


def release_earlier(conn: Connection, holder: Holder, *, now: datetime) -> Released:
    """Free the claims `holder.name` took in earlier epochs: its follow-up work and review heads are
    due again, its summaries being sent are pending again (their attempt counts, so a post that went
    out before the crash is found, not repeated; a review's check and comment replace their own),
    the controller events it was recording are free for the next sweep (recording is idempotent on
    the event's key)."""
    f, o, h, r = t.follow_ups.c, t.chat_outbox.c, t.held_controller_events.c, t.review_checks.c
    follow_ups = conn.execute(t.follow_ups.update().where(
        f.done_at.is_(None), f.claimed_by == holder.name, f.claimed_epoch < holder.epoch,
    ).values(claimed_until=None, **UNHELD)).rowcount
    summaries = conn.execute(t.chat_outbox.update().where(
        o.state == "sending", o.claimed_by == holder.name, o.claimed_epoch < holder.epoch,
    ).values(state="pending", not_before=now, **UNHELD)).rowcount
    held = conn.execute(t.held_controller_events.update().where(
        h.claimed_by == holder.name, h.claimed_epoch < holder.epoch,
    ).values(claimed_until=None, **UNHELD)).rowcount
    reviews = conn.execute(t.review_checks.update().where(
        r.done_at.is_(None), r.claimed_by == holder.name, r.claimed_epoch < holder.epoch,
    ).values(claimed_until=None, **UNHELD)).rowcount
    return Released(follow_ups=max(follow_ups or 0, 0), summaries=max(summaries or 0, 0),
                    held_events=max(held or 0, 0), reviews=max(reviews or 0, 0))
