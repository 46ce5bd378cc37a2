"""The pages a person opens in a browser: the home page, the incident index, each incident's page,
and the sign-in that lets a browser read them without an Authorization header.

Signing in takes an API token once and sets a cookie (`PageSessions`) that these page reads
honour and nothing else: never `/api/*`, never a write. The sign-in POST needs no cookie and has
no CSRF token on purpose: the most a forged one can do is sign a browser in to read the same
pages with someone else's valid token; the sign-out is harmless to forge too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.domain.errors import InvalidInput
from bot.domain.models import parse_incident_ref
from bot.entrypoints.charts import page_html, read_view
from bot.entrypoints.context import AppContext
from bot.entrypoints.http_common import BodyTooLarge, error, read_body
from bot.entrypoints.webhook_auth import PageSessions
from bot.services import incidents as incident_service
from bot.services.presenters import incident_dict

SESSION_COOKIE = "backout_session"
# Scoped to the pages: the browser never sends it to /api/* at all.
SESSION_PATH = "/incidents"
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
# The incident page's chart is a data: image; a header CSP without img-src would block it.
INCIDENT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}
FORM_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "form-action 'self'; frame-ancestors 'none'",
                "Cache-Control": "no-store"}
PAGE_PATH = re.compile(r"/incidents(/[A-Za-z0-9-]{1,24})?")
Refusal = Callable[..., JSONResponse | None]
PageRefusal = Callable[[Request], Response | None]


def is_page(path: str) -> bool:
    """The incident pages (and anything below them): what the sign-in cookie or a signed link opens."""
    return path == SESSION_PATH or path.startswith(SESSION_PATH + "/")


def page_of(path: str) -> int | None:
    """The incident a page's path names (its signed link opens that page only); None for the index
    and for a reference that names none."""
    ref = path.removeprefix(SESSION_PATH).strip("/")
    try:
        return parse_incident_ref(ref) if ref else None
    except InvalidInput:
        return None


def register_pages(app: FastAPI, ctx: AppContext, *, refused: Refusal) -> PageRefusal:
    """GET /, /incidents and /incidents/{ref}; GET and POST /signin; POST /signout. Returns the
    pages' refusal for the request gate (http_gate.py), which asks it before the route parses the
    query or the reference: an unsigned request learns nothing of what a page takes."""
    sessions = PageSessions(ctx.settings.api)
    secure = (ctx.settings.server.public_url or "").startswith("https://")

    def signed_in(request: Request) -> bool:
        return sessions.allows(request.cookies.get(SESSION_COOKIE), now=ctx.clock())

    def page_refusal(request: Request, *, page_of: int | None = None) -> Response | None:
        """None when the page may be read (API token, sign-in cookie, or the page's signed link);
        otherwise a browser goes to the sign-in form and anything else gets the API's 401."""
        if signed_in(request) or (denied := refused(request, page_of=page_of)) is None:
            return None
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/signin?{urlencode({'next': request.url.path})}", status_code=303)
        return denied

    def gate_refusal(request: Request) -> Response | None:
        return page_refusal(request, page_of=page_of(request.url.path))

    @app.get("/", include_in_schema=False)
    def home() -> HTMLResponse:
        """Where a person lands: what this is, and the way to the incidents."""
        return HTMLResponse('<!doctype html><html lang="en"><meta charset="utf-8"><title>Backout</title>'
                            '<h1>Backout</h1><p>What changed, and how to back it out.</p>'
                            '<ul><li><a href="/incidents">Incidents</a></li><li><a href="/metrics">Metrics</a></li>'
                            '<li><a href="/readyz">Readiness</a></li></ul></html>', headers=PAGE_HEADERS)

    @app.get("/incidents", response_model=None)
    def incident_index(request: Request, limit: int = Query(default=100, ge=1, le=1000)) -> Response:
        """The newest incidents, each linked to its page: a plain link for a signed-in browser
        (its cookie opens it), a signed link otherwise (the page opens without a token)."""
        if denied := page_refusal(request):
            return denied
        now, by_cookie = ctx.clock(), signed_in(request)

        def href(ref: str, number: int) -> str:
            return f"/incidents/{ref}" if by_cookie else f"/incidents/{ref}?t={ctx.links.token(number, now=now)}"

        rows = [{**incident_dict(incident), "href": href(incident.ref, incident.id or 0)}
                for incident in incident_service.list_incidents(store=ctx.store, limit=limit)]
        return HTMLResponse(ctx.export.index(rows, signed_in=by_cookie), headers=PAGE_HEADERS)

    @app.get("/incidents/{ref}", response_model=None)
    async def incident_page(ref: str, request: Request) -> Response:
        """The review page: people open it from Slack, the pull request, the export or the index.
        Read on a page thread, drawn in a worker process, kept per incident version."""
        number = parse_incident_ref(ref)
        if denied := page_refusal(request, page_of=number):
            return denied
        view, version = await read_view(ctx, number)
        return HTMLResponse(await page_html(ctx, view, version), headers=INCIDENT_HEADERS)

    @app.get("/signin", include_in_schema=False)
    def sign_in_form(next: str = "/incidents") -> Response:
        """The form that takes an API token once and lets this browser read the pages."""
        if ctx.settings.api.auth == "none":
            return RedirectResponse(_page_path(next), status_code=303)
        return _form(next=_page_path(next))

    @app.post("/signin", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        """A valid API token: the cookie, and on to the page asked for; otherwise the form again."""
        try:
            fields = parse_qs((await read_body(request)).decode("utf-8", errors="replace"))
        except BodyTooLarge as exc:
            return error(413, "too_large", exc.detail)
        target = _page_path(fields.get("next", ["/incidents"])[0])
        value = sessions.issue(fields.get("token", [""])[0], now=ctx.clock())
        if value is None:
            why = ("That is not one of the API tokens (api.tokens)." if ctx.settings.api.tokens else
                   "No API token is configured (api.tokens or api.token_file): nobody can sign in.")
            return _form(next=target, problem=why, status=401)
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(SESSION_COOKIE, value, max_age=int(sessions.lifetime.total_seconds()),
                          path=SESSION_PATH, secure=secure, httponly=True, samesite="strict")
        return answer

    @app.post("/signout", include_in_schema=False)
    def sign_out() -> Response:
        """Forgets this browser's sign-in cookie."""
        answer = RedirectResponse("/signin", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path=SESSION_PATH, secure=secure, httponly=True, samesite="strict")
        return answer

    return gate_refusal


def _page_path(asked: str) -> str:
    """Where to go after signing in: one of the pages, never another site or an API route."""
    return asked if PAGE_PATH.fullmatch(asked) else "/incidents"


def _form(*, next: str, problem: str | None = None, status: int = 200) -> HTMLResponse:
    note = f'<p class="problem" role="alert">{escape(problem)}</p>' if problem else ""
    return HTMLResponse(
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Backout: sign in</title>'
        '<style>body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 34rem; padding: 0 1rem; }'
        ' input[type=password] { width: 100%; padding: .4rem; } .problem { color: #a1260d; }'
        ' .muted { color: #667; }</style>'
        f'<h1>Sign in</h1>{note}<form method="post" action="/signin">'
        '<p><label for="token">API token (one of <code>api.tokens</code>)</label><br>'
        '<input id="token" name="token" type="password" autocomplete="off" required autofocus></p>'
        f'<input type="hidden" name="next" value="{escape(next)}"><button type="submit">Sign in</button></form>'
        '<p class="muted">This browser can then read the incident pages, and only them. '
        'A link from another site does not carry the sign-in: if you have signed in already, '
        f'<a href="{escape(next)}">open the page</a>.</p></html>',
        status_code=status, headers=FORM_HEADERS)
