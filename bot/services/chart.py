"""What the incident's chart shows: the key metric over the incident window and, on the same time
axis, each suspect change applied, each alert firing and resolving, each action and the recovery.
Drawing it is the export adapter's work; this decides what goes on it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from bot.domain.actions import ActionKind, ActionState
from bot.domain.chart import ChartData, Marker
from bot.domain.durations import format_duration
from bot.domain.errors import BackoutError
from bot.domain.models import AlertStatus
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import MetricsQuery
from bot.services.incidents import IncidentView

MAX_SUSPECTS = 3  # the best-ranked changes are marked; more would hide the metric
POINTS = 240  # samples across the window: legible at 1200 px
# Before the incident the frame shows at least this long: most bad changes show within minutes
# (docs/ranking.md: a 10-minute half-life for 90% of them), so the culprit is usually in frame.
LEAD = timedelta(minutes=15)
TAIL = timedelta(minutes=2)  # after the last event: the recovery is seen, not cut at the edge
MIN_SPAN = timedelta(minutes=10)
PLAUSIBLE = timedelta(days=366)  # around the incident's opening and end: further is bad data, not history


def chart_data(view: IncidentView, *, playbooks: Sequence[Playbook], metrics: MetricsQuery | None,
               now: datetime) -> ChartData:
    """The chart of the incident: its window with a margin, the key metric over it, the events marked."""
    incident = view.incident
    markers = _markers(view)
    start, end = frame(view, markers, now=now)
    markers = [_dated(m, started=incident.started_at) if m.kind == "change" and m.at < start else m
               for m in markers]
    query = _query(view, playbooks)
    title = f"{incident.ref}: {incident.service}"
    if query is None:
        return ChartData(title, start, end, markers=markers, note="no key query (the playbook's key_query or "
                                                                  "the alert rule's expression)")
    if metrics is None:
        return ChartData(title, start, end, query, markers=markers, note="Prometheus is not configured")
    step = max((end - start) / POINTS, timedelta(seconds=1))
    try:
        series = metrics.series(query, start=start, end=end, step=step)
    except BackoutError as exc:
        return ChartData(title, start, end, query, markers=markers, note=f"the query failed: {exc}")
    return ChartData(title, start, end, query, series, markers, "" if series else "the query returned no data")


def frame(view: IncidentView, markers: Sequence[Marker], *, now: datetime) -> tuple[datetime, datetime]:
    """The time axis: the incident (its onset, alerts and actions to its end) with a margin, not
    stretched to an old suspect: changes before it are marked at the left edge instead. Times far
    from when Backout opened it (a start in 9999 stored before such alerts were set aside) do not
    stretch it either: they are marked at the edge."""
    incident = view.incident
    opened, ended = incident.opened_at, max(incident.resolved_at or now, incident.opened_at)

    def plausible(at: datetime) -> bool:
        return opened - at <= PLAUSIBLE and at - ended <= PLAUSIBLE

    events = [m.at for m in markers if m.kind != "change" and plausible(m.at)]
    onset = view.ranking.onset_at
    first = min([incident.started_at if plausible(incident.started_at) else opened, *events,
                 *([onset] if onset and plausible(onset) else [])])
    last = max([ended, *events])
    span = max(last - first, MIN_SPAN)
    return first - max(span / 2, LEAD), last + max(span / 10, TAIL)


def _dated(marker: Marker, *, started: datetime) -> Marker:
    """A change before the frame: its label says how long before the incident it was applied."""
    return Marker(marker.at, marker.kind, f"{marker.label}, {format_duration(started - marker.at)} before")


def _query(view: IncidentView, playbooks: Sequence[Playbook]) -> str | None:
    """The playbook's key query, else the expression of the first alert's rule (generatorURL)."""
    playbook = playbook_named(playbooks, view.incident.playbook)
    if playbook is not None and playbook.key_query:
        return playbook.key_query
    for alert in view.alerts:
        expressions = parse_qs(urlsplit(alert.generator_url).query).get("g0.expr")
        if expressions and expressions[0].strip():
            return expressions[0].strip()
    return None


def _markers(view: IncidentView) -> list[Marker]:
    found = [Marker(s.applied_at, "change", s.short) for s in view.ranking.suspects[:MAX_SUSPECTS]]
    for alert in view.alerts:
        found.append(Marker(alert.starts_at, "alert_firing", alert.name))
        if alert.status is AlertStatus.RESOLVED and alert.ends_at is not None:
            found.append(Marker(alert.ends_at, "alert_resolved", alert.name))
    for action in view.actions:
        if action.kind is ActionKind.POSTMORTEM:
            continue  # after the fact: not part of the incident's story on the chart
        what = {ActionKind.REVERT: f"revert {action.commit_sha[:7]}",
                ActionKind.RESTORE: f"restore to {action.commit_sha[:7]}"}.get(action.kind, action.label)
        if action.state in (ActionState.PUSHED, ActionState.PR_OPEN, ActionState.MERGED, ActionState.CONFLICTED):
            found.append(Marker(action.created_at, "action", f"{what} pushed"))
        if action.state is ActionState.MERGED:
            found.append(Marker(action.updated_at, "action", f"{what} merged"))
    if view.incident.resolved_at is not None:
        found.append(Marker(view.incident.resolved_at, "recovery", "resolved"))
    return _merged(sorted(found, key=lambda m: m.at))


def _merged(markers: list[Marker]) -> list[Marker]:
    """One marker for the same event at the same moment (two instances of one alert): `name x2`."""
    counts: dict[tuple[datetime, str, str], int] = {}
    for marker in markers:
        counts[(marker.at, marker.kind, marker.label)] = counts.get((marker.at, marker.kind, marker.label), 0) + 1
    return [Marker(at, kind, label if n == 1 else f"{label} x{n}") for (at, kind, label), n in counts.items()]
