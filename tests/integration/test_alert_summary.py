"""A fleet-wide incident (thousands of alerts in one group) is announced, carded and planned from a
bounded read: its alerts counted in the database and only the first few built, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.console import RecordingNotifier
from bot.adapters.storage import store as sql_store
from bot.adapters.storage.store import SqlStore
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Alert, AlertStatus, Delivery, ReceivedAlert
from bot.domain.timeline import EventKind
from bot.services import notify
from bot.services.card import incident_message
from bot.services.incidents import SUMMARY_ALERTS
from bot.services.ingest import ingest_delivery
from bot.services.plan import incident_plan
from bot.services.watching import resolve_cleared

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
FLEET = 2_000


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    return sql_store


def fleet_alert(n: int, status: AlertStatus = AlertStatus.FIRING) -> ReceivedAlert:
    started = NOW - timedelta(minutes=10) + timedelta(milliseconds=n)
    return ReceivedAlert(fingerprint=f"{n:016x}", starts_at=started,
                         ends_at=NOW - timedelta(minutes=1) if status is AlertStatus.RESOLVED else None,
                         status=status, labels={"alertname": "KubePodNotReady", "pod": f"fleet-{n:06d}"},
                         annotations={"summary": f"pod fleet-{n:06d} not ready"})


def ingest(store: SqlStore, alerts: list[ReceivedAlert], *, now: datetime = NOW,
           policy: IncidentPolicy | None = None) -> set[int]:
    status = AlertStatus.FIRING if any(a.status is AlertStatus.FIRING for a in alerts) else AlertStatus.RESOLVED
    found = ingest_delivery(store=store, delivery=Delivery(group_key='{}:{service="fleet"}', status=status,
                                                           alerts=tuple(alerts)),
                            playbooks=(), policy=policy or IncidentPolicy(), now=now)
    return found.touched


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many alerts each read built (the store builds every alert it reads with `_alert`)."""
    counted = [0]
    real: Callable[[Any], Alert] = sql_store._alert

    def counting(row: Any) -> Alert:
        counted[0] += 1
        return real(row)

    monkeypatch.setattr(sql_store, "_alert", counting)
    return counted


def test_a_fleet_wide_incident_is_announced_from_its_first_alerts_and_counts(
        store: SqlStore, built: list[int]) -> None:
    """The card, the notice and the plan of a 2,000-alert incident each build at most
    SUMMARY_ALERTS alerts (they built all 2,000), and still count all of them."""
    (incident_id,) = ingest(store, [fleet_alert(n) for n in range(FLEET)])
    ingest(store, [fleet_alert(n, AlertStatus.RESOLVED) for n in range(3)])
    built[0] = 0

    card = incident_message(store=store, incident_id=incident_id, now=NOW)
    assert built[0] <= SUMMARY_ALERTS
    assert card.payload["firing"] == FLEET - 3

    built[0] = 0
    notices = RecordingNotifier()
    notify.incident_update(store=store, notifier=notices, incident_id=incident_id, kind="incident.opened")
    assert built[0] <= SUMMARY_ALERTS
    lines = notices.notices[0].lines
    assert f"Alerts: {FLEET - 3} firing of {FLEET}:" in lines
    assert f"  … and {FLEET - 3 - notify.MAX_ALERTS} more" in lines
    # the firing ones are listed first, in arrival order: the resolved 0..2 are not among them
    assert any("fleet-000003" in line for line in lines)
    assert not any("fleet-000000" in line for line in lines)

    built[0] = 0
    incident_plan(store=store, playbooks=(), incident_id=incident_id, now=NOW)
    assert built[0] <= SUMMARY_ALERTS


def test_the_summary_counts_every_alert_and_reads_the_firing_ones_first(store: SqlStore) -> None:
    """Counts by status and the latest end over all the alerts; the first alerts firing first, then
    resolved, each in arrival order; aware UTC times on either database."""
    (incident_id,) = ingest(store, [fleet_alert(n) for n in range(30)])
    ingest(store, [fleet_alert(n, AlertStatus.RESOLVED) for n in range(25)], now=NOW + timedelta(minutes=1))

    counts, first = store.read(lambda tx: tx.alerts.summary(incident_id, first=10))

    assert (counts.firing, counts.resolved, counts.total) == (5, 25, 30)
    assert counts.cleared_at == NOW  # the firing ones' receipt, later than the resolved ones' end
    assert counts.cleared_at is not None
    assert counts.cleared_at.tzinfo is not None
    assert [a.fingerprint for a in first] == [f"{n:016x}" for n in (25, 26, 27, 28, 29, 0, 1, 2, 3, 4)]
    assert store.read(lambda tx: tx.alerts.summary(incident_id, first=0))[1] == []


def test_an_incident_without_alerts_has_an_empty_summary(store: SqlStore) -> None:
    """Counts of zero, no end, no alert: an incident opened by hand."""
    with store.engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one() == 0
    counts, first = store.read(lambda tx: tx.alerts.summary(1, first=20))
    assert (counts.total, counts.cleared_at, first) == (0, None, [])


def test_a_fleet_wide_incident_reopens_and_clears_without_reading_its_alerts(
        store: SqlStore, built: list[int]) -> None:
    """Its group firing again after all 2,000 resolved reopens it, saying whether that alert fired
    before, and the scheduler resolves it once clear: both asked of the database (each read all
    2,000 alerts)."""
    (incident_id,) = ingest(store, [fleet_alert(n) for n in range(FLEET)])
    ingest(store, [fleet_alert(n, AlertStatus.RESOLVED) for n in range(FLEET)], now=NOW + timedelta(minutes=1))
    built[0] = 0

    again = fleet_alert(7).model_copy(update={"starts_at": NOW + timedelta(minutes=2)})
    ingest(store, [again], now=NOW + timedelta(minutes=2))
    assert built[0] == 0
    reopened = [e for e in store.read(lambda tx: tx.timeline.for_incident(incident_id))
                if e.kind == EventKind.INCIDENT_REOPENED.value]
    assert reopened[0].text.startswith("Reopened: KubePodNotReady fired again")

    ingest(store, [again.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": NOW + timedelta(minutes=3)})],
           now=NOW + timedelta(minutes=3), policy=IncidentPolicy(clear_for=timedelta(minutes=5)))
    built[0] = 0
    resolved = resolve_cleared(store=store, notifier=RecordingNotifier(),
                               policy=IncidentPolicy(clear_for=timedelta(minutes=5)), now=NOW + timedelta(minutes=9))
    assert resolved == 1
    assert built[0] <= SUMMARY_ALERTS  # the resolution's notice, a summary


def test_the_earliest_alerts_and_the_sources_are_asked_of_the_database(store: SqlStore) -> None:
    """`earliest`: each fingerprint's first alert, the earliest fingerprints first; `sources` and
    `has` answer for every alert of the incident."""
    (incident_id,) = ingest(store, [fleet_alert(n) for n in range(40)])
    refired = [fleet_alert(n).model_copy(update={"starts_at": NOW - timedelta(hours=1, minutes=n)})
               for n in (30, 31)]  # the earliest starts, from two later fingerprints
    ingest(store, refired, now=NOW + timedelta(minutes=1))

    first = store.read(lambda tx: tx.alerts.earliest(incident_id, fingerprints=3))

    assert [(a.fingerprint, a.starts_at) for a in first] == [
        (f"{31:016x}", NOW - timedelta(hours=1, minutes=31)), (f"{30:016x}", NOW - timedelta(hours=1, minutes=30)),
        (f"{0:016x}", fleet_alert(0).starts_at)]
    assert store.read(lambda tx: tx.alerts.sources(incident_id)) == {"alertmanager"}
    assert store.read(lambda tx: tx.alerts.has(incident_id, fingerprint=f"{3:016x}"))
    assert store.read(lambda tx: tx.alerts.has(incident_id, name="KubePodNotReady"))
    assert not store.read(lambda tx: tx.alerts.has(incident_id, name="Other"))
    assert not store.read(lambda tx: tx.alerts.has(incident_id + 1, fingerprint=f"{3:016x}"))
