"""Posting Alertmanager payloads to a running Backout, as Alertmanager would (replay and demo)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from bot.config import AlertmanagerSettings


@dataclass(frozen=True)
class Posted:
    name: str
    status: int
    body: str


def auth_headers(settings: AlertmanagerSettings) -> dict[str, str]:
    """The Authorization header Alertmanager sends under these settings."""
    if settings.auth == "bearer" and settings.bearer_token:
        return {"Authorization": f"Bearer {settings.bearer_token.get_secret_value()}"}
    if settings.auth == "basic" and settings.basic_username and settings.basic_password:
        pair = f"{settings.basic_username}:{settings.basic_password.get_secret_value()}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return {}


def post_payloads(
    *, base_url: str, settings: AlertmanagerSettings, payloads: list[tuple[str, bytes]]
) -> Iterator[Posted]:
    """Post each (name, body) in order; raises httpx.HTTPError when the server is unreachable."""
    headers = {"Content-Type": "application/json", "User-Agent": "backout-replay",
               **auth_headers(settings)}
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        for name, body in payloads:
            response = client.post("/webhooks/alertmanager", content=body, headers=headers)
            yield Posted(name, response.status_code, response.text)
