"""The rollback plan of an incident: shown on request, proposed once on the timeline when no change
is confident, and advanced by the scheduler: once a step's revert has taken effect, the key metric
recovering ends the plan; not recovering within `verify.within` proposes the next step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.changes import reverted_by
from bot.domain.durations import format_duration
from bot.domain.errors import BackoutError
from bot.domain.models import Actor
from bot.domain.plan import Plan, PlanStep, StepState, make_plan, recovery
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import MetricsQuery, Notifier, Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.incidents import IncidentView, get_summary

SAMPLE_STEP = timedelta(seconds=30)  # the key query's resolution when a step is verified


def incident_plan(*, store: Store, playbooks: Sequence[Playbook], incident_id: int, now: datetime,
                  view: IncidentView | None = None) -> Plan:
    """The incident's rollback plan as of `now` (NotFound for an unknown incident); `view`: the
    incident as the caller already read it, not read again."""
    view = view or get_summary(store=store, incident_id=incident_id)
    return _plan(store, view, playbook_named(playbooks, view.incident.playbook), now=now)


def _plan(store: Store, view: IncidentView, playbook: Playbook | None, *, now: datetime) -> Plan:
    reverted = store.run(lambda tx: _reverted_at(tx, view, playbook, now=now))
    return make_plan(ranking=view.ranking, playbook=playbook, timeline=view.timeline, actions=view.actions,
                     reverted=reverted, now=now)


def _reverted_at(tx: Transaction, view: IncidentView, playbook: Playbook | None, *,
                 now: datetime) -> dict[str, datetime]:
    """When each suspect's revert took effect, from the reverts on the watched branches: the time a
    controller reported applying the last of them (a merge commit comes after the revert commit),
    else its commit time plus the sync delay."""
    if playbook is None:
        return {}
    sync_delay = playbook.suspects.sync_delay
    reverts = tx.changes.reverts([entry.repo for entry in playbook.repos], until=now)
    found: dict[str, datetime] = {}
    for suspect in view.ranking.suspects:
        mine = [r for r in reverts if r.repo == suspect.repo]
        if reverted_by(suspect.sha, mine) is None:
            continue
        times = []
        for revert in (r for r in mine if suspect.sha.startswith(r.target)):
            change = next(iter(tx.changes.find(revert.repo, revert.by_sha)), None)
            times.append(change.applied(sync_delay=sync_delay) if change is not None
                         else revert.at + sync_delay)
        found[suspect.sha] = max(times)
    return found


def advance_plans(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], now: datetime,
                  metrics: MetricsQuery | None = None) -> int:
    """For every active incident without a confident suspect: propose its plan once, then judge the
    step whose revert took effect. Returns how many plans changed."""
    changed = 0
    for incident in store.run(lambda tx: tx.incidents.list(active=True, limit=500)):
        if incident.id is not None:
            changed += advance_plan(store=store, notifier=notifier, playbooks=playbooks, incident_id=incident.id,
                                    now=now, metrics=metrics)
    return changed


def advance_plan(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], incident_id: int,
                 now: datetime, metrics: MetricsQuery | None = None) -> bool:
    """One incident's plan: "plan proposed", "step N recovered" or "step N did not recover: next
    step ...", each recorded once; True when something was recorded."""
    view = get_summary(store=store, incident_id=incident_id)
    playbook = playbook_named(playbooks, view.incident.playbook)
    plan = _plan(store, view, playbook, now=now)
    if plan.confident or not plan.steps:
        return False  # a confident suspect is the answer itself: the verification after its rollback follows it
    if plan.proposed_at is None:
        recorded = _record_once(store, incident_id=incident_id, kind=EventKind.PLAN_PROPOSED, sha="", now=now,
                                text=_proposal_text(view, plan), data={"steps": [s.record() for s in plan.steps]})
    else:
        step = plan.current
        if step is None or step.state is not StepState.APPLIED or step.reverted_at is None:
            return False
        verdict = _recovered(view, plan, step, metrics=metrics, playbook=playbook, now=now)
        if verdict is True:
            recorded = _record_once(
                store, incident_id=incident_id, kind=EventKind.PLAN_STEP_RECOVERED, sha=step.sha, now=now,
                text=(f"Step {step.number} of the plan (revert of {step.short}) recovered: {plan.check.describe()}. "
                      "The plan is done."),
                data={"step": step.number})
        elif verdict is False and step.deadline is not None and now >= step.deadline:
            following = _next(plan, step)
            recorded = _record_once(store, incident_id=incident_id, kind=EventKind.PLAN_STEP_NOT_RECOVERED,
                                    sha=step.sha, now=now, text=_next_text(view, plan, step),
                                    data={"step": step.number, "next": following.sha if following else None})
        else:
            return False
    if recorded:
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind="plan.changed")
    return recorded


def _recovered(view: IncidentView, plan: Plan, step: PlanStep, *, metrics: MetricsQuery | None,
               playbook: Playbook | None, now: datetime) -> bool | None:
    """Has the key metric recovered since the step's revert took effect (None: cannot tell yet)?
    Without a key query threshold or Prometheus: the incident's alerts resolving, held for `stay`."""
    check = playbook.health_check() if playbook is not None else None
    if metrics is not None and check is not None and plan.check.query is not None and step.reverted_at:
        try:
            samples = metrics.series(check[0], start=step.reverted_at, end=now, step=SAMPLE_STEP)
        except BackoutError:
            return None
        return recovery(samples, healthy=check[1], stay=plan.check.stay, now=now)
    counts = view.counts
    if not counts.total or counts.cleared_at is None:
        return None  # opened by hand, with nothing to watch: people judge it
    if counts.firing:
        return False
    return True if now - counts.cleared_at >= plan.check.stay else None


def _next(plan: Plan, step: PlanStep) -> PlanStep | None:
    return next((s for s in plan.steps if s.number > step.number and s.state is not StepState.SKIPPED), None)


def _proposal_text(view: IncidentView, plan: Plan) -> str:
    order = ", then ".join(f"{s.short} ({s.subject[:60]})" for s in plan.steps)
    return (f"Plan proposed, no change being confident: roll back {order}. Each step is verified: "
            f"{plan.check.describe()}; if not, the next step. Start with "
            f"`backout rollback {view.incident.ref} --commit {plan.steps[0].short}`.")


def _next_text(view: IncidentView, plan: Plan, step: PlanStep) -> str:
    took = format_duration(plan.check.within)
    head = f"Step {step.number} of the plan (revert of {step.short}) did not recover within {took}: "
    following = _next(plan, step)
    restore = (f" Or restore the service's paths to their last known good revision: "
               f"`backout restore {view.incident.ref}` (`/incident restore {view.incident.ref}`)."
               if step.number == 1 else "")
    if following is None:
        return head + "no step left in the plan. Look again at the suspects." + restore
    return (head + f"next step: roll back {following.short} ({following.subject[:60]}): "
            f"`backout rollback {view.incident.ref} --commit {following.short}`." + restore)


def _record_once(store: Store, *, incident_id: int, kind: EventKind, sha: str, now: datetime, text: str,
                 data: dict[str, object]) -> bool:
    """Append the event unless one of its kind for this step is already there (replicas, restarts)."""

    def work(tx: Transaction) -> bool:
        if any(e.kind == kind.value and e.data.get("sha", "") == sha for e in tx.timeline.for_incident(incident_id)):
            return False
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=kind, actor=Actor.SCHEDULER, text=text,
                                 data={"sha": sha, **data}))
        return True

    return store.run(work)
