"""What every request passes before a route reads it: the API's token, then its route's body cap.

FastAPI reads and parses a body before a route's own code runs, so a route cannot refuse an
unauthenticated request before its body is read, nor answer 401 before 422: the API's token is
checked here, before routing. Every body is capped here too, by its route's limit, the
Alertmanager webhook's direct handler included: refused at the first read when Content-Length
says it is over (no byte read), else counted while it streams. The routes then authenticate
what only the body can prove (an HMAC) with at most their cap read.

Starlette's RequestBodyLimitMiddleware answers 413 in plain text and puts its 413 in place of
the app's own answer (a 401 included); this one raises `BodyTooLarge` from the read, which the
routes and the app answer as the JSON error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.entrypoints.http_common import BodyTooLarge, error
from bot.entrypoints.webhook_auth import ApiAuth

# The API's writes, CI build notices and the sign-in form: a note is at most 4,000 characters.
SMALL_BODY_BYTES = 64 * 1024
API_PREFIX = "/api/"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route takes: `by_path` for the routes it names, else `default`."""

    default: int
    by_path: Mapping[str, int]

    @classmethod
    def for_webhooks(cls, largest: int, paths: list[str]) -> BodyLimits:
        """`largest` (server.max_body_bytes) for the webhooks at `paths`, the small cap for the rest."""
        return cls(default=min(SMALL_BODY_BYTES, largest), by_path=dict.fromkeys(paths, largest))

    def of(self, path: str) -> int:
        return self.by_path.get(path, self.default)


class RequestGate:
    """The API's token before anything else, and the pages' credentials (`pages`: whether a path is
    one, and its refusal: a 401 or the sign-in form) before their query is parsed; every body
    bounded by its route's limit."""

    def __init__(self, app: ASGIApp, *, api_auth: ApiAuth, limits: BodyLimits,
                 pages: tuple[Callable[[str], bool], Callable[[Request], Response | None]] | None = None) -> None:
        self.app, self.api_auth, self.limits, self.pages = app, api_auth, limits, pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["path"].startswith(API_PREFIX) and (why := self.api_auth.refusal(headers.get("authorization"))):
            refusal = error(401, "unauthorized", why, {"WWW-Authenticate": 'Bearer realm="backout"'})
            await refusal(scope, receive, send)
            return
        if self.pages is not None and self.pages[0](scope["path"]) and (
                page_refusal := self.pages[1](Request(scope))) is not None:
            await page_refusal(scope, receive, send)
            return
        limit = self.limits.of(scope["path"])
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _capped(receive, limit, declared=_content_length(headers)), sending)
        except BodyTooLarge as exc:  # a route that let it through: answered here, if it still can be
            if started:
                raise
            await error(413, "too_large", exc.detail)(scope, receive, send)


def _capped(receive: Receive, limit: int, *, declared: int | None) -> Receive:
    """`receive` that raises BodyTooLarge at the first read when Content-Length is over `limit`,
    and as soon as the bytes read so far are."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return capped


def _content_length(headers: Headers) -> int | None:
    declared = headers.get("content-length", "")
    # ASCII digits only, and no more than any body could have (int() of thousands of digits raises).
    return int(declared) if declared.isascii() and declared.isdigit() and len(declared) < 20 else None
