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
NUL_ESCAPE = b"\\u0000"  # how JSON writes NUL (a raw NUL byte inside a string is not JSON)


def _instant(value: datetime) -> datetime:
    """A time that exists in UTC (9999-12-31T23:00:00-05:00 does not)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


Instant = Annotated[datetime, AfterValidator(_instant)]




class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(max_length=200)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=200)
    starts_at: Instant = Field(alias="startsAt")
    ends_at: Instant | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL", max_length=8192)
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")


class AmPayload(BaseModel):
    """The body Alertmanager posts. Extra fields are ignored so newer releases still parse."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AmAlert] = Field(max_length=10_000)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.year == _ZERO_TIME_YEAR:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_delivery(body: bytes) -> Delivery:
    """The webhook body, parsed and validated in one pass from its bytes, as a Delivery.
    Raises pydantic's ValidationError: type `json_invalid` for what is not JSON (a lone
    surrogate included: it is not text), field errors for what is JSON but not a payload."""
    delivery = to_delivery(AmPayload.model_validate_json(body))
    return _nul_shown(delivery) if NUL_ESCAPE in body else delivery


def _nul_shown(delivery: Delivery) -> Delivery:
    """NUL shown as U+2400 in every text of the delivery, as both databases can store it."""

    def text(value: str) -> str:
        return value.replace("\x00", NUL_SHOWN)

    def mapping(values: dict[str, str]) -> dict[str, str]:
        return {text(key): text(value) for key, value in values.items()}

    alerts = tuple(a.model_copy(update={"labels": mapping(a.labels), "annotations": mapping(a.annotations),
                                        "generator_url": text(a.generator_url)})
                   for a in delivery.alerts)
    return delivery.model_copy(update={"group_key": text(delivery.group_key), "receiver": text(delivery.receiver),
                                       "external_url": text(delivery.external_url), "alerts": alerts})


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
