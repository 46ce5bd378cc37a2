"""The Notifier port for Slack: a notice marks the incident's message stale in the outbox, and
delivery (delivery.py) rebuilds it from the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.domain.ports import Clock, Notice, Store, Transaction

INVITE_KINDS = frozenset({"incident.opened", "suspects.changed"})  # who belongs in the room may have changed


class SlackNotifier:
    """The Notifier port for Slack: queues the incident's summary in the outbox and kicks delivery."""

    def __init__(self, *, store: Store, kick: Callable[[], None], clock: Clock) -> None:
        self._store = store
        self._kick = kick  # SlackDelivery.kick: deliver soon, on the delivery thread
        self._clock = clock

    def notify(self, notice: Notice) -> None:
        """Mark the incident's message stale: delivery rebuilds it from the store, so it always
        shows the latest state, and several notices in a row become one update. Single steps
        reach the thread through the timeline."""
        marker = {"kind": notice.kind}

        def work(tx: Transaction) -> None:
            tx.chat.put_summary(notice.incident_id, None, marker, at=self._clock())
            if notice.kind in INVITE_KINDS:
                tx.rooms.request_invites(notice.incident_id)

        self._store.run(work)
        self._kick()

    def queue_updates(self, tx: Transaction, kinds: Mapping[int, str]) -> None:
        """`notify` for many incidents in the caller's transaction (the sweep's batch)."""
        tx.chat.put_summaries({incident_id: {"kind": kind} for incident_id, kind in kinds.items()}, at=self._clock())
        tx.rooms.request_invites_many([incident_id for incident_id, kind in kinds.items() if kind in INVITE_KINDS])

    def deliver_soon(self) -> None:
        self._kick()
