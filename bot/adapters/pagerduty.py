"""PagerDuty behind the Pager port, on its maintained client (`pagerduty`): Events API v2 (pages and
change events) and the REST API (who is on call); and its webhooks (v3) parsed into domain events.

The client's own retry is off: it repeats a 429 without end and sleeps through 5xx inside the call.
A page is sent once per call and the outbox owns retries (RateLimited carries Retry-After); the
on-call lookup, which a person waits for, retries here, bounded, honouring Retry-After."""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import pagerduty
import structlog
from pydantic import BaseModel, ConfigDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from bot.domain.errors import RateLimited, TransientError, UpstreamError
from bot.domain.paging import SOURCE, OnCall, Page, PageKind, PagerIncidentEvent, PagerIncidentKind
from bot.domain.untrusted import Instant, StoredText

T = TypeVar("T")
log = structlog.get_logger(__name__)

EVENTS_URL = "https://events.pagerduty.com"
API_URL = "https://api.pagerduty.com"
_STATUSES = (429, 500, 502, 503, 504)


class PagerDutyPager:
    """Implements the Pager port."""

    def __init__(self, *, routing_key: str | None, api_token: str | None, events_url: str = EVENTS_URL,
                 api_url: str = API_URL, ca_file: Path | None = None, timeout: float = 10.0,
                 attempts: int = 3, max_wait: float = 10.0) -> None:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._events = _quiet(pagerduty.EventsApiV2Client(routing_key, base_url=events_url, verify=verify),
                              timeout) if routing_key else None
        self._rest = _quiet(pagerduty.RestApiV2Client(api_token, base_url=api_url, verify=verify),
                            timeout) if api_token else None
        self._attempts, self._max_wait = attempts, max_wait

    @property
    def sends(self) -> bool:
        return self._events is not None

    def close(self) -> None:
        for client in (self._events, self._rest):
            if client is not None:
                client.close()

    def send(self, page: Page) -> None:
        if self._events is None:
            raise UpstreamError("pagerduty: set pagerduty.routing_key_file (an Events API v2 integration key)")
        events = self._events
        links = [{"href": href, "text": text} for href, text in page.links]
        if page.kind is PageKind.CHANGE:
            payload = {"summary": page.summary, "source": SOURCE, "timestamp": page.at.isoformat(),
                       "custom_details": page.details}
            _call("change event", lambda: events.send_change_event(payload=payload, links=links))
        elif page.kind is PageKind.TRIGGER:
            _call("trigger", lambda: events.trigger(page.summary, SOURCE, dedup_key=page.dedup_key,
                                                    severity=page.severity, custom_details=page.details,
                                                    links=links, payload={"timestamp": page.at.isoformat()}))
        else:
            _call(page.kind.value, lambda: events.send_event(page.kind.value, dedup_key=page.dedup_key))

    def on_call(self, *, service_id: str | None, escalation_policy_id: str | None) -> list[OnCall]:
        if self._rest is None:
            raise UpstreamError("pagerduty: set pagerduty.api_token_file (a REST API key) to look up the on-call")
        rest = self._rest
        policy = escalation_policy_id
        if policy is None and service_id:
            service = self._retrying("service", lambda: rest.rget(f"/services/{service_id}"))
            policy = (service.get("escalation_policy") or {}).get("id") if isinstance(service, dict) else None
        if not policy:
            raise UpstreamError("pagerduty: no escalation policy to ask (set the playbook's "
                                "pagerduty.service_id or pagerduty.escalation_policy_id)")
        found = self._retrying("on-calls", lambda: rest.list_all(
            "oncalls", params={"escalation_policy_ids": [policy], "include": ["users"]}))
        return _first_level(found)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            asked = error.retry_after if isinstance(error, RateLimited) else None
            return min(asked if asked is not None else 0.5 * 2 ** (state.attempt_number - 1), self._max_wait)

        retrying = Retrying(stop=stop_after_attempt(self._attempts), wait=wait, reraise=True,
                            retry=retry_if_exception_type(TransientError))
        return retrying(lambda: _call(what, call))


def _quiet(client: T, timeout: float) -> T:
    """The client with its own retries off: the count is checked before each retry, so below
    zero there is none; network errors raise at once."""
    assert isinstance(client, pagerduty.ApiClient)
    client.retry = dict.fromkeys(_STATUSES, 1)
    client.max_http_attempts = -1
    client.max_network_attempts = 0
    client.timeout = timeout  # type: ignore[assignment]  # httpx takes a float; the class says int
    return client


def _call(what: str, call: Callable[[], T]) -> T:
    """Run one client call; its errors as ours, naming no key."""
    try:
        return call()
    except pagerduty.HttpError as exc:
        response = exc.response
        status = response.status_code if response is not None else 0
        if status == 429:
            asked = response.headers.get("retry-after") if response is not None else None
            raise RateLimited(f"pagerduty {what}: rate limited (429)", retry_after=_seconds(asked)) from exc
        if status >= 500:
            raise TransientError(f"pagerduty {what}: PagerDuty answered {status}") from exc
        raise UpstreamError(f"pagerduty {what}: refused ({status}): {_brief(exc)}") from exc
    except pagerduty.Error as exc:  # no answer: a network error or a time-out
        raise TransientError(f"pagerduty {what}: no answer ({_brief(exc)})") from exc


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff applies


def _brief(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    cause = exc.__cause__
    return text[:200] + (f" ({type(cause).__name__})" if cause is not None else "")


def _first_level(oncalls: list[Any]) -> list[OnCall]:
    """Each person on call once, at their lowest escalation level, level 1 first."""
    people: dict[str, OnCall] = {}
    for entry in oncalls:
        user = entry.get("user") or {}
        email, level = user.get("email"), int(entry.get("escalation_level") or 1)
        if not email:
            continue  # a user reference without `include[]=users`: nothing to invite by
        if email not in people or level < people[email].level:
            people[email] = OnCall(name=user.get("name") or user.get("summary") or email, email=email, level=level)
    return sorted(people.values(), key=lambda person: (person.level, person.name))


class WebhookSignature:
    """PagerDuty's webhook signature (v3): `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw
    body>`, several comma-separated while a secret is rotated; one that matches is enough."""

    def __init__(self, secret: str | None) -> None:
        self._key = secret.encode() if secret else None

    def refusal(self, body: bytes, header: str | None) -> str | None:
        """None when the body is PagerDuty's; otherwise why not (naming no secret)."""
        if self._key is None:
            return "the PagerDuty webhook has no secret configured (pagerduty.webhook_secret_file)"
        given = [part.strip()[3:] for part in (header or "").split(",") if part.strip().startswith("v1=")]
        if not given:
            return "missing X-PagerDuty-Signature (v1=<hex>)"
        expected = hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()
        matched = False
        for signature in given:  # every one compared: the timing says nothing of which matched
            matched |= hmac.compare_digest(signature.lower().encode(), expected)
        return None if matched else "X-PagerDuty-Signature does not match the body"


class _Ref(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StoredText
    summary: StoredText = ""


class _Incident(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StoredText
    number: int | None = None
    title: StoredText = ""
    html_url: StoredText = ""
    incident_key: StoredText | None = None
    urgency: StoredText = "high"
    created_at: Instant
    service: _Ref


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StoredText
    event_type: StoredText
    resource_type: StoredText = "incident"
    occurred_at: Instant
    agent: _Ref | None = None
    data: dict[str, Any]


class WebhookBody(BaseModel):
    """A webhook v3 delivery: one event."""

    model_config = ConfigDict(extra="ignore")
    event: _Event

    @property
    def kind(self) -> Literal["incident", "other"]:
        types = {k.value for k in PagerIncidentKind}
        return "incident" if self.event.event_type in types else "other"

    def to_event(self) -> PagerIncidentEvent:
        """The incident event (validate `kind` first); pydantic's ValidationError when its data
        is not an incident."""
        incident = _Incident.model_validate(self.event.data)
        return PagerIncidentEvent(
            event_id=self.event.id, kind=PagerIncidentKind(self.event.event_type), incident_id=incident.id,
            number=incident.number, title=incident.title, service_id=incident.service.id,
            urgency=incident.urgency, created_at=incident.created_at, occurred_at=self.event.occurred_at,
            html_url=incident.html_url, incident_key=incident.incident_key,
            agent=self.event.agent.summary if self.event.agent else "")
