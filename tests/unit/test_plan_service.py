"""The rollback plan's service over the fakes: proposed once, the next step only without recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.adapters.console import RecordingNotifier
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource, Change, Revert
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.plan import StepState
from bot.domain.playbooks import Playbook
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from bot.services.plan import advance_plans, incident_plan
from tests.fakes.metrics import FakeMetrics
from tests.fakes.store import InMemoryStore

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
QUERY = "checkout_error_ratio"
BOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "key_query": QUERY,
    "suspects": {"sync_delay": "2m"}, "verify": {"below": 0.05, "stay": "5m", "within": "15m"},
})


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def suspect(sha: str, minutes_before: float, score: float) -> Suspect:
    return Suspect(repo="gitops", sha=sha * 40, subject=f"change {sha}", author="Dev", score=score,
                   applied_at=START - timedelta(minutes=minutes_before), applied_source=AppliedSource.DEPLOYMENT,
                   reasons=(f"score {score}",))


def tied_incident(store: InMemoryStore, book: Playbook = BOOK) -> int:
    """An incident whose ranking is a tie: b (8 min before, 0.45) and a (40 min before, 0.6)."""
    alert = ReceivedAlert(fingerprint="f1", starts_at=START, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    outcome = ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                              playbooks=[book], policy=IncidentPolicy(), now=at(1))
    number = outcome.opened[0].id or 0
    ranking = Ranking(status=RankingStatus.RANKED, confident=False, reason="Both likely: check both.",
                      suspects=(suspect("a", 40, 0.6), suspect("b", 8, 0.45)), ranked_at=at(1), floor=0.35)
    store.run(lambda tx: tx.rankings.save(number, ranking))
    return number


def merge_revert(store: InMemoryStore, number: int, sha: str, minutes: float) -> None:
    store.run(lambda tx: tx.actions.add(Action(
        incident_id=number, kind=ActionKind.REVERT, repo="gitops", commit_sha=sha * 40, state=ActionState.MERGED,
        branch=f"backout/INC-{number}/revert-{sha * 7}", created_at=at(minutes), updated_at=at(minutes))))


def advance(store: InMemoryStore, metrics: FakeMetrics | None, minutes: float,
            book: Playbook = BOOK) -> int:
    return advance_plans(store=store, notifier=RecordingNotifier(), playbooks=[book], now=at(minutes),
                         metrics=metrics)


def kinds(store: InMemoryStore, number: int) -> list[str]:
    return [e.kind for e in get_incident(store=store, incident_id=number).timeline if e.kind.startswith("plan.")]


def test_a_tie_is_proposed_as_a_plan_once() -> None:
    """No confident suspect: "plan proposed" once, naming the order and the first rollback command."""
    store = InMemoryStore()
    number = tied_incident(store)
    assert advance(store, None, 2) == 1
    assert advance(store, None, 3) == 0
    [proposed] = [e for e in get_incident(store=store, incident_id=number).timeline if e.kind == "plan.proposed"]
    assert "roll back bbbbbbb (change b), then aaaaaaa (change a)" in proposed.text
    assert f"`backout rollback INC-{number} --commit bbbbbbb`" in proposed.text


def test_the_next_step_is_proposed_after_within_without_recovery_once() -> None:
    """Reverted and applied at 12 (merged 10 + sync 2m); still unhealthy at 27: the next step, once."""
    store, metrics = InMemoryStore(), FakeMetrics()
    number = tied_incident(store)
    advance(store, metrics, 2)
    merge_revert(store, number, "b", 10)
    metrics.history[QUERY] = [(at(m), 0.2) for m in range(12, 40)]
    assert advance(store, metrics, 26) == 0  # within verify.within: wait
    assert advance(store, metrics, 27) == 1
    assert advance(store, metrics, 28) == 0
    assert kinds(store, number) == ["plan.proposed", "plan.step_not_recovered"]
    [failed] = [e for e in get_incident(store=store, incident_id=number).timeline
                if e.kind == "plan.step_not_recovered"]
    assert failed.text.startswith("Step 1 of the plan (revert of bbbbbbb) did not recover within 15m: next step: "
                                  "roll back aaaaaaa")
    assert failed.text.endswith("Or restore the service's paths to their last known good revision: "
                                f"`backout restore INC-{number}` (`/incident restore INC-{number}`).")
    plan = incident_plan(store=store, playbooks=[BOOK], incident_id=number, now=at(28))
    assert [s.state for s in plan.steps] == [StepState.NOT_RECOVERED, StepState.PROPOSED]


def test_no_next_step_when_the_key_metric_recovered() -> None:
    """Healthy for `stay` after the revert: the plan is done, and never moves on."""
    store, metrics = InMemoryStore(), FakeMetrics()
    number = tied_incident(store)
    advance(store, metrics, 2)
    merge_revert(store, number, "b", 10)
    metrics.history[QUERY] = [(at(12), 0.2), *((at(m), 0.01) for m in range(13, 40))]
    assert advance(store, metrics, 17) == 0  # healthy for 4 minutes only
    assert advance(store, metrics, 18) == 1
    assert advance(store, metrics, 30) == 0
    assert kinds(store, number) == ["plan.proposed", "plan.step_recovered"]
    plan = incident_plan(store=store, playbooks=[BOOK], incident_id=number, now=at(30))
    assert [s.state for s in plan.steps] == [StepState.VERIFIED, StepState.PENDING]


def test_without_a_key_query_the_alerts_judge_the_step() -> None:
    """No key query: the incident's alerts still firing after `within` move the plan on."""
    store = InMemoryStore()
    book = BOOK.model_copy(update={"key_query": None})
    number = tied_incident(store, book)
    advance(store, None, 2, book)
    merge_revert(store, number, "b", 10)
    assert advance(store, None, 27, book) == 1
    assert kinds(store, number) == ["plan.proposed", "plan.step_not_recovered"]


def test_a_confident_ranking_proposes_no_plan() -> None:
    """The confident suspect is the answer itself: nothing on the timeline."""
    store = InMemoryStore()
    number = tied_incident(store)
    ranking = Ranking(status=RankingStatus.RANKED, confident=True, reason="confident", floor=0.35,
                      suspects=(suspect("a", 10, 0.9),), ranked_at=at(1))
    store.run(lambda tx: tx.rankings.save(number, ranking))
    assert advance(store, None, 2) == 0
    plan = incident_plan(store=store, playbooks=[BOOK], incident_id=number, now=at(2))
    assert [s.sha[0] for s in plan.steps] == ["a"]


def test_a_revert_on_the_branch_starts_the_clock_when_it_was_applied() -> None:
    """Reverted by hand (no pull request of Backout's): its commit reported applied at 20 is the start."""
    store, metrics = InMemoryStore(), FakeMetrics()
    number = tied_incident(store)
    advance(store, metrics, 2)
    revert = Change(repo="gitops", sha="f" * 40, parents=("0" * 40,), author="Dev", committed_at=at(10),
                    subject="Revert change b", files=(), applied_at=at(20), applied_source=AppliedSource.FLUX)
    store.run(lambda tx: (tx.changes.add_many([revert]),
                          tx.changes.add_reverts([Revert(repo="gitops", target="b" * 40, by_sha="f" * 40, at=at(10))])))
    ranking = get_incident(store=store, incident_id=number).ranking
    reverted = ranking.model_copy(update={"suspects": (ranking.suspects[0], ranking.suspects[1].model_copy(
        update={"reverted_by": "f" * 40}))})
    store.run(lambda tx: tx.rankings.save(number, reverted))
    metrics.history[QUERY] = [(at(m), 0.2) for m in range(10, 40)]
    plan = incident_plan(store=store, playbooks=[BOOK], incident_id=number, now=at(21))
    assert (plan.steps[0].state, plan.steps[0].reverted_at) == (StepState.APPLIED, at(20))
    assert advance(store, metrics, 34) == 0  # 10 + 2m + 15m would have passed; 20 + 15m has not
    assert advance(store, metrics, 35) == 1
