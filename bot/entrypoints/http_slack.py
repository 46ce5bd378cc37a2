"""POST /slack/events (Slack in HTTP mode): the signature checked before bolt runs anything."""

from __future__ import annotations

import hashlib
import threading
import time

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.domain.untrusted import epoch_seconds
from bot.entrypoints.context import SlackParts
from bot.entrypoints.http_common import (
    BodyTooLarge,
    error,
    read_body,
)

log = structlog.get_logger(__name__)


class SeenRecently:
    """Keys seen in the last `window` seconds (Slack signatures, retried bodies)."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_and_add(self, key: str) -> bool:
        """True if the key was already seen; remembers it either way."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self._window}
            seen = key in self._seen and now - self._seen[key] < self._window
            self._seen[key] = now
            return seen


def register_slack_events(app: FastAPI, slack: SlackParts) -> None:
    """POST /slack/events for HTTP mode. The signature is checked here, before bolt, so a forged
    request runs nothing and its body is never logged; a replay of a valid request within the
    five-minute window is refused too, and Slack's retries of a delivery run once."""
    verifier = SignatureVerifier(slack.signing_secret)
    signatures = SeenRecently(window=300)
    bodies = SeenRecently(window=600)

    @app.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        # The headers first: what is refused without the body is refused before reading it.
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if epoch_seconds(timestamp) is None or not signature.startswith("v0="):
            return error(401, "invalid_signature", "missing or malformed Slack signature headers "
                         "(X-Slack-Request-Timestamp, X-Slack-Signature)")
        try:
            body = await read_body(request)
        except BodyTooLarge as exc:
            return error(413, "too_large", exc.detail)
        if not slack.signing_secret or not _utf8(body) or not verifier.is_valid(body, timestamp, signature):
            log.warning("slack.bad_signature", timestamp=timestamp[:20])
            return error(401, "invalid_signature", "the request is not signed by Slack, or too old")
        if signatures.check_and_add(signature):
            log.warning("slack.replayed", timestamp=timestamp[:20])
            return error(401, "replayed", "this signed request was already received")
        digest = hashlib.sha256(body).hexdigest()
        if bodies.check_and_add(digest) and request.headers.get("x-slack-retry-num"):
            return JSONResponse({"ok": True, "duplicate": True})
        # Bolt's dispatch is synchronous: run it on the thread pool, not the event loop. Building
        # the request parses the body, so a signed but unreadable payload fails here too.
        try:
            bolt_request = BoltRequest(body=body.decode("utf-8", errors="replace"), query=request.url.query,
                                       headers={k: [v] for k, v in request.headers.items()})
            answer = await run_in_threadpool(slack.app.dispatch, bolt_request)
        except Exception as exc:  # bolt reading a payload it cannot parse
            log.warning("slack.unreadable", error=type(exc).__name__)
            return error(400, "bad_request", "the Slack payload could not be read")
        headers = {k: v[0] for k, v in answer.headers.items() if v and k.lower() != "content-length"}
        return Response(answer.body, status_code=answer.status, headers=headers)


def _utf8(body: bytes) -> bool:
    """Slack signs UTF-8 text (its verifier decodes the body): anything else is not from Slack."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
