"""The incident's whole life: the states Backout drives from the revert (mitigating, mitigated,
verified), what a person may ask in each, and a resolved incident kept as a record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource, Change, FileChange, Revert
from bot.domain.errors import Conflict
from bot.domain.gitops import AppliedRevision, ObjectState
from bot.domain.incidents import ALLOWED, IncidentPolicy, person_transition, refuse, transition
from bot.domain.models import (
    ACTIVE_STATUSES,
    Actor,
    AlertStatus,
    Delivery,
    Incident,
    IncidentStatus,
    ReceivedAlert,
    Severity,
)
from bot.domain.playbooks import Playbook
from bot.domain.ports import Verification
from bot.services import lifecycle
from bot.services.incidents import change_status, get_incident
from bot.services.ingest import ingest_delivery
from bot.services.watching import ALERT_EXPR
from tests.fakes.store import InMemoryStore

S = IncidentStatus
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BOOK = Playbook.model_validate({"name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                                "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
                                "suspects": {"sync_delay": "2m"}})
KEYED = Playbook.model_validate({**BOOK.model_dump(mode="json"), "key_query": "checkout_error_ratio",
                                 "verify": {"below": 0.05}})  # a key query with a healthy threshold
CULPRIT, REVERT = "c" * 40, "d" * 40


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _incident(status: IncidentStatus) -> Incident:
    return Incident(id=1, group_key="k", title="t", service="checkout", severity=Severity.CRITICAL, status=status,
                    playbook="checkout", started_at=T0, opened_at=T0)


# ---- the state machine ----

def test_mitigated_and_verified_are_active() -> None:
    """A new alert joins an incident whose revert is applied or verified: they are active states."""
    assert {S.MITIGATED, S.VERIFIED} <= ACTIVE_STATUSES
    assert not {S.RESOLVED, S.CLOSED} & ACTIVE_STATUSES


def test_each_step_of_the_revert_is_stamped() -> None:
    """open -> mitigating -> mitigated -> verified -> resolved, each with its time."""
    incident = _incident(S.OPEN)
    for minutes, target in enumerate([S.MITIGATING, S.MITIGATED, S.VERIFIED, S.RESOLVED], start=1):
        incident = transition(incident, target, now=at(minutes))
    assert (incident.acknowledged_at, incident.mitigating_at, incident.mitigated_at, incident.verified_at,
            incident.resolved_at) == (at(1), at(1), at(2), at(3), at(4))


def test_every_active_state_may_be_resolved_and_only_resolved_reopened() -> None:
    """Resolving is allowed from every active state; reopening only from resolved (closed is final)."""
    assert all(S.RESOLVED in ALLOWED[state] for state in ACTIVE_STATUSES)
    assert [state for state in S if S.OPEN in ALLOWED[state]] == [S.RESOLVED]
    assert ALLOWED[S.CLOSED] == frozenset()


@pytest.mark.parametrize(("start", "target"), [
    (S.MITIGATING, S.ACKNOWLEDGED), (S.MITIGATED, S.ACKNOWLEDGED), (S.VERIFIED, S.ACKNOWLEDGED),
    (S.OPEN, S.OPEN), (S.MITIGATED, S.OPEN), (S.CLOSED, S.OPEN), (S.OPEN, S.CLOSED), (S.OPEN, S.MITIGATING),
])
def test_a_person_asking_what_the_state_does_not_allow_is_refused_naming_it(start: IncidentStatus,
                                                                           target: IncidentStatus) -> None:
    """Acknowledging a mitigated incident, reopening an open one: Conflict naming the state."""
    with pytest.raises(Conflict, match=f"INC-1 is {start.value}; it cannot become {target.value}"):
        person_transition(_incident(start), target, now=T0)


@pytest.mark.parametrize("start", sorted(ACTIVE_STATUSES))
def test_a_person_may_resolve_every_active_state(start: IncidentStatus) -> None:
    """Resolve works from open to verified."""
    assert person_transition(_incident(start), S.RESOLVED, now=T0).status is S.RESOLVED


def test_acting_on_a_resolved_incident_needs_a_reopen() -> None:
    """A rollback on a resolved incident is refused, saying how to reopen; a closed one just says its state."""
    with pytest.raises(Conflict, match=r"INC-1 is resolved; it cannot be rolled back; reopen it first"):
        refuse(_incident(S.RESOLVED), "be rolled back")
    with pytest.raises(Conflict, match=r"INC-1 is closed; it cannot be rolled back$"):
        refuse(_incident(S.CLOSED), "be rolled back")
    refuse(_incident(S.VERIFIED), "be rolled back")


# ---- mitigating, mitigated, verified from what Backout sees ----

def _with_revert(store: InMemoryStore, state: ActionState, *, status: IncidentStatus = S.OPEN) -> Action:
    """INC-1 of playbook checkout with a revert action of CULPRIT in `state`."""
    store.run(lambda tx: tx.incidents.add(_incident(status).model_copy(update={"id": None})))
    return store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha=CULPRIT, state=state,
        branch="backout/INC-1/revert-ccccccc", url="https://forge.example/pr/7", detail={"pr_number": 7},
        created_at=at(1), updated_at=at(1))))


def _revert_on_branch(store: InMemoryStore, *, source: AppliedSource, applied: datetime) -> None:
    """The revert commit of CULPRIT on the watched branch, applied at `applied` by `source`."""
    change = Change(repo="gitops", sha=REVERT, parents=("e" * 40,), author="Dev <d@example.com>",
                    committed_at=at(3), subject=f'Revert "checkout: bump" ({CULPRIT[:7]})',
                    files=(FileChange(path="apps/checkout/deploy.yaml", status="M"),),
                    applied_at=applied, applied_source=source,
                    applied_by="Flux Kustomization flux-system/checkout" if source is AppliedSource.FLUX else None)
    store.run(lambda tx: (tx.changes.add_many([change]),
                          tx.changes.add_reverts([Revert(repo="gitops", target=CULPRIT, by_sha=REVERT, at=at(3))])))


def _advance(store: InMemoryStore, minutes: float, book: Playbook = BOOK) -> int:
    return lifecycle.advance(store=store, notifier=RecordingNotifier(), playbooks=[book], now=at(minutes))


def test_an_open_revert_request_makes_the_incident_mitigating_and_closing_it_undoes_that() -> None:
    """The pull request opened: mitigating, on the timeline; closed unmerged: acknowledged again."""
    store = InMemoryStore()
    action = _with_revert(store, ActionState.PR_OPEN)
    store.run(lambda tx: lifecycle.request_opened(tx, action, now=at(2)))
    view = get_incident(store=store, incident_id=1)
    assert (view.incident.status, view.incident.mitigating_at) == (S.MITIGATING, at(2))
    assert view.timeline[-1].kind == "incident.mitigating"
    assert "pull request #7" in view.timeline[-1].text
    closed = action.model_copy(update={"state": ActionState.CLOSED})
    store.run(lambda tx: (tx.actions.save(closed), lifecycle.request_closed(tx, closed, now=at(3))))
    view = get_incident(store=store, incident_id=1)
    assert view.incident.status is S.ACKNOWLEDGED
    assert "closed without merging" in view.timeline[-1].text


def _object_applied(store: InMemoryStore, name: str, minutes: float) -> None:
    """Flux Kustomization flux-system/`name` applied the revert at `minutes`."""
    object_id, label = f"flux:Kustomization/flux-system/{name}", f"Flux Kustomization flux-system/{name}"
    store.run(lambda tx: (tx.gitops.save_object(ObjectState(object_id=object_id, label=label, repo="gitops")),
                          tx.gitops.add_applied([AppliedRevision(object_id=object_id, label=label, repo="gitops",
                                                                 sha=REVERT, applied_at=at(minutes))])))


def test_a_merged_revert_is_mitigated_once_the_services_object_applies_it() -> None:
    """With controller events, merged is not enough, nor another service's object applying it:
    mitigated at the time the service's own object applied the revert, naming it."""
    store = InMemoryStore()
    _with_revert(store, ActionState.MERGED, status=S.MITIGATING)
    flux_book = BOOK.model_copy(update={"gitops": BOOK.gitops.model_validate(
        {"flux": [{"kind": "Kustomization", "namespace": "flux-system", "name": "checkout"}]})})
    _revert_on_branch(store, source=AppliedSource.FLUX, applied=at(20))
    _object_applied(store, "redis", 20)
    assert _advance(store, 30, flux_book) == 0, "merged long ago, applied by redis's object only"
    assert get_incident(store=store, incident_id=1).incident.status is S.MITIGATING
    _object_applied(store, "checkout", 31)
    assert _advance(store, 32, flux_book) == 1
    view = get_incident(store=store, incident_id=1)
    assert (view.incident.status, view.incident.mitigated_at) == (S.MITIGATED, at(31))
    assert view.timeline[-1].kind == "incident.mitigated"
    assert view.timeline[-1].text == (f"Mitigated: Flux Kustomization flux-system/checkout applied the revert "
                                      f"{REVERT[:7]}")


def test_without_controller_events_merged_plus_the_sync_delay_is_mitigated() -> None:
    """No controller reports on the repository: mitigated `sync_delay` after the merge, not before."""
    store = InMemoryStore()
    _with_revert(store, ActionState.MERGED, status=S.MITIGATING)  # merged at minute 1
    assert _advance(store, 2) == 0
    assert _advance(store, 3.5) == 1
    view = get_incident(store=store, incident_id=1)
    assert (view.incident.status, view.incident.mitigated_at) == (S.MITIGATED, at(3))
    assert "sync delay (2m) has passed" in view.timeline[-1].text


def _recovered(store: InMemoryStore, *, query: str, healthy_since: float) -> None:
    store.run(lambda tx: tx.watch.save_verification(Verification(
        incident_id=1, query=query, started_at=at(1), healthy_since=at(healthy_since), outcome="recovered")))


def test_verified_once_the_key_metric_recovered_after_the_revert_is_applied() -> None:
    """A recovery from before the revert was applied says nothing of it; healthy since, verified."""
    store = InMemoryStore()
    _with_revert(store, ActionState.PUSHED)
    _recovered(store, query="checkout_error_ratio", healthy_since=2)
    assert _advance(store, 3) == 0, "pushed, not merged: neither mitigated nor verified"
    _revert_on_branch(store, source=AppliedSource.COMMIT_TIME, applied=at(5))
    assert _advance(store, 6, KEYED) == 1
    assert get_incident(store=store, incident_id=1).incident.status is S.MITIGATED, "healthy before the revert"
    _recovered(store, query="checkout_error_ratio", healthy_since=7)
    assert _advance(store, 8, KEYED) == 1
    view = get_incident(store=store, incident_id=1)
    assert view.incident.status is S.VERIFIED
    assert [e.kind for e in view.timeline][-2:] == ["incident.mitigated", "incident.verified"]
    assert "checkout_error_ratio" in view.timeline[-1].text


def test_without_a_key_query_verified_is_skipped() -> None:
    """The alert's own expression recovering is no key query: the incident stays mitigated."""
    store = InMemoryStore()
    _with_revert(store, ActionState.MERGED, status=S.MITIGATING)
    _advance(store, 10)
    _recovered(store, query=ALERT_EXPR + "rate(http_errors[5m]) > 0.05", healthy_since=11)
    assert _advance(store, 20, book=BOOK.model_copy(update={"key_query": None})) == 0
    assert get_incident(store=store, incident_id=1).incident.status is S.MITIGATED


# ---- a resolved incident is a record ----

def _alert(fingerprint: str, *, source: str = "alertmanager", name: str = "HighErrorRate",
           status: AlertStatus = AlertStatus.FIRING, minutes: float = 0) -> ReceivedAlert:
    return ReceivedAlert(fingerprint=fingerprint, starts_at=at(minutes), ends_at=None if status is AlertStatus.FIRING
                         else at(minutes), status=status, source=source,
                         labels={"alertname": name, "service": "checkout", "severity": "critical"}, annotations={})


def _deliver(store: InMemoryStore, group: str, alert: ReceivedAlert, minutes: float) -> None:
    ingest_delivery(store=store, delivery=Delivery(group_key=group, status=alert.status, alerts=(alert,)),
                    playbooks=[BOOK], policy=IncidentPolicy(), now=at(minutes))


def _resolved_inc1(store: InMemoryStore) -> None:
    _deliver(store, "am", _alert("am1"), 0)
    _deliver(store, "am", _alert("am1", status=AlertStatus.RESOLVED), 10)
    assert get_incident(store=store, incident_id=1).incident.status is S.RESOLVED


def test_a_controller_failure_after_resolution_opens_a_new_incident_that_follows() -> None:
    """A failed reconciliation five minutes after INC-1 resolved: INC-2, saying it follows INC-1;
    INC-1 stays resolved."""
    store = InMemoryStore()
    _resolved_inc1(store)
    _deliver(store, "flux:kustomization/checkout", _alert("f1", source="flux", name="ReconcileFailed", minutes=15),
             15)
    first, second = (get_incident(store=store, incident_id=n) for n in (1, 2))
    assert first.incident.status is S.RESOLVED
    assert not any(e.kind == "incident.reopened" for e in first.timeline)
    assert (second.incident.status, second.incident.follows) == (S.OPEN, 1)
    assert "follows INC-1" in second.timeline[0].text


def test_the_same_alert_group_firing_within_the_window_reopens_saying_so_truly() -> None:
    """The group fires again 20 minutes after the resolution (window 30m): INC-1 reopens, naming the alert."""
    store = InMemoryStore()
    _resolved_inc1(store)
    _deliver(store, "am", _alert("am1", minutes=30), 30)
    view = get_incident(store=store, incident_id=1)
    assert view.incident.status is S.OPEN
    reopened = [e for e in view.timeline if e.kind == "incident.reopened"]
    assert reopened[0].text == "Reopened: HighErrorRate fired again within 30m of the resolution"


def test_the_same_alert_group_firing_after_the_window_opens_a_new_incident() -> None:
    """An hour after the resolution: INC-2, and INC-1 (resolved over 30m before) is not followed."""
    store = InMemoryStore()
    _resolved_inc1(store)
    _deliver(store, "am", _alert("am1", minutes=70), 70)
    assert get_incident(store=store, incident_id=1).incident.status is S.RESOLVED
    assert get_incident(store=store, incident_id=2).incident.follows is None


def test_a_person_reopens_a_resolved_incident_saying_who_and_why() -> None:
    """Reopened by alice with a note, the resolution time cleared; reopening again is a no-op."""
    store = InMemoryStore()
    _resolved_inc1(store)
    result = change_status(store=store, incident_id=1, target=S.OPEN, actor=Actor.USER, actor_id="alice",
                           now=at(20), note="still failing")
    assert (result.changed, result.message) == (True, "INC-1 is now open")
    view = get_incident(store=store, incident_id=1)
    assert view.incident.resolved_at is None
    reopened = [e for e in view.timeline if e.kind == "incident.reopened"]
    assert reopened[0].text == "Reopened by alice: still failing"
    due = store.run(lambda tx: tx.follow_ups.due(now=at(21)))
    assert ("investigate", 1) in [(f.kind, f.incident_id) for f in due]  # ranked again, as an alert's reopen is
    again = change_status(store=store, incident_id=1, target=S.OPEN, actor=Actor.USER, actor_id="bob", now=at(21))
    assert (again.changed, again.message) == (False, "INC-1 is already open")
