"""Bodies before authentication: the credential first, then each route's cap, over real HTTP.

A body a route does not want is refused before it is read (401), or once its route's cap is read
(413): the app never holds more. Counted in bytes the app read, never in time."""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import bootstrap
from bot.config import ApiSettings, ArgoCDSettings, FluxSettings, ServerSettings, Settings
from bot.entrypoints.http_gate import SMALL_BODY_BYTES
from bot.entrypoints.serving import serve_in_thread
from tests.chunked import stream_chunked
from tests.conftest import TOKEN

API_TOKEN = "body-api-token-0123456789"
ARGO_TOKEN = "argo-token-0123456789"
FLUX_KEY = "flux-key-0123456789"
WEBHOOK_CAP = 256 * 1024
STREAMED = 64 * 1024 * 1024  # far past every cap: a server that reads it all is caught by the count
# One read past the cap: uvicorn hands the app what it has buffered (its high-water mark is 64 KiB,
# one socket read can add as much again).
ONE_READ = 256 * 1024


class ReadCounter:
    """ASGI middleware that counts the request-body bytes the app read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.read = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


@pytest.fixture
def served(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> Iterator[tuple[str, ReadCounter]]:
    settings = make_settings(api=ApiSettings(tokens=[API_TOKEN]), server=ServerSettings(max_body_bytes=WEBHOOK_CAP),
                             flux=FluxSettings(hmac_key=FLUX_KEY), argocd=ArgoCDSettings(token=ARGO_TOKEN))
    counter = ReadCounter(build(settings).http)
    with serve_in_thread(counter) as url:
        yield url, counter


ROUTES_WITHOUT_CREDENTIALS = [
    "/api/incidents/1/notes", "/api/incidents/1/ack", "/api/incidents/1/rollback", "/api/incidents/1/verdict",
    "/webhooks/alertmanager", "/webhooks/build", "/webhooks/argocd", "/webhooks/flux",
]


@pytest.mark.parametrize("path", ROUTES_WITHOUT_CREDENTIALS)
def test_a_large_body_without_credentials_is_refused_unread(served: tuple[str, ReadCounter], path: str) -> None:
    """64 MiB streamed with no credential: 401, and the app read none of it."""
    url, counter = served
    answer = stream_chunked(url, path, {}, total=STREAMED)
    assert answer.status == 401
    assert counter.read == 0


@pytest.mark.parametrize(("path", "headers", "cap"), [
    ("/api/incidents/1/notes", {"Authorization": f"Bearer {API_TOKEN}"}, SMALL_BODY_BYTES),
    ("/webhooks/build", {"Authorization": f"Bearer {API_TOKEN}"}, SMALL_BODY_BYTES),
    ("/webhooks/alertmanager", {"Authorization": f"Bearer {TOKEN}"}, WEBHOOK_CAP),
    ("/webhooks/argocd", {"Authorization": f"Bearer {ARGO_TOKEN}"}, WEBHOOK_CAP),
    # An HMAC is proved by the body: read, but no further than the cap.
    ("/webhooks/flux", {"X-Signature": "sha256=" + hmac.new(FLUX_KEY.encode(), b"", hashlib.sha256).hexdigest()},
     WEBHOOK_CAP),
])
def test_a_large_body_with_credentials_stops_at_its_routes_cap(
    served: tuple[str, ReadCounter], path: str, headers: dict[str, str], cap: int
) -> None:
    """64 MiB streamed with a credential: 413 once the route's cap is passed, one read over at most."""
    url, counter = served
    answer = stream_chunked(url, path, headers, total=STREAMED)
    assert answer.status == 413
    assert cap < counter.read <= cap + ONE_READ


def test_a_declared_length_over_the_cap_is_refused_before_a_byte_is_read(served: tuple[str, ReadCounter]) -> None:
    """Content-Length over the route's cap, with a credential: 413 as a JSON error, nothing read."""
    url, counter = served
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=60) as conn:
        conn.sendall(f"POST /api/incidents/1/notes HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Authorization: Bearer {API_TOKEN}\r\nContent-Length: {SMALL_BODY_BYTES + 1}\r\n\r\n".encode())
        answer = conn.recv(4096)
    assert answer.split(b" ", 2)[1] == b"413"
    assert b'"error":"too_large"' in answer
    assert counter.read == 0


@pytest.fixture
def guarded(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(build(make_settings(api=ApiSettings(tokens=[API_TOKEN]))).http) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/incidents/1/notes", b"{"), ("POST", "/api/incidents/1/notes", b'{"text": 5}'),
    ("POST", "/api/incidents/1/verdict", b"[]"), ("POST", "/api/incidents/1/rollback", b'{"commit": "x"}'),
    ("GET", "/api/incidents?limit=0", b""), ("GET", "/api/report?since=soon", b""),
])
def test_401_comes_before_422(guarded: TestClient, method: str, path: str, body: bytes) -> None:
    """Without the token, an invalid body or query is 401, saying nothing about the body; with it, 422."""
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    refused = guarded.request(method, path, content=body or None, headers=headers)
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
    assert refused.headers["www-authenticate"].startswith("Bearer")
    checked = guarded.request(method, path, content=body or None,
                              headers={**headers, "Authorization": f"Bearer {API_TOKEN}"})
    assert checked.status_code == 422, checked.text
