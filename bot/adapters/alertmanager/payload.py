"""Alertmanager's webhook payload (version 4), parsed once at the border and mapped to ours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bot.domain.models import AlertStatus, Delivery, ReceivedAlert

# Alertmanager sends this zero time as `endsAt` while an alert fires.
_ZERO_TIME_YEAR = 1

STATUS_MAP: dict[str, AlertStatus] = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
NUL_SHOWN = "\u2400"  # SYMBOL FOR NULL: PostgreSQL text cannot hold NUL; both databases store this


def _text(value: str) -> str:
    """Text as both databases can store it: NUL shown as U+2400; a lone surrogate (JSON's
    "\\ud800", not a character) refused, so the sender learns the field."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate: not valid Unicode text") from None
    return value.replace("\x00", NUL_SHOWN)


def _instant(value: datetime) -> datetime:
    """A time that exists in UTC (9999-12-31T23:00:00-05:00 does not)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


Text = Annotated[str, AfterValidator(_text)]
Instant = Annotated[datetime, AfterValidator(_instant)]




class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[Text, Text] = Field(max_length=200)
    annotations: dict[Text, Text] = Field(default_factory=dict, max_length=200)
    starts_at: Instant = Field(alias="startsAt")
    ends_at: Instant | None = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL", max_length=8192)
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")


class AmPayload(BaseModel):
    """The body Alertmanager posts. Extra fields are ignored so newer releases still parse."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: Text = Field(alias="groupKey", min_length=1, max_length=4096)
    status: Literal["firing", "resolved"]
    receiver: Text = ""
    group_labels: dict[Text, Text] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[Text, Text] = Field(default_factory=dict, alias="commonLabels")
    external_url: Text = Field(default="", alias="externalURL")
    alerts: list[AmAlert] = Field(max_length=10_000)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.year == _ZERO_TIME_YEAR:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_delivery(payload: AmPayload) -> Delivery:
    """Map a parsed payload to the domain's Delivery."""
    alerts = []
    for alert in payload.alerts:
        starts_at = _utc(alert.starts_at)
        if starts_at is None:
            continue  # an alert without a start time has no identity; Alertmanager never sends one
        alerts.append(
            ReceivedAlert(
                fingerprint=alert.fingerprint,
                starts_at=starts_at,
                ends_at=_utc(alert.ends_at),
                status=STATUS_MAP[alert.status],
                labels=alert.labels,
                annotations=alert.annotations,
                generator_url=alert.generator_url,
            )
        )
    return Delivery(
        group_key=payload.group_key,
        status=STATUS_MAP[payload.status],
        alerts=tuple(alerts),
        receiver=payload.receiver,
        external_url=payload.external_url,
    )
