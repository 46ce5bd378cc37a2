"""Drift as a suspect: scored with the commits' factors over its window, confident when the evidence
says so, never reverted (act refuses and says what to do instead), a plan step that syncs from Git."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.drift import Drift, DriftedResource, FieldDrift, field_drifts, parse_change_set
from bot.domain.errors import Conflict
from bot.domain.gitops import Controller, ControllerEvent, Outcome
from bot.domain.plan import propose_steps
from bot.domain.ranking import rank_changes
from bot.domain.ranking_drift import drift_suspects
from bot.services.act import apply_open_policy, choose_commit
from bot.services.incidents import get_ranking
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore
from tests.unit.test_act import START, commit, open_incident, playbook, run
from tests.unit.test_suspects import IMAGE, PLAYBOOK, change, f

REPLICAS = DriftedResource(kind="Deployment", namespace="checkout", name="api",
                           fields=(FieldDrift(path="spec.replicas", wanted="6", live="1"),))


def drift(*, since_min: float, detected_min: float, corrected_min: float | None = None, id: int = 1) -> Drift:
    """Minutes before START."""
    corrected = START - timedelta(minutes=corrected_min) if corrected_min is not None else None
    return Drift(id=id, key=f"k{id}", object_id="flux:Kustomization/flux-system/apps",
                 label="Flux Kustomization flux-system/apps", controller="flux", resources=(REPLICAS,),
                 services=("checkout",), playbooks=("checkout",), since=START - timedelta(minutes=since_min),
                 detected_at=START - timedelta(minutes=detected_min), corrected_at=corrected,
                 correction=f"corrected by Flux at {corrected:%H:%M} UTC" if corrected else "",
                 sync=None if corrected else "flux reconcile kustomization apps -n flux-system --with-source")


def ranked(*drifts: Drift, changes: tuple = ()):  # type: ignore[no-untyped-def, type-arg]
    scored = drift_suspects(drifts, service="checkout", started_at=START, lookback=timedelta(hours=6), onset=None)
    return rank_changes(changes=changes, playbook=PLAYBOOK, service="checkout", started_at=START,
                        now=START + timedelta(minutes=5), drift=scored)


def test_a_lone_recent_drift_is_a_confident_suspect_with_its_window_and_sync() -> None:
    """Scaled down out of band minutes before the alert: first, confident, its action a sync."""
    ranking = ranked(drift(since_min=9, detected_min=2))
    top = ranking.suspects[0]
    assert ranking.confident, ranking.reason
    assert (top.sha, top.short, top.repo) == ("drift-1", "drift-1", "Flux Kustomization flux-system/apps")
    assert top.subject == "out-of-band change to Deployment checkout/api (spec.replicas 6 -> 1)"
    assert top.reasons[0].startswith("changed out of band between 11:51 and 11:58 UTC (its last clean reconcile")
    assert "changed replicas or resources: spec.replicas 6 -> 1" in top.reasons
    assert top.drift is not None
    assert top.drift.offered() == "sync from Git: flux reconcile kustomization apps -n flux-system --with-source"


def test_a_drift_corrected_before_the_start_is_weak_beside_a_later_commit() -> None:
    """Flux put it back before the problem began; the image bump after it is the answer."""
    bump = change("b", 6, f("apps/checkout/deploy.yaml", *IMAGE))
    ranking = ranked(drift(since_min=30, detected_min=14, corrected_min=14), changes=(bump,))
    assert [s.short for s in ranking.suspects] == ["bbbbbbb", "drift-1"]
    assert ranking.confident, ranking.reason
    assert any("its effect was gone by then" in r for r in ranking.suspects[1].reasons)


def test_drift_of_another_service_or_outside_the_window_is_no_suspect() -> None:
    other = drift(since_min=9, detected_min=2).model_copy(update={"services": ("payments",)})
    old = drift(since_min=500, detected_min=400, id=2)
    assert ranked(other, old).suspects == ()


def test_act_refuses_to_revert_a_drift_and_says_to_sync_instead() -> None:
    """Named or as the best suspect: a Conflict that names the sync; on_open never acts on it."""
    store, book = InMemoryStore(), playbook("open_pr")
    store.run(lambda tx: tx.drifts.add(drift(since_min=9, detected_min=2).model_copy(update={"id": None})))
    git = FakeGit({"gitops": [commit("a", 300)]})
    number = open_incident(store, book)
    run(store, git, book, RecordingNotifier(), number)
    ranking = get_ranking(store=store, incident_id=number)
    assert ranking.best is not None
    assert ranking.best.sha == "drift-1"
    assert store.run(lambda tx: tx.actions.for_incident(number)) == []  # open_pr did not revert it
    for sha in ("drift-1", None):
        with pytest.raises(Conflict) as refused:
            choose_commit(store=store, playbook=book, incident_id=number, sha=sha)
        assert "not a commit: there is nothing in Git to revert" in str(refused.value)
        assert "flux reconcile kustomization apps -n flux-system --with-source" in str(refused.value)
    assert apply_open_policy(store=store, git=git, notifier=RecordingNotifier(), playbook=book,
                             incident_id=number, ranking=ranking, now=START) is None


def test_the_plan_syncs_a_drift_and_skips_one_already_corrected() -> None:
    live = ranked(drift(since_min=9, detected_min=2))
    [step] = propose_steps(live, PLAYBOOK.suspects)
    assert (step.short, step.sync) == ("drift-1", "sync from Git: flux reconcile kustomization apps -n "
                                                  "flux-system --with-source")
    corrected = ranked(drift(since_min=9, detected_min=1, corrected_min=-3))
    assert propose_steps(corrected, PLAYBOOK.suspects) == ()


def test_change_sets_and_field_diffs() -> None:
    """Flux's change-set lines (unchanged objects are no drift) and the fields Git sets that moved."""
    found = parse_change_set("Deployment/checkout/api configured\nService/checkout/api unchanged\n"
                             "ClusterRole/viewer created")
    assert [(r.ref, r.how) for r in found] == [("Deployment checkout/api", "configured"),
                                               ("ClusterRole viewer", "created")]
    fields = field_drifts({"spec": {"replicas": 6, "template": {"spec": {"containers": [{"image": "a:1"}]}}}},
                          {"spec": {"replicas": 1, "paused": False, "template": {"spec": {"containers": [
                              {"image": "a:2", "imagePullPolicy": "Always"}]}}}, "status": {"replicas": 1}})
    assert [x.describe() for x in fields] == ["spec.replicas 6 -> 1",
                                              "spec.template.spec.containers[0].image a:1 -> a:2"]


def test_a_responder_rules_a_drift_out_or_names_it_the_culprit() -> None:
    """`verdict ID drift-1`: ruled out, it is no longer the answer; a handle not among the suspects is refused."""
    from bot.domain.errors import NotFound
    from bot.domain.models import Actor
    from bot.domain.verdicts import VerdictKind
    from bot.services.verdicts import record_verdict

    store, book = InMemoryStore(), playbook("off")
    store.run(lambda tx: tx.drifts.add(drift(since_min=9, detected_min=2).model_copy(update={"id": None})))
    number = open_incident(store, book)
    run(store, FakeGit({"gitops": [commit("b", 40)]}), book, RecordingNotifier(), number)
    assert get_ranking(store=store, incident_id=number).suspects[0].sha == "drift-1"
    verdict = record_verdict(store=store, playbooks=[book], incident_id=number, kind=VerdictKind.NOT_CULPRIT,
                             sha="drift-1", actor=Actor.USER, actor_id="alice", now=START + timedelta(minutes=2))
    assert (verdict.sha, verdict.repo) == ("drift-1", "Flux Kustomization flux-system/apps")
    after = get_ranking(store=store, incident_id=number)
    assert after.best is not None
    assert after.best.sha.startswith("bbbbbbb")
    ruled = next(s for s in after.suspects if s.sha == "drift-1")
    assert any(r.startswith("ruled out by alice") for r in ruled.reasons)
    with pytest.raises(NotFound):
        record_verdict(store=store, playbooks=[book], incident_id=number, kind=VerdictKind.CULPRIT, sha="drift-9",
                       actor=Actor.USER, actor_id="alice", now=START + timedelta(minutes=3))


def test_the_chat_card_offers_no_rollback_button_for_a_drift() -> None:
    """The plan's step is a sync from Git: the card says so in its answer and has no "Roll back"."""
    from bot.services.card import incident_message

    store, book = InMemoryStore(), playbook("off")
    store.run(lambda tx: tx.drifts.add(drift(since_min=9, detected_min=2).model_copy(update={"id": None})))
    number = open_incident(store, book)
    run(store, FakeGit({"gitops": [commit("a", 300)]}), book, RecordingNotifier(), number)
    payload = incident_message(store=store, incident_id=number, playbooks=[book]).payload
    assert payload["rollback"] is None
    assert "drift-1" in payload["answer"]


def test_a_controller_events_key_is_kept_and_a_copy_makes_its_own() -> None:
    """The redelivery key is made once per event; a copy with another message has another key,
    one with only other drifted resources (what Argo CD's API adds) the same."""
    event = ControllerEvent(controller=Controller.FLUX, kind="Kustomization", namespace="flux-system", name="apps",
                            outcome=Outcome.APPLIED, reason="ReconciliationSucceeded", message="applied",
                            revision="main@sha1:abc", at=datetime(2026, 11, 21, 22, 0, tzinfo=UTC))
    assert event.key is event.key
    assert event.model_copy(update={"message": "other"}).key != event.key
    assert event.model_copy(update={"resources": ()}).key == event.key
