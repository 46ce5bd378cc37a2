"""When did the problem begin? The onset ranking measures timing from.

An alert's `startsAt` lags the real start of a problem by the rule's `for` and Alertmanager's
`group_wait`. The key metric shows when things went wrong (change-point detection, PELT, on its
recent history); the Prometheus that raised the alert knows when its condition became true
(`activeAt`), or at least the rule's `for`; a probe knows its first bad sample. Ranking measures
timing from the onset, and a change applied after it cannot have started it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import cast
from urllib.parse import urlsplit

import numpy as np

from bot.domain.durations import format_duration
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, Alert, Incident, TimelineEvent
from bot.domain.playbooks import Playbook
from bot.domain.ports import AlertStates, MetricsQuery, Store, Transaction
from bot.domain.timeline import EventKind, event

SEARCH = timedelta(hours=2)  # how far before the incident's start the onset is looked for
AFTER = timedelta(minutes=2)  # and after it (the alert can fire before the next scrape)
MOST_POINTS = 600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_LOOKBACK = timedelta(hours=6)  # an incident without a playbook
MOST_ALERTS = 5  # the incident's earliest alerts looked up in Prometheus (one or two calls each)
MIN_SHIFT_SIGMAS = 4.0  # a level shift smaller than this many noise deviations is noise
EDGE_SIGMAS = 3.0  # a point this far from the old level has left it


class OnsetSource(StrEnum):
    KEY_METRIC = "key_metric"  # the key query's change point
    ACTIVE_AT = "active_at"  # Prometheus's activeAt for the alert: its condition became true
    RULE_FOR = "starts_at_less_for"  # the alert is gone from Prometheus: startsAt less its rule's `for`
    PROBE = "probe"  # a Backout probe's first bad sample
    START = "start"  # nothing better: timing counts from the incident's start (the alert's startsAt)


@dataclass(frozen=True)
class Onset:
    """When the problem began (None: timing counts from the incident's start), and who says so."""

    at: datetime | None
    source: OnsetSource
    note: str = ""  # the line on the timeline; empty when there is nothing to say


def onset_of(*, metrics: MetricsQuery, playbook: Playbook | None, alerts: Sequence[Alert],
             started_at: datetime, lookback: timedelta) -> Onset:
    """The earliest of what is known of the problem's beginning: the key metric's change point,
    an alert's activeAt (or, once Prometheus no longer has it, its startsAt less its rule's `for`)
    and a probe's first bad sample. Each is a time the problem had begun by, so the earliest is
    the best bound; with none, timing counts from the incident's start and the note says why."""
    known: list[Onset] = []
    key = find_onset(metrics=metrics, playbook=playbook, started_at=started_at, lookback=lookback)
    if key is not None:
        known.append(Onset(key, OnsetSource.KEY_METRIC, f"Onset {key:%H:%M:%S} UTC: the key metric changed level."))
    from_alerts = alerts_onset(states=alert_states(metrics), alerts=alerts)
    if from_alerts.at is not None:
        known.append(from_alerts)
    return _earliest(known) if known else from_alerts


def alert_states(metrics: MetricsQuery) -> AlertStates | None:
    """The configured Prometheus as AlertStates, when it can say. Asked of its attributes, not with
    isinstance: a wrapper that forwards them (`batch_onsets`) has them only through `__getattr__`,
    which Python 3.12's protocol check (`inspect.getattr_static`) does not see."""
    found = all(callable(getattr(metrics, name, None)) for name in ("asks", "active_at", "rule_for"))
    return cast(AlertStates, metrics) if found else None


def alerts_onset(*, states: AlertStates | None, alerts: Sequence[Alert]) -> Onset:
    """The earliest onset the incident's first alerts give: a probe's first bad sample, the
    alert's activeAt, else its startsAt less its rule's `for`; else None with why not."""
    earliest = sorted({a.fingerprint: a for a in sorted(alerts, key=lambda a: a.starts_at, reverse=True)}.values(),
                      key=lambda a: a.starts_at)[:MOST_ALERTS]
    found: list[Onset] = []
    why = ""
    for alert in earliest:
        if alert.source == "probe":
            found.append(Onset(alert.starts_at, OnsetSource.PROBE,
                               f"Onset {alert.starts_at:%H:%M:%S} UTC: the probe {alert.name}'s first bad sample."))
            continue
        if states is None:
            continue
        if not states.asks(alert):
            why = why or _not_asked(alert)
            continue
        try:
            onset = _alert_onset(states, alert)
        except BackoutError:
            why = "Onset: Prometheus did not answer; timing counts from the alert's start."
            break  # a Prometheus that does not answer is not asked again for the next alert
        if onset is None:
            why = why or (f"Onset: Prometheus no longer has {alert.name} nor its rule; "
                          "timing counts from the alert's start.")
            continue
        found.append(onset)
    if found:
        return _earliest(found)
    return Onset(None, OnsetSource.START, why)


def _earliest(onsets: Sequence[Onset]) -> Onset:
    return min(onsets, key=lambda onset: (onset.at is None, onset.at or datetime.min))


def _alert_onset(states: AlertStates, alert: Alert) -> Onset | None:
    active = states.active_at(alert)
    if active is not None:
        return Onset(active, OnsetSource.ACTIVE_AT, f"Onset {active:%H:%M:%S} UTC: {alert.name} became true then "
                                                    f"(Prometheus activeAt; it fired at {alert.starts_at:%H:%M:%S}).")
    hold = states.rule_for(alert)
    if hold is None:
        return None
    at = alert.starts_at - hold
    return Onset(at, OnsetSource.RULE_FOR, f"Onset {at:%H:%M:%S} UTC: {alert.name} started at "
                                           f"{alert.starts_at:%H:%M:%S} less its rule's for {format_duration(hold)}.")


def _not_asked(alert: Alert) -> str:
    if not alert.generator_url:
        return f"Onset: {alert.name} names no Prometheus (no generatorURL); timing counts from the alert's start."
    host = urlsplit(alert.generator_url).netloc or alert.generator_url[:80]
    return (f"Onset: {alert.name} comes from {host}, which Backout does not ask (prometheus.generators); "
            "timing counts from the alert's start.")


@dataclass(frozen=True)
class KnownOnset:
    """An incident's onset found (and recorded) before its investigation: a batch's, outside its
    transaction. The investigation takes it as it is and asks Prometheus nothing."""

    at: datetime | None


def incident_onset(*, metrics: MetricsQuery, playbook: Playbook | None, incident: Incident,
                   alerts: Sequence[Alert]) -> Onset:
    """`onset_of` for an incident of this playbook (its lookback bounds the search)."""
    lookback = playbook.suspects.lookback if playbook else DEFAULT_LOOKBACK
    return onset_of(metrics=metrics, playbook=playbook, alerts=alerts, started_at=incident.started_at,
                    lookback=lookback)


def record_onset(*, store: Store, incident_id: int, onset: Onset, now: datetime) -> None:
    """Say on the timeline where the onset came from, once (the same line is not repeated)."""
    if not onset.note:
        return

    def work(tx: Transaction) -> None:
        said = onset_said(tx, incident_id=incident_id, onset=onset, now=now)
        if said is not None:
            tx.timeline.append(said)

    store.run(work)


def onset_said(tx: Transaction, *, incident_id: int, onset: Onset, now: datetime) -> TimelineEvent | None:
    """The timeline event saying where the onset came from; None when there is nothing to say or
    the incident's last such line says it already."""
    if not onset.note:
        return None
    said = [e.text for e in tx.timeline.for_incident(incident_id) if e.kind == EventKind.ONSET_FOUND]
    if said and said[-1] == onset.note:
        return None
    return event(incident_id=incident_id, at=now, kind=EventKind.ONSET_FOUND, actor=Actor.BACKOUT, text=onset.note,
                 data={"onset": onset.at.isoformat() if onset.at else None, "source": onset.source.value})


def find_onset(*, metrics: MetricsQuery, playbook: Playbook | None, started_at: datetime,
               lookback: timedelta) -> datetime | None:
    """The onset of the playbook's key query before the incident started, or None when there is
    no key query, no data, no clear level shift, or Prometheus cannot answer (ranking goes on
    without it)."""
    if playbook is None or playbook.key_query is None:
        return None
    start, end, step = key_window(started_at, lookback)
    try:
        points = metrics.series(playbook.key_query, start=start, end=end, step=step)
    except BackoutError:
        return None
    return level_shift(points, before=started_at + AFTER, worse=playbook.worse_direction())


def key_window(started_at: datetime, lookback: timedelta) -> tuple[datetime, datetime, timedelta]:
    """The key query's range (start, end, step) for an incident started then. The start is on a
    grid of the step (its multiples since the epoch), so Prometheus evaluates incidents' windows at
    the same instants and one query over several windows answers each (`batch_onsets`)."""
    span = min(SEARCH, lookback)
    step = max(timedelta(seconds=15), (span + AFTER) / MOST_POINTS)
    start = started_at - span
    start -= (start - EPOCH) % step
    return start, started_at + AFTER, step


def level_shift(points: Sequence[tuple[datetime, float]], *, before: datetime, worse: int | None) -> datetime | None:
    """The time of the largest level shift (in the `worse` direction, +1 up or -1 down, when
    known) that is clearly above the noise, among the change points PELT finds."""
    clean = [(at, value) for at, value in points if math.isfinite(value) and at <= before]
    if len(clean) < 12:
        return None
    values = np.array([value for _, value in clean], dtype=float)
    sigma = _noise(values)
    if sigma == 0.0:
        sigma = max(float(np.abs(values).max()) * 1e-6, 1e-12)
    penalty = 2.0 * sigma**2 * math.log(len(values)) * 4
    # PELT with the linear kernel (the l2 cost, in ruptures' C implementation): exact and fast.
    # Imported here: ruptures brings scipy, about 60 MB a replica that never ranks with a metric.
    import ruptures

    breaks = ruptures.KernelCPD(kernel="linear", min_size=3).fit(values).predict(pen=penalty)
    bounds = [0, *(int(b) for b in breaks)]
    means = [float(values[bounds[k]:bounds[k + 1]].mean()) for k in range(len(bounds) - 1)]
    best: tuple[float, int] | None = None  # |shift|, segment index after the break
    for k in range(1, len(means)):
        shift = means[k] - means[k - 1]
        if worse is not None and shift * worse <= 0:
            continue
        if abs(shift) < MIN_SHIFT_SIGMAS * sigma:
            continue
        if best is None or abs(shift) > best[0]:
            best = (abs(shift), k)
    if best is None:
        return None
    k = best[1]
    direction = 1.0 if means[k] > means[k - 1] else -1.0
    # A rate() window turns a step into a ramp, which PELT may cut into several segments:
    # go back over the segments that lead up to the shift to the old level, then to the first
    # point that left it, which is when the problem began.
    base = k - 1
    while base >= 1 and (means[base] - means[base - 1]) * direction > EDGE_SIGMAS * sigma:
        base -= 1
    level = means[base]
    index = bounds[base + 1]
    while index - 1 > bounds[base] and (values[index - 1] - level) * direction > EDGE_SIGMAS * sigma:
        index -= 1
    # The shift happened between the last point of the old level and the first of the new.
    return clean[index - 1][0] + (clean[index][0] - clean[index - 1][0]) / 2


def _noise(values: np.ndarray) -> float:
    """The noise's standard deviation, robust to level shifts: from the median absolute first difference."""
    diffs = np.diff(values)
    return float(np.median(np.abs(diffs - np.median(diffs))) * 1.4826 / math.sqrt(2))
