"""The store on a real PostgreSQL: the same schema, and two replicas writing at once make one incident."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.adapters.storage.tables import metadata
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, delivery
from tests.integration.processes import Postgres

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)


@pytest.fixture
def engines(postgres: Postgres) -> Iterator[list[sa.Engine]]:
    """Two engines, as two replicas would have, on a freshly migrated database."""
    admin = create_engine(postgres.url)
    with admin.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(admin)
    pair = [admin, create_engine(postgres.url)]
    yield pair
    for engine in pair:
        engine.dispose()


def test_migrations_build_exactly_the_declared_tables(engines: list[sa.Engine]) -> None:
    """On PostgreSQL too, autogenerate finds no difference (JSONB, partial index and all)."""
    with engines[0].connect() as conn:
        assert list(compare_metadata(MigrationContext.configure(conn), metadata)) == []
    assert migrate.is_current(engines[0])


def race(stores: list[SqlStore], work: Callable[[SqlStore], object], writers: int = 8) -> None:
    """`writers` threads over the stores (replicas), released at once; any error fails the test."""
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(store: SqlStore) -> None:
        try:
            barrier.wait()
            work(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(stores[i % len(stores)],)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_replicas_delivering_at_once_make_one_incident(engines: list[sa.Engine]) -> None:
    """Eight writers over two engines race on the same deliveries: one incident, no doubles."""
    playbooks = load_playbooks(PLAYBOOKS)

    def deliver(store: SqlStore) -> None:
        for prefix in ("01", "02", "03"):
            ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks,
                            policy=IncidentPolicy(), now=NOW)

    race([SqlStore(engine) for engine in engines], deliver)
    with engines[0].connect() as conn:
        rows = conn.execute(sa.text("SELECT service, status FROM incidents ORDER BY service")).all()
        assert [tuple(row) for row in rows] == [("checkout", "open"), ("payments", "open")]
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar() == 3
        opened = conn.execute(
            sa.text("SELECT count(*) FROM timeline_events WHERE kind = 'incident.opened'")
        ).scalar()
        assert opened == 2


def test_the_whole_flow_runs_on_postgres(engines: list[sa.Engine]) -> None:
    """Ingest, investigate, roll back, chat outbox, probe state and export on PostgreSQL (JSONB,
    booleans, partial indexes, upserts)."""
    from datetime import timedelta

    from bot.adapters.console import RecordingNotifier
    from bot.domain.changes import Change, FileChange
    from bot.domain.models import Actor
    from bot.domain.ports import ChatThread, Verification
    from bot.domain.probes import ProbeState, ProbeStatus
    from bot.services.act import choose_commit, rollback
    from bot.services.export import build_export
    from bot.services.incidents import get_incident
    from bot.services.investigate import investigate
    from tests.fakes.git import FakeGit

    store = SqlStore(engines[0])
    playbooks = load_playbooks(PLAYBOOKS)
    git = FakeGit({"gitops": [Change(
        repo="gitops", sha="a" * 40, parents=("b" * 40,), author="Dev <d@example.com>",
        committed_at=datetime(2026, 11, 21, 22, 10, tzinfo=UTC), subject="checkout: bump (#5)",
        files=(FileChange(path="apps/checkout/deploy.yaml", status="M"),), additions=1, deletions=1,
        pr_number=5, image_bump=True)]})
    ingest_delivery(store=store, delivery=delivery("01"), playbooks=playbooks, policy=IncidentPolicy(), now=NOW)
    notes = RecordingNotifier()
    ranking = investigate(store=store, git=git, notifier=notes, playbooks=playbooks, incident_id=1, now=NOW,
                          import_window=timedelta(days=7))
    assert ranking.confident
    change = choose_commit(store=store, playbook=playbooks[0], incident_id=1, sha=None)
    result = rollback(store=store, git=git, notifier=notes, incident_id=1, change=change, actor=Actor.USER,
                      actor_id="U1", now=NOW)
    assert result.action.state.value == "pushed"
    store.run(lambda tx: tx.chat.put_summary(1, None, {"kind": "x"}, at=NOW))
    store.run(lambda tx: tx.chat.put_summary(1, None, {"kind": "y"}, at=NOW))
    [pending] = store.run(lambda tx: tx.chat.claim_summaries(NOW, until=NOW + timedelta(minutes=1)))
    assert pending.payload == {"kind": "y"}
    assert store.run(lambda tx: tx.chat.claim_summaries(NOW, until=NOW + timedelta(minutes=1))) == []
    store.run(lambda tx: tx.chat.save_thread(ChatThread(incident_id=1, channel="C1", ts="1.1", last_event_id=0)))
    assert [t.incident_id for t in store.run(lambda tx: tx.chat.threads_behind())] == [1]
    state = ProbeState(key="checkout/error-ratio", status=ProbeStatus.FIRING, since=NOW, value=0.2)
    store.run(lambda tx: tx.watch.save_probe_state(state))
    assert store.run(lambda tx: tx.watch.probe_state(state.key)) == state
    store.run(lambda tx: tx.watch.save_verification(Verification(incident_id=1, query="q", started_at=NOW)))
    assert len(store.run(lambda tx: tx.watch.watching())) == 1
    document = build_export(get_incident(store=store, incident_id=1), generated_at=NOW)
    assert document["actions"][0]["state"] == "pushed"
    assert document["suspects"]["items"][0]["sha"] == "a" * 40


def test_a_nul_in_alert_text_is_stored_on_postgresql(engines: list[sa.Engine]) -> None:
    """A NUL in a label or annotation is parsed to U+2400 at the border: PostgreSQL stores it."""
    import json

    from bot.adapters.alertmanager.payload import parse_delivery
    from tests.conftest import payload

    data = payload("01")
    data["alerts"][0]["labels"]["note"] = "a\x00b"
    data["alerts"][0]["annotations"]["summary"] = "\x00"
    parsed = parse_delivery(json.dumps(data).encode())
    store = SqlStore(engines[0])
    outcome = ingest_delivery(store=store, delivery=parsed, playbooks=load_playbooks(PLAYBOOKS),
                              policy=IncidentPolicy(), now=NOW)
    [alert] = [a for a in store.run(lambda tx: tx.alerts.for_incident(outcome.opened[0].id or 0))
               if a.labels.get("note")]
    assert (alert.labels["note"], alert.annotations["summary"]) == ("a\u2400b", "\u2400")


def test_two_replicas_recording_one_resolution_at_once_record_it_once(engines: list[sa.Engine]) -> None:
    """An HA pair delivers the same resolution to two replicas at the same moment: one
    `alert.resolved` and one `incident.resolved` (the update is conditional on `firing`)."""
    playbooks = load_playbooks(PLAYBOOKS)
    stores = [SqlStore(engine) for engine in engines]
    ingest_delivery(store=stores[0], delivery=delivery("03"), playbooks=playbooks, policy=IncidentPolicy(),
                    now=NOW)
    race(stores, lambda store: ingest_delivery(store=store, delivery=delivery("06"), playbooks=playbooks,
                                               policy=IncidentPolicy(), now=NOW))
    with engines[0].connect() as conn:
        kinds = [row[0] for row in conn.execute(sa.text("SELECT kind FROM timeline_events ORDER BY id"))]
    assert kinds.count("alert.resolved") == 1
    assert kinds.count("incident.resolved") == 1


def test_two_drainers_of_one_outbox_post_each_incident_once(engines: list[sa.Engine]) -> None:
    """Eight drainers over two engines, as during a leader handover: each of 40 incidents is
    posted exactly once, and an update queued meanwhile is not posted as a second message."""
    from slack_sdk import WebClient

    from bot.adapters.slack.delivery import SlackDelivery
    from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
    from bot.services import card
    from tests.fakes.slack import FakeSlack

    stores = [SqlStore(engine) for engine in engines]
    for n in range(40):
        alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "Down", "service": f"svc{n}"}, annotations={})
        ingest_delivery(store=stores[0], playbooks=[], policy=IncidentPolicy(), now=NOW,
                        delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
        stores[0].run(lambda tx, n=n: tx.chat.put_summary(n + 1, None, {"n": n}, at=NOW))
    with FakeSlack().serving() as slack:
        # A running clock and no pacing to speak of: the race is between the drainers, not the channel's rate.
        drainers = [SlackDelivery(store=store, client=WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/"),
                                  clock=lambda: datetime.now(UTC), channel_for=lambda _: "#incidents",
                                  channel_rate=10_000,
                                  describe=lambda i, store=store: card.incident_message(store=store, incident_id=i))
                    for store in stores]
        race(stores, lambda store: drainers[stores.index(store)].drain())
        posted = [c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]
        for drainer in drainers:
            drainer.close()
    assert len(posted) == 40
    with engines[0].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM chat_outbox WHERE state <> 'sent'")).scalar() == 0


def test_replicas_marking_one_message_at_once_add_one_entry(engines: list[sa.Engine]) -> None:
    """Eight pins and 📌s of one message reach two replicas at the same moment: one timeline entry
    with every mark (the second insert of (channel, ts) conflicts; its transaction, entry and all,
    runs again and finds the first); all removed: one correction, the entry hidden."""
    from bot.domain.chat_marks import ChatMessage, Mark, reaction_marker
    from bot.domain.ports import ChatThread
    from bot.services.chat_timeline import ChatTimeline

    class Messages:
        def message(self, channel: str, ts: str) -> ChatMessage:
            return ChatMessage(channel=channel, ts=ts, author="U1", text="failover done", thread_ts="1.000001")

        def permalink(self, channel: str, ts: str) -> str:
            return f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"

    stores = [SqlStore(engine) for engine in engines]
    ingest_delivery(store=stores[0], delivery=delivery("01"), playbooks=load_playbooks(PLAYBOOKS),
                    policy=IncidentPolicy(), now=NOW)
    stores[0].run(lambda tx: tx.chat.save_thread(ChatThread(incident_id=1, channel="C1", ts="1.000001",
                                                            last_event_id=0)))
    marks = iter([Mark(channel="C1", ts="2.000001", marker=reaction_marker("pushpin", f"U{n}"), by=f"U{n}")
                  for n in range(8)])
    lock = threading.Lock()

    def mark_once(store: SqlStore) -> None:
        with lock:
            mark = next(marks)
        ChatTimeline(store=store, messages=Messages(), clock=lambda: NOW).marked(mark)

    race(stores, mark_once)
    with engines[0].connect() as conn:
        kinds = [row[0] for row in conn.execute(sa.text("SELECT kind FROM timeline_events ORDER BY id"))]
    assert kinds.count("chat.pinned") == 1
    found = stores[0].run(lambda tx: tx.chat_marks.get("C1", "2.000001"))
    assert found is not None
    assert len(found.markers) == 8
    for n in range(8):
        ChatTimeline(store=stores[n % 2], messages=Messages(), clock=lambda: NOW).unmarked(
            Mark(channel="C1", ts="2.000001", marker=reaction_marker("pushpin", f"U{n}"), by=f"U{n}"))
    shown = [e.kind for e in stores[1].run(lambda tx: tx.timeline.for_incident(1))]
    assert "chat.pinned" not in shown
    assert shown.count("chat.unpinned") == 1


def test_rooms_and_roles_on_postgresql(engines: list[sa.Engine]) -> None:
    """A room declared once (two replicas asking at once add one), found due, by its channel once
    made, archived when its incident resolved long enough ago, due again (to unarchive) once its
    incident is reopened; roles handed over."""
    import dataclasses
    from datetime import timedelta

    from bot.domain.models import Actor, IncidentStatus
    from bot.services.incidents import change_status
    from bot.services.roles import assign_role
    from bot.services.rooms import declare_room

    playbooks = load_playbooks(PLAYBOOKS)
    stores = [SqlStore(engine) for engine in engines]
    opened = ingest_delivery(store=stores[0], delivery=delivery("01"), playbooks=playbooks, policy=IncidentPolicy(),
                             now=NOW).opened[0].id or 0
    added = [declare_room(store=store, playbooks=playbooks, incident_id=opened, actor=Actor.USER, actor_id="U0X",
                          now=NOW, reason="test") for store in stores]
    assert sorted(added) == [False, True]
    [room] = stores[1].run(lambda tx: tx.rooms.due(NOW, resolved_before=None))
    stores[1].run(lambda tx: tx.rooms.save(dataclasses.replace(room, channel_id="C0ROOM", state="open",
                                                               invites_due=False, pointer_ts="1.2",
                                                               invited=("U0X", "a@example.com"))))
    assert stores[0].run(lambda tx: tx.rooms.due(NOW, resolved_before=NOW)) == []
    assert stores[0].run(lambda tx: tx.rooms.by_channel("C0ROOM")).invited == ("U0X", "a@example.com")
    assign_role(store=stores[0], playbooks=playbooks, incident_id=opened, role="lead", user="U0A", actor_id="U0X",
                now=NOW)
    assign_role(store=stores[1], playbooks=playbooks, incident_id=opened, role="lead", user="U0B", actor_id="U0A",
                now=NOW)
    assert stores[0].run(lambda tx: tx.roles.for_incident(opened)) == {"lead": "U0B"}
    change_status(store=stores[0], incident_id=opened, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id="U0B", now=NOW)
    later = NOW + timedelta(days=1)
    assert [r.incident_id for r in stores[1].run(lambda tx: tx.rooms.due(later, resolved_before=NOW))] == [opened]
    stores[1].run(lambda tx: tx.rooms.request_invites(opened))
    assert stores[1].run(lambda tx: tx.rooms.get(opened)).invites_due is True
    archived = dataclasses.replace(stores[0].run(lambda tx: tx.rooms.get(opened)), state="archived", invites_due=False)
    stores[0].run(lambda tx: tx.rooms.save(archived))
    assert stores[1].run(lambda tx: tx.rooms.due(later, resolved_before=later)) == []
    change_status(store=stores[0], incident_id=opened, target=IncidentStatus.OPEN, actor=Actor.USER,
                  actor_id="U0B", now=later)
    assert [r.incident_id for r in stores[1].run(lambda tx: tx.rooms.due(later, resolved_before=None))] == [opened]


def test_a_hold_waits_for_the_merge_decision_that_locked_the_action_first(engines: list[sa.Engine]) -> None:
    """Backout moves an automatic merge's window under the action's row lock (FOR UPDATE): a Hold
    pressed meanwhile on another replica waits for it, then finds it too late, never a lost hold."""
    import time

    from bot.adapters.console import RecordingNotifier
    from bot.domain.actions import Action, ActionKind, ActionState
    from bot.domain.automerge import moved
    from bot.domain.errors import Conflict
    from bot.domain.models import Actor
    from bot.domain.ports import Transaction
    from bot.services.automerge import hold

    backout, replica = SqlStore(engines[0]), SqlStore(engines[1])
    ingest_delivery(store=backout, delivery=delivery("01"), playbooks=load_playbooks(PLAYBOOKS),
                    policy=IncidentPolicy(), now=NOW)
    action = backout.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha="a" * 40, state=ActionState.PR_OPEN,
        branch="backout/INC-1/revert-aaaaaaa", created_at=NOW, updated_at=NOW,
        detail={"pr_number": 1, "auto_merge": {"state": "waiting", "due_at": NOW.isoformat()}})))
    outcome: list[object] = []

    def press() -> None:
        try:
            outcome.append(hold(store=replica, notifier=RecordingNotifier(), incident_id=1, actor=Actor.USER,
                                actor_id="U1", now=NOW))
        except Conflict as exc:
            outcome.append(exc)

    presser = threading.Thread(target=press)

    def decide(tx: Transaction) -> None:
        current = tx.actions.locked(action.id or 0)
        assert current is not None
        tx.actions.save(current.model_copy(update={"detail": moved(current, "merging")}))
        presser.start()
        deadline = time.monotonic() + 30
        with engines[0].connect() as watcher:  # until the Hold waits on the lock (bounded, not a timing)
            while time.monotonic() < deadline and not watcher.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar():
                time.sleep(0.02)

    backout.run(decide)
    presser.join()
    [result] = outcome
    assert isinstance(result, Conflict)
    assert "too late to hold: Backout's merge is merging" in str(result)
def test_drift_is_stored_once_and_corrected_on_postgresql(engines: list[sa.Engine]) -> None:
    """Two replicas store one Flux event's drift once (its key); the correction closes it."""
    from datetime import timedelta

    from tests.unit.test_drift import drift

    stores = [SqlStore(engine) for engine in engines]
    one = drift(since_min=9, detected_min=2).model_copy(update={"id": None})
    race(stores, lambda store: store.run(lambda tx: tx.drifts.add(one)))
    found = stores[1].run(lambda tx: tx.drifts.between(since=one.detected_at - timedelta(hours=1),
                                                       until=one.detected_at))
    assert [(d.key, d.resources, d.playbooks) for d in found] == [(one.key, one.resources, ("checkout",))]
    stored = found[0].id or 0  # whichever replica's insert won (a losing insert still takes a sequence number)
    fixed = one.detected_at + timedelta(minutes=1)
    stores[0].run(lambda tx: tx.drifts.correct(stored, at=fixed, correction="corrected by Flux"))
    assert stores[1].run(lambda tx: tx.drifts.open_for(one.object_id)) is None
    assert stores[1].run(lambda tx: tx.drifts.get(stored)).corrected_at == fixed  # type: ignore[union-attr]
