"""Drift as a suspect: an out-of-band change scored with the same timing, scope and effect factors
as a commit, its time a window (the last clean reconcile to its detection). Pure.

Timing is the hazard averaged over the window (when in it the edit happened is unknown, so each
moment is as likely); a drift the controller corrected before the problem began had undone itself
by then, so it is weak evidence (`CORRECTED_FACTOR`), shown but rarely the answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.changes import AppliedSource, Effect
from bot.domain.drift import Drift, DriftAction
from bot.domain.ranking import EFFECT_WEIGHTS, HAZARD, SCOPE_OWN, _ago, _effect_names
from bot.domain.suspects import ONSET_GRACE, Suspect

CORRECTED_FACTOR = 0.2
_SAMPLES = 9  # points the window's timing is averaged over


def drift_suspects(drifts: Sequence[Drift], *, service: str, started_at: datetime, lookback: timedelta,
                   onset: datetime | None) -> list[Suspect]:
    """The service's drift whose window overlaps the lookback before the incident started, scored."""
    window_start = started_at - lookback
    found = []
    for drift in drifts:
        begun = drift.since or drift.detected_at
        if service not in drift.services or drift.detected_at < window_start or begun > started_at:
            continue
        found.append(score_drift(drift, started_at=started_at, onset=onset))
    return found


def score_drift(drift: Drift, *, started_at: datetime, onset: datetime | None) -> Suspect:
    """One drift as a suspect, with its reasons and the product of its factors."""
    reference = onset if onset is not None else started_at
    begun = drift.since or drift.detected_at
    end = min(drift.detected_at, reference)
    reasons: list[str] = []
    factors: list[tuple[str, float]] = []

    until = f"{drift.detected_at:%H:%M} UTC"
    window = (f"between {begun:%H:%M} and {until} (its last clean reconcile, then detection)"
              if drift.since is not None else f"by {until} (when it was detected)")
    what = (f"{_ago(reference - end)}-{_ago(reference - min(begun, end))} before" if begun < end
            else f"{_ago(reference - end)} before")
    late = onset is not None and begun > onset + ONSET_GRACE
    anchor = f"the problem began at {onset:%H:%M} UTC" if onset is not None else "the incident started"
    reasons.append(f"changed out of band {window}, seen by {drift.label}: {what} {anchor}" if not late
                   else f"changed out of band {window}, seen by {drift.label}")
    factors.append(("timing", _window_timing(begun, end, reference)))

    factors.append(("scope", SCOPE_OWN))
    objects = ", ".join(r.ref for r in drift.resources[:3]) or drift.label
    reasons.append(f"changed the service's live objects: {objects}")
    effect = drift.effect()
    factors.append(("effect", EFFECT_WEIGHTS.get(effect, EFFECT_WEIGHTS[Effect.OTHER])))
    fields = [f.describe() for r in drift.resources for f in r.fields][:3]
    reasons.append(f"changed {_effect_names({effect})}" + (f": {'; '.join(fields)}" if fields else ""))

    if drift.corrected_at is not None and drift.corrected_at <= reference:
        factors.append(("corrected before", CORRECTED_FACTOR))
        reasons.append(f"{drift.correction or 'corrected'}, before {anchor}: its effect was gone by then")
    elif drift.correction:
        reasons.append(drift.correction)
    if late and onset is not None:
        factors.append(("after onset", 0.05))
        reasons.append(f"changed after the problem began at {onset:%H:%M} UTC: it cannot have started it")
    action = DriftAction(id=drift.id or 0, source=drift.label, since=drift.since, detected_at=drift.detected_at,
                         corrected_at=drift.corrected_at, correction=drift.correction, sync=drift.sync)
    reasons.append("never reverted in Git (no commit made it): " + action.offered())

    score = 1.0
    for _, factor in factors:
        score *= factor
    reasons.append("score " + " x ".join(f"{label} {value:.2f}" for label, value in factors))
    return Suspect(repo=drift.label, sha=drift.handle, subject=drift.describe(), author="out of band",
                   applied_at=begun, applied_source=AppliedSource.DRIFT, score=round(min(1.0, max(0.0, score)), 3),
                   reasons=tuple(reasons), applied_by=drift.label, drift=action)


def _window_timing(begun: datetime, end: datetime, reference: datetime) -> float:
    """The hazard averaged over the window: the edit is as likely at any moment of it."""
    begun = min(begun, end)
    span = end - begun
    ages = [reference - (begun + span * (i / (_SAMPLES - 1))) for i in range(_SAMPLES)]
    return sum(HAZARD.timing(age) for age in ages) / _SAMPLES

