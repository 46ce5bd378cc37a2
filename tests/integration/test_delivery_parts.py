"""A huge delivery written in parts says so once on each incident's timeline, with the total, and
stays coherent when the process dies between parts and Alertmanager sends it again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.storage.store import SqlStore
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert, TimelineEvent
from bot.domain.timeline import EventKind
from bot.services.ingest import ingest_deliveries
from bot.services.ingest_parts import parts

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
FLEET = 1_800  # four parts of 500, the last one smaller


def fleet_alert(n: int, status: AlertStatus = AlertStatus.FIRING) -> ReceivedAlert:
    return ReceivedAlert(fingerprint=f"{n:016x}", starts_at=NOW - timedelta(minutes=10, milliseconds=n),
                         ends_at=NOW if status is AlertStatus.RESOLVED else None, status=status,
                         labels={"alertname": "KubePodNotReady", "pod": f"fleet-{n:06d}"}, annotations={})


def fleet(status: AlertStatus = AlertStatus.FIRING) -> Delivery:
    return Delivery(group_key='{}:{service="fleet"}', status=status,
                    alerts=tuple(fleet_alert(n, status) for n in range(FLEET)))


def write(store: SqlStore, pieces: Sequence[Delivery], *, now: datetime = NOW) -> None:
    """Each part in its own transaction, as the webhook writes them."""
    for piece in pieces:
        ingest_deliveries(store=store, deliveries=[piece], playbooks=(), policy=IncidentPolicy(), now=now)


def alert_events(store: SqlStore, kind: EventKind = EventKind.ALERT_FIRING) -> list[TimelineEvent]:
    return [e for e in store.read(lambda tx: tx.timeline.for_incident(1)) if e.kind == kind.value]


def test_a_delivery_in_parts_writes_one_event_with_the_total(sql_store: SqlStore) -> None:
    """Four parts, one "1800 alerts firing" event (there was one per part); resolving them all in
    parts, one "1800 alerts resolved"."""
    write(sql_store, parts(fleet()))

    (firing,) = alert_events(sql_store)
    assert firing.data["count"] == FLEET
    assert firing.text == f"{FLEET} alerts firing: KubePodNotReady"

    write(sql_store, parts(fleet(AlertStatus.RESOLVED)), now=NOW + timedelta(minutes=1))
    (resolved,) = alert_events(sql_store, EventKind.ALERT_RESOLVED)
    assert resolved.data["count"] == FLEET


def test_a_delivery_cut_short_and_sent_again_is_counted_once(sql_store: SqlStore) -> None:
    """The process dies after two parts: the timeline says what was stored (1000); Alertmanager
    sends the delivery again: still one event, now with every alert (1800)."""
    pieces = parts(fleet())
    write(sql_store, pieces[:2])
    (firing,) = alert_events(sql_store)
    assert firing.data["count"] == 1_000
    assert sql_store.read(lambda tx: tx.alerts.count_firing(1)) == 1_000

    write(sql_store, parts(fleet()), now=NOW + timedelta(seconds=30))  # the retry, whole

    (firing,) = alert_events(sql_store)
    assert (firing.data["count"], firing.at) == (FLEET, NOW)
    assert sql_store.read(lambda tx: tx.alerts.count_firing(1)) == FLEET


def test_a_later_delivery_with_new_alerts_has_its_own_event(sql_store: SqlStore) -> None:
    """The same group a few minutes later with more alerts is another delivery: its new alerts
    get their own event, the first keeps its count."""
    write(sql_store, parts(fleet()))
    grown = Delivery(group_key='{}:{service="fleet"}', status=AlertStatus.FIRING,
                     alerts=tuple(fleet_alert(n) for n in range(FLEET + 600)))
    write(sql_store, parts(grown), now=NOW + timedelta(minutes=5))

    assert [e.data["count"] for e in alert_events(sql_store)] == [FLEET, 600]
