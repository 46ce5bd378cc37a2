"""The rollback plan on plain data: which changes, in which order, and each step's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource
from bot.domain.models import Actor
from bot.domain.plan import Plan, StepState, make_plan, recovery
from bot.domain.playbooks import Playbook
from bot.domain.suspects import Ranking, RankingStatus, Suspect, pending
from bot.domain.timeline import EventKind, event

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "key_query": "checkout_error_ratio",
    "suspects": {"sync_delay": "2m", "tie_ratio": 1.5, "min_confidence": 0.35},
    "verify": {"below": 0.05, "stay": "5m", "within": "15m"},
})


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def suspect(sha: str, minutes_before: float, score: float, **update: object) -> Suspect:
    return Suspect(repo="gitops", sha=sha * 40, subject=f"change {sha}", author="Dev", score=score,
                   applied_at=START - timedelta(minutes=minutes_before), applied_source=AppliedSource.DEPLOYMENT,
                   reasons=(f"score {score}",), **update)  # type: ignore[arg-type]


def ranking(*suspects: Suspect, confident: bool = False) -> Ranking:
    ordered = tuple(sorted(suspects, key=lambda s: -s.score))
    return Ranking(status=RankingStatus.RANKED, confident=confident, reason="Both likely: check both.",
                   suspects=ordered, ranked_at=at(1), floor=0.35)


def plan(found: Ranking, *, timeline: tuple[object, ...] = (), actions: tuple[Action, ...] = (),
         reverted: dict[str, datetime] | None = None, minutes: float = 2) -> Plan:
    return make_plan(ranking=found, playbook=BOOK, timeline=timeline, actions=actions,  # type: ignore[arg-type]
                     reverted=reverted or {}, now=at(minutes))


def revert(sha: str, state: ActionState, minutes: float) -> Action:
    return Action(incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha=sha * 40, state=state,
                  branch=f"backout/INC-1/revert-{sha * 7}", created_at=at(minutes), updated_at=at(minutes))


def test_plausible_changes_are_rolled_back_most_recent_first() -> None:
    """Not confident: the rollback targets within tie_ratio squared of the best, newest first."""
    found = ranking(suspect("a", 40, 0.6), suspect("b", 8, 0.45), suspect("c", 25, 0.4))
    steps = plan(found).steps
    assert [s.sha[0] for s in steps] == ["b", "c", "a"]
    assert [s.state for s in steps] == [StepState.PROPOSED, StepState.PENDING, StepState.PENDING]
    assert "the most recent plausible change" in steps[0].why
    assert "1.3x behind the best" in steps[0].why
    assert plan(found).line() == "plan: roll back bbbbbbb first, then ccccccc, then aaaaaaa"


def test_excluded_and_implausible_changes_are_never_steps() -> None:
    """Ruled out, reverted, without effect, below the floor, past tie_ratio squared or itself a revert:
    not in the plan (nor its first step, which `open_pr` may take alone)."""
    found = ranking(suspect("a", 30, 0.9), suspect("b", 5, 0.5, ruled_out="ruled out by alice at 12:03 UTC"),
                    suspect("c", 6, 0.5, reverted_by="f" * 40), suspect("d", 7, 0.5, effective=False),
                    suspect("e", 9, 0.3), suspect("g", 10, 0.38), suspect("h", 12, 0.41),
                    suspect("r", 2, 0.6, is_revert=True))
    # 0.41 >= 0.9 / 1.5 ** 2 = 0.4 > 0.38; 0.3 is under the 0.35 floor; r restores what ran before
    assert [s.sha[0] for s in plan(found).steps] == ["h", "a"]


def test_a_confident_ranking_is_a_one_step_plan() -> None:
    """The confident suspect alone, however many others are plausible."""
    found = ranking(suspect("a", 30, 0.9), suspect("b", 5, 0.5), confident=True)
    result = plan(found)
    assert result.confident
    assert [s.sha[0] for s in result.steps] == ["a"]
    assert result.steps[0].why == "the confident suspect, score 0.90"


def test_no_candidate_is_no_plan() -> None:
    """Nothing at the floor, or no ranking yet: no steps, and the reason says why."""
    assert plan(ranking(suspect("a", 5, 0.2))).steps == ()
    assert "No change is a rollback target" in plan(ranking(suspect("a", 5, 0.2))).reason
    assert plan(pending()).steps == ()
    assert plan(pending()).line() == "plan: none"


def test_the_verification_is_the_playbooks() -> None:
    """Each step is verified by the key query and threshold, within verify.within."""
    check = plan(ranking(suspect("a", 5, 0.6))).check
    assert (check.query, check.healthy, check.within) == ("checkout_error_ratio", "below 0.05", timedelta(minutes=15))
    assert check.describe() == "`checkout_error_ratio` below 0.05 for 5m, within 15m of the revert applied"


def test_steps_move_from_proposed_to_reverting_to_applied_to_the_next() -> None:
    """A revert open is reverting; merged plus sync_delay is applied; not recovered moves the plan on."""
    found = ranking(suspect("a", 40, 0.6), suspect("b", 8, 0.45))
    assert plan(found, actions=(revert("b", ActionState.PR_OPEN, 2),)).steps[0].state is StepState.REVERTING
    merged = (revert("b", ActionState.MERGED, 10),)
    assert plan(found, actions=merged, minutes=11).steps[0].state is StepState.REVERTING  # not yet synced
    applied = plan(found, actions=merged, minutes=13).steps[0]
    assert (applied.state, applied.reverted_at, applied.deadline) == (StepState.APPLIED, at(12), at(27))
    failed = event(incident_id=1, at=at(27), kind=EventKind.PLAN_STEP_NOT_RECOVERED, actor=Actor.SCHEDULER,
                   text="", data={"sha": "b" * 40})
    moved = plan(found, actions=merged, timeline=(failed,), minutes=28)
    assert [s.state for s in moved.steps] == [StepState.NOT_RECOVERED, StepState.PROPOSED]
    assert moved.line() == ("plan: bbbbbbb rolled back, not recovered, roll back aaaaaaa next, "
                            "or restore to last known good")
    assert moved.restore_next  # the most recent change did not recover: restoring is a step now
    assert not plan(found, actions=merged, minutes=13).restore_next


def test_a_proposed_plan_keeps_its_steps_when_the_ranking_changes() -> None:
    """Once on the timeline, a re-ranking (its first step now reverted) does not reshuffle it."""
    first = plan(ranking(suspect("a", 40, 0.6), suspect("b", 8, 0.45)))
    proposed = event(incident_id=1, at=at(2), kind=EventKind.PLAN_PROPOSED, actor=Actor.SCHEDULER, text="",
                     data={"sha": "", "steps": [s.record() for s in first.steps]})
    later = ranking(suspect("a", 40, 0.6), suspect("b", 8, 0.02, reverted_by="f" * 40), confident=True)
    kept = plan(later, timeline=(proposed,), reverted={"b" * 40: at(12)}, minutes=13)
    assert [s.sha[0] for s in kept.steps] == ["b", "a"]
    assert (kept.proposed_at, kept.confident) == (at(2), False)
    assert kept.steps[0].state is StepState.APPLIED


def test_recovery_needs_healthy_samples_for_stay() -> None:
    """True once healthy for `stay` up to now, False while the latest sample is unhealthy, else None."""
    def healthy(value: float) -> bool:
        return value < 0.05

    samples = [(at(m), v) for m, v in [(10, 0.2), (12, 0.01), (14, 0.01), (18, 0.01)]]
    assert recovery(samples, healthy=healthy, stay=timedelta(minutes=5), now=at(18)) is True
    assert recovery(samples[:3], healthy=healthy, stay=timedelta(minutes=5), now=at(14)) is None
    assert recovery(samples[:1], healthy=healthy, stay=timedelta(minutes=5), now=at(20)) is False
    assert recovery([], healthy=healthy, stay=timedelta(minutes=5), now=at(20)) is None


def test_actions_plan_is_validated_and_defaults_to_confident_only() -> None:
    """`actions.plan` takes confident_only or first_step; anything else stops the playbook loading."""
    assert BOOK.actions.plan.value == "confident_only"
    opted = Playbook.model_validate({**BOOK.model_dump(mode="json", by_alias=True), "actions": {"plan": "first_step"}})
    assert opted.actions.plan.value == "first_step"
    with pytest.raises(ValidationError, match="confident_only"):
        Playbook.model_validate({**BOOK.model_dump(mode="json", by_alias=True), "actions": {"plan": "every_step"}})


def test_a_proposed_plan_gives_way_to_a_confident_answer_until_a_step_is_taken() -> None:
    """New evidence makes a change confident before any revert: the plan is that change alone."""
    first = plan(ranking(suspect("a", 40, 0.6), suspect("b", 8, 0.45)))
    proposed = event(incident_id=1, at=at(2), kind=EventKind.PLAN_PROPOSED, actor=Actor.SCHEDULER, text="",
                     data={"sha": "", "steps": [s.record() for s in first.steps]})
    confident = ranking(suspect("c", 3, 0.9), suspect("a", 40, 0.3), confident=True)
    assert [s.sha[0] for s in plan(confident, timeline=(proposed,)).steps] == ["c"]
    taken = plan(confident, timeline=(proposed,), actions=(revert("b", ActionState.PR_OPEN, 3),))
    assert [s.sha[0] for s in taken.steps] == ["b", "a"]
