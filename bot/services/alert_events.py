"""What the timeline says of a delivery's alerts: an event per alert, or past EVENTS_PER_ALERT alerts
of one incident (a fleet-wide alert) one event that counts them, so the timeline stays readable and
a 10,000-alert group is one row. A delivery written in parts keeps one count event per incident and
kind, which each part adds its alerts to (`counted` with the event so far)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.models import ReceivedAlert, TimelineEvent
from bot.domain.timeline import EventKind

EVENTS_PER_ALERT = 20  # more alerts of one incident in one delivery: one event counts them
NAMES_KEPT = 100  # alert names a count event keeps, for the next part's text
FINGERPRINTS_KEPT = 20  # fingerprints a count event keeps, to find some of its alerts


def verb(kind: EventKind) -> str:
    return "firing" if kind is EventKind.ALERT_FIRING else "resolved"


def one_each(alerts: Sequence[ReceivedAlert], kind: EventKind) -> list[tuple[str, dict[str, Any]]]:
    """An event's text and data for each alert."""
    said = []
    for alert in alerts:
        instance = alert.labels.get("instance")
        where = f" ({instance})" if instance else ""
        said.append((f"{alert.name}{where} {verb(kind)}", {
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at.isoformat(),
            "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        }))
    return said


def counted(alerts: Sequence[ReceivedAlert], kind: EventKind, *, delivery: str = "",
            before: TimelineEvent | None = None) -> tuple[str, dict[str, Any]]:
    """The count event's text and data for these alerts, added to `before` (the same delivery's
    count event as its earlier parts left it). `delivery`: the digest its parts share, kept in the
    data so that the next part (or the delivery sent again) finds the event."""
    was = before.data if before is not None else {}
    count = int(was.get("count", 0)) + len(alerts)
    names = sorted({*was.get("names", ()), *(a.name for a in alerts)})[:NAMES_KEPT]
    fingerprints = [*was.get("fingerprints", ()), *(a.fingerprint for a in alerts)][:FINGERPRINTS_KEPT]
    more = f" and {len(names) - 5} more names" if len(names) > 5 else ""
    data: dict[str, Any] = {"count": count, "fingerprints": fingerprints}
    if delivery:
        data |= {"delivery": delivery, "names": names}
    return f"{count} alerts {verb(kind)}: {', '.join(names[:5])}{more}", data
