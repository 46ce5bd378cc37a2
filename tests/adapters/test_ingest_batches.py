"""Group commit: deliveries recorded together in one transaction end exactly where the same
deliveries recorded one by one end, on SQLite and on the in-memory store. The batch shares
its reads and defers its writes; these sequences make a later delivery depend on an earlier
one in the same batch (a repeat, a resolution of an alert placed just before, a reopening)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.ports import Store, Transaction
from bot.services.ingest import IngestOutcome, ingest_deliveries, ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.store import InMemoryStore

POLICY = IncidentPolicy(reopen_within=timedelta(hours=1))
SEQUENCES = {
    "fire, repeat, resolve one, resolve the last": ["01", "01", "02", "04"],
    "every captured delivery, twice": [f"{n:02d}" for n in range(1, 11)] * 2,
    "resolved, then fired again: reopened": ["01", "02", "04", "01-again"],
    "a resolution never seen firing, then its late firing copy": ["04", "01"],
    "an Alertmanager alert, then the playbook's probe joins it": ["01", "probe", "probe-resolved", "02", "04"],
}


def sqlite(tmp_path: Path) -> Store:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine)
    return SqlStore(engine)


STORES: dict[str, Callable[[Path], Store]] = {"sqlite": sqlite, "in-memory": lambda _: InMemoryStore()}


def deliveries(names: list[str]) -> list[Delivery]:
    """The captured deliveries; "-again" is the same group firing anew (a later startsAt)."""
    found = []
    for name in names:
        if name.startswith("probe"):
            found.append(probe_delivery(AlertStatus.RESOLVED if name.endswith("resolved") else AlertStatus.FIRING))
            continue
        prefix, _, again = name.partition("-")
        d = delivery(prefix)
        if again:
            d = d.model_copy(update={"alerts": tuple(
                a.model_copy(update={"starts_at": a.starts_at + timedelta(minutes=30)}) for a in d.alerts)})
        found.append(d)
    return found


def probe_delivery(status: AlertStatus) -> Delivery:
    """What the checkout playbook's probe delivers when it starts or stops firing."""
    started = Clock().now - timedelta(minutes=3)
    alert = ReceivedAlert(fingerprint="probe-checkout-errors", starts_at=started, status=status,
                          ends_at=Clock().now if status is AlertStatus.RESOLVED else None,
                          labels={"alertname": "CheckoutErrorRatio", "service": "checkout", "probe": "errors",
                                  "backout_playbook": "checkout"},
                          annotations={}, source="probe")
    return Delivery(group_key="probe:checkout/errors", status=status, alerts=(alert,))


def snapshot(store: Store) -> tuple[object, ...]:
    """Everything recorded, without ids and times that differ between two runs."""

    def read(tx: Transaction) -> tuple[object, ...]:
        incidents = sorted(tx.incidents.list(limit=100), key=lambda i: i.id or 0)
        events = [(e.kind, e.text) for i in incidents for e in tx.timeline.for_incident(i.id or 0)]
        alerts = sorted((a.fingerprint, a.starts_at, a.status.value, a.ends_at) for i in incidents
                        for a in tx.alerts.for_incident(i.id or 0))
        titles = {i.id or 0: i.title for i in incidents}
        due = tx.follow_ups.due(now=Clock().now + timedelta(days=1), limit=100)
        return ([(i.title, i.status.value, i.severity.value) for i in incidents], alerts, events,
                sorted((titles[f.incident_id], f.kind) for f in due))

    return store.run(read)


def totals(outcomes: list[IngestOutcome]) -> tuple[int, int, int, int, int]:
    return (sum(o.new_alerts for o in outcomes), sum(o.resolved_alerts for o in outcomes),
            sum(o.duplicates for o in outcomes), sum(len(o.opened) for o in outcomes),
            sum(len(o.resolved) for o in outcomes))


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("names", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_a_batch_ends_where_one_by_one_ends(tmp_path: Path, kind: str, names: list[str]) -> None:
    playbooks = load_playbooks(PLAYBOOKS)
    now = Clock().now
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one_by_one, batched = STORES[kind](tmp_path / "a"), STORES[kind](tmp_path / "b")
    singles = [ingest_delivery(store=one_by_one, delivery=d, playbooks=playbooks, policy=POLICY, now=now)
               for d in deliveries(names)]
    together = ingest_deliveries(store=batched, deliveries=deliveries(names), playbooks=playbooks,
                                 policy=POLICY, now=now)
    assert totals(together) == totals(singles)
    assert [sorted(o.touched) for o in together] == [sorted(o.touched) for o in singles]
    assert snapshot(batched) == snapshot(one_by_one)


def test_an_alert_twice_in_one_delivery_is_stored_once(tmp_path: Path) -> None:
    """A sender that repeats an alert inside one body: the copy is a duplicate, its resolution
    in the same batch resolves the stored alert."""
    (tmp_path / "db").mkdir()
    store = sqlite(tmp_path / "db")
    [first] = deliveries(["07"])
    fired = first.model_copy(update={"alerts": first.alerts * 2})
    resolved = fired.model_copy(update={"status": AlertStatus.RESOLVED, "alerts": tuple(
        ReceivedAlert(**{**a.model_dump(), "status": AlertStatus.RESOLVED,
                         "ends_at": a.starts_at + timedelta(minutes=5)}) for a in first.alerts)})
    outcomes = ingest_deliveries(store=store, deliveries=[fired, resolved], playbooks=[], policy=POLICY,
                                 now=Clock().now)
    assert [(o.new_alerts, o.duplicates, o.resolved_alerts, len(o.resolved)) for o in outcomes] == [
        (1, 1, 0, 0), (0, 0, 1, 1)]
    _, alerts, events, _ = snapshot(store)
    assert [status for _, _, status, _ in alerts] == ["resolved"]
    assert [kind for kind, _ in events] == ["incident.opened", "alert.firing", "alert.resolved",
                                            "incident.resolved"]
