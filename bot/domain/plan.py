"""The rollback plan: when no change is confident but several are plausible, roll them back one at a
time, the most recent first, each verified before the next. Pure: time and records are passed in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.durations import format_duration
from bot.domain.models import TimelineEvent
from bot.domain.playbooks import PlanPolicy, Playbook, SuspectPolicy, Verify
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.timeline import EventKind

# At most this many steps: each takes up to `verify.within` (30 min by default) to judge, and past
# three an SRE looks again at the evidence rather than rolling back a fourth change blind.
MOST_STEPS = 3
# Under way: the revert branch or its pull request exists and is not merged yet.
_REVERTING = frozenset({ActionState.STARTED, ActionState.PUSHED, ActionState.WAITING, ActionState.PR_OPEN,
                        ActionState.CONFLICTED})


class StepState(StrEnum):
    PENDING = "pending"              # later in the plan: taken only if the steps before do not recover
    PROPOSED = "proposed"            # the step to take now
    REVERTING = "reverting"          # its revert branch or pull request is open
    APPLIED = "applied"              # its revert is merged and applied: watching the key metric
    VERIFIED = "verified"            # the key metric recovered after it: the plan is done
    NOT_RECOVERED = "not_recovered"  # not recovered within `verify.within`: the next step is proposed
    SKIPPED = "skipped"              # a responder ruled it out before it was taken


DONE = frozenset({StepState.NOT_RECOVERED, StepState.SKIPPED})  # the plan moves past these


class Check(BaseModel):
    """How a step is verified: the playbook's key query and threshold, within `verify.within`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str | None  # None: no key query with a threshold, so the incident's alerts resolving
    healthy: str  # "below 0.05", or "its alerts resolve"
    stay: timedelta
    within: timedelta

    def describe(self) -> str:
        what = (f"`{' '.join(self.query.split())}` {self.healthy}" if self.query
                else "the incident's alerts resolve (no key query with a threshold)")
        return f"{what} for {format_duration(self.stay)}, within {format_duration(self.within)} of the revert applied"


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    repo: str
    sha: str
    subject: str
    applied_at: datetime
    score: float
    why: str  # why it is in the plan, and at this place
    state: StepState = StepState.PENDING
    reverted_at: datetime | None = None  # when its revert took effect in production
    deadline: datetime | None = None  # not recovered by then: the next step
    sync: str | None = None  # an out-of-band change (`sha` is its handle): synced from Git, never reverted

    @property
    def short(self) -> str:
        return self.sha if self.sync is not None else self.sha[:7]

    def record(self) -> dict[str, Any]:
        """What the timeline keeps of the step when the plan is proposed."""
        return {"number": self.number, "repo": self.repo, "sha": self.sha, "subject": self.subject,
                "applied_at": self.applied_at.isoformat(), "score": self.score, "why": self.why,
                **({"sync": self.sync} if self.sync is not None else {})}


class Plan(BaseModel):
    """The ordered rollback plan of an incident, with each step's state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confident: bool  # one step: the confident suspect
    reason: str
    steps: tuple[PlanStep, ...] = ()
    check: Check
    proposed_at: datetime | None = None  # when "plan proposed" was recorded; None: not yet, or confident

    @property
    def restore_next(self) -> bool:
        """The most recent change was rolled back and did not recover: restoring the service's
        paths to their last known good revision is a step now (`backout restore`), beside the next revert."""
        return bool(self.steps) and self.steps[0].state is StepState.NOT_RECOVERED

    @property
    def current(self) -> PlanStep | None:
        """The step under way or to take now; None when the plan is done or used up."""
        return next((s for s in self.steps if s.state not in DONE), None)

    def line(self) -> str:
        """One line for the incident card: "roll back 1a2b3c4 first, then 5d6e7f8"."""
        current = self.current
        parts = [f"{s.short} {'ruled out' if s.state is StepState.SKIPPED else 'rolled back, not recovered'}"
                 for s in self.steps if s.state in DONE]
        if current is not None:
            first = "first" if not parts else "next"
            parts.append({
                StepState.REVERTING: f"rolling back {current.short}",
                StepState.APPLIED: f"{current.short} rolled back, watching the key metric",
                StepState.VERIFIED: f"{current.short} rolled back: recovered",
            }.get(current.state, f"sync {current.short} from Git {first}" if current.sync is not None
                  else f"roll back {current.short} {first}"))
            if current.state is not StepState.VERIFIED:
                parts.extend(f"then {s.short}" for s in self.steps if s.number > current.number)
        elif self.steps:
            parts.append("no step left: look again at the suspects")
        if self.restore_next and (current is None or current.state is not StepState.VERIFIED):
            parts.append("or restore to last known good")
        return "plan: " + ", ".join(parts) if parts else "plan: none"


def verify_check(playbook: Playbook | None) -> Check:
    """The step's verification from the playbook's key query and `verify` section."""
    verify = playbook.verify if playbook is not None else Verify()
    healthy = playbook.healthy_when() if playbook is not None else None
    query = playbook.key_query if playbook is not None and healthy is not None else None
    return Check(query=query, healthy=healthy or "its alerts resolve", stay=verify.stay, within=verify.within)


def plausible(ranking: Ranking, policy: SuspectPolicy) -> tuple[Suspect, ...]:
    """The changes worth rolling back, in the order to roll them back: the confident suspect
    alone; else the rollback targets (never a change reverted, ruled out, without effect, late or
    below the evidence floor) within `tie_ratio` squared of the best, the most recent first."""
    best = ranking.best
    if ranking.status is not RankingStatus.RANKED or best is None:
        return ()
    if ranking.confident:
        return () if best.drift is not None and best.drift.corrected_at is not None else (best,)
    # `tie_ratio` is where the ranking stops telling two changes apart; squared, it admits a change
    # one more tie behind (the runner-up of a runner-up), and no change the evidence clearly clears.
    bar = best.score / policy.tie_ratio ** 2
    # A revert restores a state that ran before: never a step a plan (or `first_step`) takes alone.
    # A drift the controller already corrected leaves nothing to do: no step.
    found = [s for s in ranking.suspects if ranking.excluded(s) is None and s.score >= bar and not s.is_revert
             and not (s.drift is not None and s.drift.corrected_at is not None)]
    # The most recent first, as SREs roll back: the newest change is the cheapest to undo (nothing
    # later builds on it, its revert rarely conflicts) and, by the timing evidence, the likelier.
    found.sort(key=lambda s: (s.applied_at, s.score), reverse=True)
    return tuple(found[:MOST_STEPS])


def first_step(ranking: Ranking, playbook: Playbook) -> Suspect | None:
    """What `actions.on_open` may act on without a confident suspect: the plan's first step, where
    the playbook opts in (`actions.plan: first_step`); else nothing."""
    if ranking.confident or playbook.actions.plan is not PlanPolicy.FIRST_STEP:
        return None
    return next(iter(plausible(ranking, playbook.suspects)), None)


def propose_steps(ranking: Ranking, policy: SuspectPolicy) -> tuple[PlanStep, ...]:
    """The plan's steps, numbered, each with why it is there."""
    chosen = plausible(ranking, policy)
    best = ranking.best
    steps = []
    for number, suspect in enumerate(chosen, start=1):
        if ranking.confident:
            why = f"the confident suspect, score {suspect.score:.2f}"
        else:
            rank = "the best suspect" if best is not None and suspect.sha == best.sha else (
                f"{best.score / suspect.score:.1f}x behind the best" if best is not None and suspect.score else "")
            place = "the most recent plausible change" if number == 1 else "applied before the step above"
            why = f"{place} ({suspect.applied_at:%H:%M} UTC), score {suspect.score:.2f}, {rank}"
        steps.append(PlanStep(number=number, repo=suspect.repo, sha=suspect.sha, subject=suspect.subject,
                              applied_at=suspect.applied_at, score=suspect.score, why=why,
                              sync=suspect.drift.offered() if suspect.drift is not None else None))
    return tuple(steps)


def recorded(timeline: Sequence[TimelineEvent]) -> tuple[datetime, tuple[PlanStep, ...]] | None:
    """The plan as proposed on the timeline (the first "plan proposed"): its steps stay as they were,
    so a revert that re-ranks the incident does not reshuffle the plan under way."""
    proposal = next((e for e in timeline if e.kind == EventKind.PLAN_PROPOSED.value), None)
    if proposal is None:
        return None
    steps = tuple(PlanStep(number=s["number"], repo=s["repo"], sha=s["sha"], subject=s["subject"],
                           applied_at=datetime.fromisoformat(s["applied_at"]), score=s["score"], why=s["why"],
                           sync=s.get("sync"))
                  for s in proposal.data.get("steps", []))
    return proposal.at, steps


def outcomes(timeline: Sequence[TimelineEvent]) -> dict[str, StepState]:
    """Each step's recorded verdict (recovered or not), by sha."""
    kinds = {EventKind.PLAN_STEP_RECOVERED.value: StepState.VERIFIED,
             EventKind.PLAN_STEP_NOT_RECOVERED.value: StepState.NOT_RECOVERED}
    return {str(e.data.get("sha")): kinds[e.kind] for e in timeline if e.kind in kinds}


def make_plan(*, ranking: Ranking, playbook: Playbook | None, timeline: Sequence[TimelineEvent],
              actions: Sequence[Action], reverted: Mapping[str, datetime], now: datetime) -> Plan:
    """The incident's plan as of `now`: the recorded one, else the one the ranking proposes; each
    step's state from its revert (`actions`), when that revert took effect (`reverted`, by the
    reverted sha; else merged plus `sync_delay`) and the verdicts on the timeline."""
    policy = playbook.suspects if playbook is not None else SuspectPolicy()
    check = verify_check(playbook)
    proposal = recorded(timeline)
    reverts = {a.commit_sha: a for a in actions if a.kind is ActionKind.REVERT}
    if proposal is not None and ranking.confident and not any(s.sha in reverts or s.sha in reverted
                                                              for s in proposal[1]):
        proposal = None  # new evidence made one change confident before any step was taken: that is the answer
    proposed_at, steps = proposal if proposal is not None else (None, propose_steps(ranking, policy))
    if not steps:
        reason = ("Ranking is under way: no plan yet." if ranking.status is RankingStatus.PENDING else
                  "No change is a rollback target, so there is no plan: " + ranking.reason)
        return Plan(confident=False, reason=reason, check=check)
    verdicts = outcomes(timeline)
    by_sha = {s.sha: s for s in ranking.suspects}
    states: list[PlanStep] = []
    current_found = False
    for step in steps:
        action = reverts.get(step.sha)
        took = reverted.get(step.sha)
        if took is None and action is not None and action.state is ActionState.MERGED:
            took = action.updated_at + policy.sync_delay
        took = took if took is not None and took <= now else None
        suspect = by_sha.get(step.sha)
        if step.sha in verdicts:
            state = verdicts[step.sha]
        elif took is not None:
            state = StepState.APPLIED
        elif action is not None and (action.state in _REVERTING or action.state is ActionState.MERGED):
            state = StepState.REVERTING
        elif suspect is not None and suspect.ruled_out is not None:
            state = StepState.SKIPPED
        elif not current_found:
            state = StepState.PROPOSED
        else:
            state = StepState.PENDING
        current_found = current_found or state not in DONE
        states.append(step.model_copy(update={"state": state, "reverted_at": took,
                                              "deadline": took + check.within if took is not None else None}))
    confident = ranking.confident and proposal is None
    count = len(states)
    reason = (ranking.reason if confident else
              f"No change is confident; {count} plausible: roll back the most recent first, verify, then the next."
              if count > 1 else f"No change is confident; one is a rollback target: {ranking.reason}")
    return Plan(confident=confident, reason=reason, steps=tuple(states), check=check, proposed_at=proposed_at)


def recovery(samples: Sequence[tuple[datetime, float]], *, healthy: Callable[[float], bool], stay: timedelta,
             now: datetime) -> bool | None:
    """From the key query's samples since the revert took effect: True when healthy for `stay` up
    to now, False when the latest sample is unhealthy, None when it cannot be told yet."""
    if not samples:
        return None
    if not healthy(samples[-1][1]):
        return False
    since = samples[-1][0]
    for at, value in reversed(samples):
        if not healthy(value):
            break
        since = at
    return True if now - since >= stay else None
