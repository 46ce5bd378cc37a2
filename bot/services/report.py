"""Numbers across incidents for the team's review: how many, how fast (to acknowledge, mitigate
and resolve: median and 90th percentile), how many a change caused (the change-failure signal),
the reverts Backout opened and how many were merged (and how many Backout merged by itself), and how
often the first suspect was right."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.automerge import window_state
from bot.domain.models import Incident
from bot.domain.ports import Store, Transaction
from bot.domain.suspects import Ranking
from bot.domain.verdicts import Finding, finding
from bot.services.verdicts import accuracy_report

MAX_INCIDENTS = 10_000
OPENED = frozenset({ActionState.PUSHED, ActionState.PR_OPEN, ActionState.MERGED, ActionState.CLOSED,
                    ActionState.CONFLICTED})

CAUSED = ("confirmed", "reverted")  # what the share counts: never a suspect nobody confirmed


@dataclass(frozen=True)
class _Case:
    incident: Incident
    changed: str  # confirmed | reverted | unconfirmed | no_change | unknown
    reverts: int
    merged: int
    merged_by_backout: int  # reverts and restores Backout merged by itself (actions.merge: confident)


def team_report(*, store: Store, since: datetime, now: datetime, service: str | None = None) -> dict[str, Any]:
    """The report as the API's JSON: `incidents`, `durations_seconds` (median and p90 of each),
    `changes` (incidents a change caused: confirmed by a responder, or a confident suspect whose
    revert was merged; a confident suspect nobody judged or reverted is `unconfirmed`, not a
    cause), `reverts` and `accuracy`."""

    def work(tx: Transaction) -> list[_Case]:
        cases = []
        for incident in tx.incidents.list(limit=MAX_INCIDENTS):
            if incident.opened_at < since or (service and incident.service != service) or incident.id is None:
                continue
            found = finding(tx.verdicts.for_incident(incident.id))
            actions = tx.actions.for_incident(incident.id)
            reverts = [a for a in actions if a.kind is ActionKind.REVERT]
            changed = _changed(found, tx.rankings.get(incident.id), reverts)
            cases.append(_Case(incident, changed, sum(a.state in OPENED for a in reverts),
                               sum(a.state is ActionState.MERGED for a in reverts),
                               sum(window_state(a) == "merged" for a in actions)))
        return cases

    cases = store.run(work)
    accuracy = accuracy_report(store=store, since=since, now=now)
    if service:
        accuracy = {"overall": accuracy["by_service"].get(service, _no_figures())}
    return {
        "since": since.isoformat(), "generated_at": now.isoformat(), "service": service,
        "incidents": len(cases),
        "by_status": _count(c.incident.status.value for c in cases),
        "durations_seconds": {
            name: _figures([_seconds(c.incident.started_at, getattr(c.incident, field)) for c in cases])
            for name, field in (("to_acknowledge", "acknowledged_at"), ("to_mitigate", "mitigated_at"),
                                ("to_resolve", "resolved_at"))},
        "changes": {
            "confirmed": sum(c.changed == "confirmed" for c in cases),
            "reverted": sum(c.changed == "reverted" for c in cases),
            "unconfirmed": sum(c.changed == "unconfirmed" for c in cases),
            "no_change": sum(c.changed == "no_change" for c in cases),
            "unknown": sum(c.changed == "unknown" for c in cases),
            "share": round(sum(c.changed in CAUSED for c in cases) / len(cases), 3) if cases else None,
        },
        "reverts": {"opened": sum(c.reverts for c in cases), "merged": sum(c.merged for c in cases),
                    "merged_by_backout": sum(c.merged_by_backout for c in cases)},
        "by_service": _count(c.incident.service for c in cases),
        "accuracy": accuracy["overall"],
    }


def _changed(found: Finding | None, ranking: Ranking | None, reverts: list[Action]) -> str:
    """What the incident says about a change causing it: confirmed, reverted, unconfirmed, no_change, unknown."""
    if found is not None and found.culprit:
        return "confirmed"
    if found is not None and found.no_change:
        return "no_change"
    if ranking is None or not ranking.confident:
        return "unknown"
    # a confident suspect is a guess until the team acts on it: merging its revert is that act
    suspects = {s.sha for s in ranking.suspects}
    undone = any(a.state is ActionState.MERGED and a.commit_sha in suspects for a in reverts)
    return "reverted" if undone else "unconfirmed"


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()


def _figures(values: list[float | None]) -> dict[str, float | int | None]:
    known = sorted(v for v in values if v is not None)
    if not known:
        return {"count": 0, "median": None, "p90": None}
    p90 = known[min(len(known) - 1, max(0, round(0.9 * len(known) + 0.5) - 1))]  # nearest rank
    return {"count": len(known), "median": round(statistics.median(known), 3), "p90": round(p90, 3)}


def _count(values: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        found[value] = found.get(value, 0) + 1
    return dict(sorted(found.items()))


def _no_figures() -> dict[str, Any]:
    return {"incidents": 0, "precision_at_1": None, "precision_of_confidence": None, "recall_at_3": None,
            "abstention_no_cause": None}
