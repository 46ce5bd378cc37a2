"""Alertmanager's webhook payload (version 4), parsed once at the border and mapped to ours."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.models import AlertStatus, Delivery, ReceivedAlert, SetAside
from bot.domain.start_times import StartRange, iso

# Alertmanager's zero time (Go's time.Time{}): `endsAt` while an alert fires.
_ZERO_TIME_YEAR = 1

STATUS_MAP: dict[str, AlertStatus] = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
NUL_SHOWN = "\u2400"  # SYMBOL FOR NULL: PostgreSQL text cannot hold NUL; both databases store this
NUL_ESCAPE = b"\\u0000"  # how JSON writes NUL (a raw NUL byte inside a string is not JSON)
# Alerts in one delivery. Alertmanager sends a whole group unless its webhook's max_alerts says
# otherwise; server.max_body_bytes is the limit that matters (about 1 KB an alert).
MAX_ALERTS = 100_000
# Bodies past this are parsed alert by alert on a worker thread (`parse_large_delivery`).
LARGE_BODY = 1 << 20
# A surrogate escape: the one JSON text the standard library reads that pydantic refuses as not text.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(max_length=200)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=200)
    # Any time parses; one that is out of range (in UTC or around Backout's clock) sets this alert
    # aside in to_delivery, not the whole delivery.
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
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
    alerts: list[AmAlert] = Field(max_length=MAX_ALERTS)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")


def _utc(value: datetime) -> datetime:
    """The same instant in UTC (a naive time is taken as UTC). Raises OverflowError for a time
    that does not exist there (9999-12-31T23:00:00-05:00)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _end(value: datetime | None, *, now: datetime | None, window: StartRange) -> datetime | None:
    """endsAt in UTC; None for Alertmanager's zero time (a firing alert), and for a time out of
    range: the end is unknown, the alert's status still stands."""
    if value is None or value.year == _ZERO_TIME_YEAR:
        return None
    try:
        end = _utc(value)
    except OverflowError:
        return None
    return None if now is not None and window.refusal(end, now=now) else end


def parse_delivery(body: bytes, *, now: datetime | None = None, window: StartRange | None = None) -> Delivery:
    """The webhook body, parsed and validated in one pass from its bytes, as a Delivery; with `now`,
    alerts that start outside `window` around it are set aside (see to_delivery).
    Raises pydantic's ValidationError: type `json_invalid` for what is not JSON (a lone
    surrogate included: it is not text), field errors for what is JSON but not a payload."""
    delivery = to_delivery(AmPayload.model_validate_json(body), now=now, window=window)
    return _nul_shown(delivery) if NUL_ESCAPE in body else delivery


def parse_large_delivery(body: bytes, *, now: datetime | None = None, window: StartRange | None = None) -> Delivery:
    """What `parse_delivery` returns, for a body of thousands of alerts, in many short steps (one
    alert each) instead of one long call: run on a worker thread, it leaves the interpreter lock
    to the event loop between steps, so small deliveries keep being answered meanwhile. A body
    that is not a valid payload is parsed again by `parse_delivery`, for the very same error."""
    try:
        if _SURROGATE.search(body):
            raise ValueError("a surrogate escape: left to pydantic, which refuses a lone one")
        envelope, alerts = _split(body.decode("utf-8"))
        payload = AmPayload.model_validate({**envelope, "alerts": []})
        if len(alerts) > MAX_ALERTS:
            raise ValueError("too many alerts")
        parsed = [AmAlert.model_validate(alert) for alert in alerts]
    except (ValueError, TypeError, RecursionError):  # pydantic's ValidationError is a ValueError
        return parse_delivery(body, now=now, window=window)
    delivery = to_delivery(payload.model_copy(update={"alerts": parsed}), now=now, window=window)
    return _nul_shown(delivery) if NUL_ESCAPE in body else delivery


def _split(text: str) -> tuple[dict[str, object], list[object]]:
    """The top-level object's members but `alerts`, and the alerts one by one (ValueError when
    the text is not a JSON object whose `alerts` is an array)."""
    decoder = json.JSONDecoder(parse_constant=_refuse)
    envelope: dict[str, object] = {}
    alerts: list[object] | None = None
    at = _expect(text, 0, "{")
    while text[at] != "}":
        key, at = decoder.raw_decode(text, at)
        at = _expect(text, _expect(text, at, ":"), "")
        if key == "alerts":
            if text[at] != "[" or alerts is not None:
                raise ValueError("alerts is not one array")
            alerts = []
            at = _expect(text, at + 1, "")
            while text[at] != "]":
                alert, at = decoder.raw_decode(text, at)
                alerts.append(alert)
                at = _after_item(text, at, "]")
            at += 1
        else:
            envelope[str(key)], at = decoder.raw_decode(text, at)
        at = _after_item(text, _expect(text, at, ""), "}")
    if text[at + 1:].strip() or alerts is None:
        raise ValueError("text after the object, or no alerts")
    return envelope, alerts


def _expect(text: str, at: int, char: str) -> int:
    """Past whitespace and then `char` (none when empty)."""
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    if char:
        if at >= len(text) or text[at] != char:
            raise ValueError(f"expected {char!r} at {at}")
        return _expect(text, at + 1, "")
    if at >= len(text):
        raise ValueError("unexpected end")
    return at


def _after_item(text: str, at: int, end: str) -> int:
    at = _expect(text, at, "")
    if text[at] == ",":
        at = _expect(text, at + 1, "")
        if text[at] == end:
            raise ValueError("a trailing comma")
        return at
    if text[at] != end:
        raise ValueError(f"expected ',' or {end!r} at {at}")
    return at


def _refuse(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _nul_shown(delivery: Delivery) -> Delivery:
    """NUL shown as U+2400 in every text of the delivery, as both databases can store it."""

    def text(value: str) -> str:
        return value.replace("\x00", NUL_SHOWN)

    def mapping(values: dict[str, str]) -> dict[str, str]:
        return {text(key): text(value) for key, value in values.items()}

    alerts = tuple(a.model_copy(update={"labels": mapping(a.labels), "annotations": mapping(a.annotations),
                                        "generator_url": text(a.generator_url)})
                   for a in delivery.alerts)
    aside = tuple(a.model_copy(update={"name": text(a.name)}) for a in delivery.set_aside)
    return delivery.model_copy(update={"group_key": text(delivery.group_key), "receiver": text(delivery.receiver),
                                       "external_url": text(delivery.external_url), "alerts": alerts,
                                       "set_aside": aside})


def to_delivery(payload: AmPayload, *, now: datetime | None = None, window: StartRange | None = None) -> Delivery:
    """Map a parsed payload to the domain's Delivery. An alert whose startsAt does not exist in UTC,
    or (given `now`) lies outside `window` around it, goes to `set_aside` with the reason."""
    window = window or StartRange()
    alerts: list[ReceivedAlert] = []
    aside: list[SetAside] = []
    for index, alert in enumerate(payload.alerts):
        why = _start_refusal(alert.starts_at, now=now, window=window)
        if why is not None:
            aside.append(SetAside(index=index, fingerprint=alert.fingerprint,
                                  name=alert.labels.get("alertname", "unnamed alert"), reason=why))
            continue
        alerts.append(
            ReceivedAlert(
                fingerprint=alert.fingerprint,
                starts_at=_utc(alert.starts_at),
                ends_at=_end(alert.ends_at, now=now, window=window),
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
        set_aside=tuple(aside),
    )


def _start_refusal(value: datetime, *, now: datetime | None, window: StartRange) -> str | None:
    """Why the alert cannot be kept, or None. Alertmanager's zero time is out of any range."""
    if value.year == _ZERO_TIME_YEAR:
        return "startsAt is Alertmanager's zero time: the alert has no start, so no identity"
    try:
        start = _utc(value)
    except OverflowError:
        return f"startsAt {value.isoformat()} is out of range once converted to UTC"
    if now is None:
        return None
    why = window.refusal(start, now=now)
    return None if why is None else f"startsAt {iso(start)} {why}"
