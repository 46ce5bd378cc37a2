"""PagerDuty outbound, over the fake PagerDuty (HTTPS on loopback): change events for revert pull
requests, pages when nobody acknowledges in time, 429s and 5xx waited out, the on-call lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.pagerduty import PagerDutyPager
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.config import PagerDutySettings, Settings
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.errors import UpstreamError
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.domain.paging import OnCall, PagerIncidentEvent, PagerIncidentKind
from bot.domain.playbooks import Playbook
from bot.domain.ports import PullRequestRef, PullRequestStatus
from bot.domain.timeline import EventKind
from bot.entrypoints.scheduler import pager_job
from bot.services.incidents import change_status, get_timeline
from bot.services.ingest import ingest_delivery
from bot.services.paging import run_pager
from bot.services.paging_inbound import record_pager_event
from bot.services.pull_requests import open_for_action
from tests.conftest import AUTH, Clock, payload_bytes
from tests.fakes.pagerduty import API_TOKEN, ROUTING_KEY, FakePagerDuty

OPENED = datetime(2026, 11, 21, 22, 21, tzinfo=UTC)


def playbook(**pagerduty: object) -> Playbook:
    return Playbook.model_validate({"name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                                    "pagerduty": pagerduty})


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakePagerDuty]:
    with FakePagerDuty().serving(tmp_path) as served:
        yield served


@pytest.fixture
def pager(fake: FakePagerDuty) -> Iterator[PagerDutyPager]:
    built = PagerDutyPager(routing_key=ROUTING_KEY, api_token=API_TOKEN, events_url=fake.base_url,
                           api_url=fake.base_url, ca_file=fake.ca_file, timeout=5, max_wait=0.05)
    yield built
    built.close()


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine)
    return SqlStore(engine)


def open_incident(store: SqlStore, books: Sequence[Playbook]) -> int:
    alert = ReceivedAlert(fingerprint="f1", starts_at=OPENED, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
                          annotations={})
    outcome = ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                              playbooks=books, policy=IncidentPolicy(), now=OPENED)
    return outcome.opened[0].id or 0


class OneForge:
    """A forge that opens every pull request as #12."""

    def open_pull_request(self, repo: str, **_: object) -> PullRequestRef:
        return PullRequestRef(number=12, url="https://github.com/acme/gitops/pull/12")

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        return PullRequestStatus(state="open")

    def request_noun(self, repo: str) -> str:
        return "pull request"


def open_revert(store: SqlStore, number: int, kind: ActionKind = ActionKind.REVERT) -> None:
    action = store.run(lambda tx: tx.actions.add(Action(
        incident_id=number, kind=kind, repo="gitops", commit_sha="a" * 40, state=ActionState.PUSHED,
        branch=f"backout/INC-{number}/revert-aaaaaaa", created_at=OPENED, updated_at=OPENED)))
    open_for_action(store=store, forge=OneForge(), notifier=RecordingNotifier(), action=action,  # type: ignore[arg-type]
                    base="main", title="Revert", body="", draft=False, reviewers=(), now=OPENED + timedelta(minutes=3))


def test_a_revert_pull_request_opened_is_a_change_event_sent_once(
        store: SqlStore, pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """The revert's pull request, once opened, reaches PagerDuty's recent changes with its link; once."""
    number = open_incident(store, [playbook()])
    open_revert(store, number)
    report = run_pager(store=store, pager=pager, playbooks=[playbook()], now=OPENED + timedelta(minutes=3))
    run_pager(store=store, pager=pager, playbooks=[playbook()], now=OPENED + timedelta(minutes=4))
    assert report.sent == 1
    assert len(fake.changes) == 1
    change = fake.changes[0]
    assert change["routing_key"] == ROUTING_KEY
    assert change["payload"]["summary"].startswith(f"INC-{number} checkout: Pull request #12 opened")
    assert change["payload"]["source"] == "backout"
    assert {"href": "https://github.com/acme/gitops/pull/12", "text": "pull request"} in change["links"]
    assert fake.events == []  # no page: the playbook does not ask for one


def test_an_incident_branch_pull_request_is_no_change(store: SqlStore, pager: PagerDutyPager,
                                                      fake: FakePagerDuty) -> None:
    """Only reverts (and restores) change production: an incident branch's draft is not sent."""
    number = open_incident(store, [playbook()])
    open_revert(store, number, kind=ActionKind.INCIDENT_BRANCH)
    run_pager(store=store, pager=pager, playbooks=[playbook()], now=OPENED + timedelta(minutes=3))
    assert fake.changes == []


def test_a_freeze_pull_request_is_a_change(store: SqlStore, pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """A freeze of automation changes what production does next: its pull request is sent."""
    number = open_incident(store, [playbook()])
    open_revert(store, number, kind=ActionKind.FREEZE)
    run_pager(store=store, pager=pager, playbooks=[playbook()], now=OPENED + timedelta(minutes=3))
    assert len(fake.changes) == 1


def test_an_unacknowledged_incident_pages_then_acknowledgement_and_resolution_follow(
        store: SqlStore, pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """Not acknowledged within page_after: triggered with dedup key backout:<id>; acknowledged and
    resolved in Backout: the same key acknowledged and resolved, in that order, each once."""
    books = [playbook(page=True, page_after="5m")]
    number = open_incident(store, books)
    run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=4, seconds=59))
    assert fake.events == []
    run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=5))
    run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=6))  # no second page
    key = f"backout:{number}"
    assert fake.actions() == [("trigger", key)]
    trigger = fake.events[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"].startswith(f"INC-{number} HighErrorRate on checkout")
    kinds = [e.kind for e in get_timeline(store=store, incident_id=number)]
    assert EventKind.INCIDENT_PAGED.value in kinds

    for target, minute in ((IncidentStatus.ACKNOWLEDGED, 7), (IncidentStatus.RESOLVED, 9)):
        change_status(store=store, incident_id=number, target=target, actor=Actor.USER, actor_id="U1",
                      now=OPENED + timedelta(minutes=minute))
        run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=minute))
    assert fake.actions() == [("trigger", key), ("acknowledge", key), ("resolve", key)]


def test_an_acknowledged_incident_is_never_paged(store: SqlStore, pager: PagerDutyPager,
                                                 fake: FakePagerDuty) -> None:
    """Acknowledged in time: no page, and its acknowledgement is not sent (PagerDuty never knew it)."""
    books = [playbook(page=True, page_after="5m")]
    number = open_incident(store, books)
    change_status(store=store, incident_id=number, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U1", now=OPENED + timedelta(minutes=2))
    run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=30))
    assert fake.requests == []


def test_a_429_waits_as_long_as_pagerduty_asks_and_is_delivered_later(
        store: SqlStore, pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """429 with Retry-After 30: nothing is sent again before 30 s, then it is, and nothing is lost."""
    number = open_incident(store, [playbook()])
    open_revert(store, number)
    fake.fail("/v2/change/enqueue", 429, retry_after=30)
    now = OPENED + timedelta(minutes=3)
    first = run_pager(store=store, pager=pager, playbooks=[playbook()], now=now)
    assert (first.sent, first.waiting, len(fake.requests)) == (0, 1, 1)
    run_pager(store=store, pager=pager, playbooks=[playbook()], now=now + timedelta(seconds=29))
    assert len(fake.requests) == 1  # still waiting as asked
    later = run_pager(store=store, pager=pager, playbooks=[playbook()], now=now + timedelta(seconds=30))
    assert later.sent == 1
    assert len(fake.changes) == 1
    assert store.run(lambda tx: tx.pager.backlog()) == 0


def test_a_5xx_is_retried_with_backoff_until_pagerduty_answers(
        store: SqlStore, pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """Three 503s: each try waits longer (5 s, 10 s, 20 s); the fourth is delivered."""
    number = open_incident(store, [playbook()])
    open_revert(store, number)
    fake.fail("/v2/change/enqueue", 503, times=3)
    now, tried = OPENED + timedelta(minutes=3), []
    for seconds in range(0, 40):
        before = len(fake.requests)
        run_pager(store=store, pager=pager, playbooks=[playbook()], now=now + timedelta(seconds=seconds))
        if len(fake.requests) > before:
            tried.append(seconds)
    assert tried == [0, 5, 15, 35]
    assert len(fake.changes) == 1


def test_a_refused_event_is_recorded_on_the_timeline_and_not_sent_again(
        store: SqlStore, fake: FakePagerDuty) -> None:
    """A wrong integration key (400): the incident's timeline says so and what to check; no retry."""
    wrong = PagerDutyPager(routing_key="not-the-key", api_token=None, events_url=fake.base_url,
                           ca_file=fake.ca_file)
    number = open_incident(store, [playbook()])
    open_revert(store, number)
    for minute in (3, 30):
        run_pager(store=store, pager=wrong, playbooks=[playbook()], now=OPENED + timedelta(minutes=minute))
    wrong.close()
    assert len(fake.requests) == 1
    failed = [e for e in get_timeline(store=store, incident_id=number) if e.kind == EventKind.PAGER_FAILED.value]
    assert len(failed) == 1
    assert "routing_key_file" in failed[0].text


def test_the_on_call_of_a_service_first_level_first(pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """The service's escalation policy, its on-calls with their emails, each once, level 1 first."""
    fake.services["PCHK123"] = "PEPCHK1"
    fake.on_call("PEPCHK1", ("Grace Hopper", "grace@example.com", 2), ("Ada Lovelace", "ada@example.com", 1),
                 ("Grace Hopper", "grace@example.com", 1))
    assert pager.on_call(service_id="PCHK123", escalation_policy_id=None) == [
        OnCall(name="Ada Lovelace", email="ada@example.com", level=1),
        OnCall(name="Grace Hopper", email="grace@example.com", level=1)]
    assert pager.on_call(service_id=None, escalation_policy_id="PEPCHK1")[0].email == "ada@example.com"


def test_the_on_call_lookup_waits_out_a_429_within_bounds(pager: PagerDutyPager, fake: FakePagerDuty) -> None:
    """A 429 on /oncalls is retried (Retry-After honoured up to the bound); persistent 5xx raises."""
    fake.on_call("PEP1", ("Ada Lovelace", "ada@example.com", 1))
    fake.fail("/oncalls", 429, retry_after=0)
    assert [p.email for p in pager.on_call(service_id=None, escalation_policy_id="PEP1")] == ["ada@example.com"]
    fake.fail("/oncalls", 502, times=5)
    with pytest.raises(Exception, match="502"):
        pager.on_call(service_id=None, escalation_policy_id="PEP1")
    with pytest.raises(UpstreamError, match="escalation policy"):
        pager.on_call(service_id=None, escalation_policy_id=None)


def test_pagerduty_down_never_holds_up_an_incident(build: Callable[..., bootstrap.App],
                                                   make_settings: Callable[..., Settings], clock: Clock,
                                                   fake: FakePagerDuty) -> None:
    """PagerDuty answering 503 to everything: the alert is taken and ranked as ever, the page waits
    in the outbox, and goes out once PagerDuty answers again."""
    settings = make_settings(pagerduty=PagerDutySettings(routing_key=ROUTING_KEY, events_url=fake.base_url,
                                                         ca_file=fake.ca_file))
    app = build(settings, playbooks=[playbook(page=True, page_after="1m")])
    fake.fail("/v2/enqueue", 503, times=1000)
    with TestClient(app.http) as client:
        assert client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH).status_code == 200
        assert client.get("/api/incidents/1/suspects").json()["status"] == "ranked"
        clock.now += timedelta(minutes=2)
        pager_job(app.ctx)
        assert fake.events == []
        assert client.get("/api/incidents/1").json()["status"] == "open"
        assert app.ctx.store.run(lambda tx: tx.pager.backlog()) == 1
        fake.faults.clear()
        clock.now += timedelta(minutes=5)
        pager_job(app.ctx)
    assert fake.actions() == [("trigger", "backout:1")]


def test_an_acknowledgement_made_in_pagerduty_is_not_sent_back(store: SqlStore, pager: PagerDutyPager,
                                                               fake: FakePagerDuty) -> None:
    """Backout paged; the on-call acknowledged in PagerDuty (webhook): the incident is acknowledged
    here, and no acknowledge goes back to PagerDuty; resolving here still resolves there."""
    books = [playbook(page=True, page_after="5m")]
    number = open_incident(store, books)
    run_pager(store=store, pager=pager, playbooks=books, now=OPENED + timedelta(minutes=5))
    acked = OPENED + timedelta(minutes=6)
    record_pager_event(store=store, notifier=RecordingNotifier(), playbooks=books, event_=PagerIncidentEvent(
        event_id="E1", kind=PagerIncidentKind.ACKNOWLEDGED, incident_id="Q1", number=7, title="t",
        service_id="PCHK123", urgency="high", created_at=OPENED, occurred_at=acked,
        incident_key=f"backout:{number}", agent="Ada Lovelace"))
    run_pager(store=store, pager=pager, playbooks=books, now=acked)
    change_status(store=store, incident_id=number, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id="U1", now=acked + timedelta(minutes=1))
    run_pager(store=store, pager=pager, playbooks=books, now=acked + timedelta(minutes=1))
    key = f"backout:{number}"
    assert fake.actions() == [("trigger", key), ("resolve", key)]
