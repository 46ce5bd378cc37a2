"""A huge delivery (a fleet-wide alert: thousands in one group) recorded in parts, so that no one
transaction holds the database for seconds while small deliveries wait behind it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.domain.models import AlertStatus, Delivery
from bot.services.ingest import IngestOutcome

PART = 500  # alerts a transaction: tens of milliseconds of writing


def parts(delivery: Delivery, *, size: int = PART) -> list[Delivery]:
    """The delivery as deliveries of at most `size` alerts, with its group and envelope. Firing
    alerts come first, in their order: the incident they open or join has them all before any
    resolved one is counted, as it would in one piece. Alerts are idempotent, so a crash between
    parts leaves Alertmanager's retry to record the rest."""
    if len(delivery.alerts) <= size:
        return [delivery]
    ordered = sorted(delivery.alerts, key=lambda alert: alert.status is not AlertStatus.FIRING)
    key = digest(delivery)
    # The alerts set aside are noted once, with the first part.
    return [delivery.model_copy(update={"alerts": tuple(ordered[start:start + size]), "part_of": key,
                                        "set_aside": delivery.set_aside if start == 0 else ()})
            for start in range(0, len(ordered), size)]


def digest(delivery: Delivery) -> str:
    """What identifies a delivery without a delivery id (Alertmanager sends none): its group and
    each alert's identity and status. The same delivery sent again has the same digest; the group's
    next notification, with an alert more or one resolved, has another."""
    hashed = hashlib.sha256(delivery.group_key.encode("utf-8", "surrogatepass"))
    for identity in sorted(f"{a.fingerprint} {a.starts_at.isoformat()} {a.status.value}" for a in delivery.alerts):
        hashed.update(b"\n" + identity.encode())
    return hashed.hexdigest()[:32]


def combined(outcomes: Sequence[IngestOutcome]) -> IngestOutcome:
    """What the parts changed, as one delivery's outcome: each incident counted once."""
    total = IngestOutcome()
    for outcome in outcomes:
        total.new_alerts += outcome.new_alerts
        total.resolved_alerts += outcome.resolved_alerts
        total.duplicates += outcome.duplicates
        for mine, theirs in ((total.opened, outcome.opened), (total.reopened, outcome.reopened),
                             (total.resolved, outcome.resolved)):
            mine.extend(i for i in theirs if i.id not in {known.id for known in mine})
        total.touched |= outcome.touched
    return total
