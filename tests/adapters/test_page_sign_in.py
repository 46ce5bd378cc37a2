"""Signing in a browser: an API token once on /signin, then a cookie that reads the pages and nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import ApiSettings, ServerSettings, Settings
from tests.conftest import AUTH, Clock, payload_bytes

TOKEN = "read-token-abcdefghijklmnop"
OTHER = "second-token-abcdefghijklmnop"
READER = {"Authorization": f"Bearer {TOKEN}"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def built(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], *,
          public_url: str = "https://backout.example", tokens: tuple[str, ...] = (TOKEN, OTHER)) -> bootstrap.App:
    made = build(make_settings(api=ApiSettings(tokens=list(tokens), link_secret="k" * 32),
                               server=ServerSettings(public_url=public_url)))
    with TestClient(made.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
    return made


@pytest.fixture
def client(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(built(build, make_settings).http, follow_redirects=False) as answer:
        yield answer


def sign_in(client: TestClient, token: str = TOKEN, next: str = "/incidents/INC-1") -> str:
    """The cookie header a successful sign-in gives."""
    answer = client.post("/signin", data={"token": token, "next": next})
    assert answer.status_code == 303, answer.text
    value = answer.cookies["backout_session"]
    client.cookies.clear()  # each test sends the cookie itself, as a browser would on the pages only
    return f"backout_session={value}"


def test_sign_in_sets_a_strict_http_only_secure_cookie_holding_no_token(client: TestClient) -> None:
    """303 to the page asked for; HttpOnly, SameSite=Strict, Secure (public_url is https), only on
    /incidents, for api.session_lifetime; the value is not the token."""
    answer = client.post("/signin", data={"token": TOKEN, "next": "/incidents/INC-1"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/incidents/INC-1"
    header = answer.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "secure", "path", "max-age", "samesite"} <= flags, header
    assert "samesite=strict" in header.lower()
    assert "path=/incidents;" in header.lower() + ";"
    assert "max-age=43200" in header.lower()
    assert TOKEN not in header
    assert OTHER not in header


def test_the_cookie_is_not_secure_when_the_public_url_is_http(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """A plain-http public_url: the browser would drop a Secure cookie, so it is not set Secure."""
    with TestClient(built(build, make_settings, public_url="http://backout.internal").http,
                    follow_redirects=False) as client:
        header = client.post("/signin", data={"token": TOKEN}).headers["set-cookie"]
    assert "secure" not in header.lower()
    assert "httponly" in header.lower()


def test_the_cookie_opens_the_index_whose_rows_open_with_it(client: TestClient) -> None:
    """Signed in, the index links each page plainly (no link token) and the cookie opens it."""
    cookie = {"Cookie": sign_in(client)}
    index = client.get("/incidents", headers={**BROWSER, **cookie})
    assert index.status_code == 200
    assert "HighErrorRate on checkout" in index.text
    assert 'action="/signout"' in index.text
    [link] = re.findall(r'href="(/incidents/INC-[^"]+)"', index.text)
    assert link == "/incidents/INC-1"
    assert client.get(link, headers={**BROWSER, **cookie}).status_code == 200
    assert client.get(link, headers=BROWSER).status_code == 303, "without the cookie the plain link asks to sign in"


def test_the_cookie_reads_no_api_route_and_writes_nothing(client: TestClient) -> None:
    """The cookie (or its value as a bearer token) opens no /api/* read and no write."""
    cookie = sign_in(client)
    value = cookie.split("=", 1)[1]
    before = client.get("/api/incidents/1/timeline", headers=READER).json()
    assert before["timeline"]
    for headers in ({"Cookie": cookie}, {"Authorization": f"Bearer {value}"}):
        for path in ("/api/incidents", "/api/incidents/INC-1", "/api/incidents/INC-1/export"):
            assert client.get(path, headers=headers).status_code == 401, (path, headers)
        for path, body in (("/api/incidents/INC-1/ack", {}), ("/api/incidents/INC-1/notes", {"text": "x"}),
                           ("/api/incidents/INC-1/verdict", {"verdict": "no_change"})):
            assert client.post(path, json=body, headers=headers).status_code == 401, (path, headers)
    assert client.post("/incidents/INC-1", headers={"Cookie": cookie}).status_code == 405
    assert client.get("/api/incidents/1/timeline", headers=READER).json() == before


def test_the_cookie_expires(client: TestClient, clock: Clock) -> None:
    """After api.session_lifetime (12 hours) the cookie opens nothing: the browser is asked to sign in again."""
    cookie = {"Cookie": sign_in(client)}
    clock.now += timedelta(hours=11, minutes=59)
    assert client.get("/incidents/INC-1", headers=cookie).status_code == 200
    clock.now += timedelta(minutes=2)
    assert client.get("/incidents/INC-1", headers=cookie).status_code == 401
    assert client.get("/incidents/INC-1", headers={**BROWSER, **cookie}).status_code == 303


def test_a_wrong_token_shows_the_form_again_and_sets_no_cookie(client: TestClient) -> None:
    """401, the form with the reason, no cookie; a forged or stale cookie value opens nothing."""
    answer = client.post("/signin", data={"token": TOKEN + "x", "next": "/incidents"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "not one of the API tokens" in answer.text
    assert '<form method="post" action="/signin">' in answer.text
    assert client.post("/signin", data={"next": "/incidents"}).status_code == 401
    forged = sign_in(client)[:-4] + "0000"
    assert client.get("/incidents", headers={"Cookie": forged}).status_code == 401


def test_a_cookie_stops_opening_when_its_token_is_removed(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """The cookie is keyed by the token it was made with: dropping that token from api.tokens signs it out."""
    with TestClient(built(build, make_settings).http, follow_redirects=False) as first:
        cookie = {"Cookie": sign_in(first, token=OTHER)}
        assert first.get("/incidents", headers=cookie).status_code == 200
    with TestClient(built(build, make_settings, tokens=(TOKEN,)).http) as second:
        assert second.get("/incidents", headers=cookie).status_code == 401


def test_a_browser_without_credentials_is_sent_to_the_form(client: TestClient) -> None:
    """Accept: text/html gets a redirect to /signin that comes back to the page (a bad link too);
    anything else keeps the API's 401."""
    for path in ("/incidents", "/incidents/INC-1", "/incidents/INC-1?t=1.bad"):
        answer = client.get(path, headers=BROWSER)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/signin?next=%2Fincidents{path[10:].split('?')[0].replace('/', '%2F')}"
        assert client.get(path).status_code == 401
    form = client.get("/signin?next=/incidents/INC-1")
    assert form.status_code == 200
    assert 'name="next" value="/incidents/INC-1"' in form.text
    assert "form-action 'self'" in form.headers["content-security-policy"]


@pytest.mark.parametrize("asked", ["https://evil.example/", "//evil.example", "/api/incidents", "/incidents/../api"])
def test_sign_in_only_ever_returns_to_a_page(client: TestClient, asked: str) -> None:
    """`next` that is not one of the pages goes to the index: no open redirect, no API route."""
    answer = client.post("/signin", data={"token": TOKEN, "next": asked})
    assert answer.headers["location"] == "/incidents"
    assert f'value="{asked}"' not in client.get("/signin", params={"next": asked}).text


def test_sign_out_clears_the_cookie(client: TestClient) -> None:
    """POST /signout expires the cookie on its path and goes back to the form."""
    answer = client.post("/signout")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin"
    header = answer.headers["set-cookie"].lower()
    assert "backout_session=" in header
    assert "max-age=0" in header
    assert "path=/incidents" in header


def test_signed_links_still_open_their_page(client: TestClient) -> None:
    """The links Backout posts open their page without a cookie, as before."""
    index = client.get("/incidents", headers=READER)
    [link] = re.findall(r'href="(/incidents/INC-1\?t=[^"]+)"', index.text)
    assert client.get(link.replace("&amp;", "&"), headers=BROWSER).status_code == 200


def test_sign_in_is_not_needed_without_auth(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """api.auth: none: the form sends the browser straight on; with no token configured nobody signs in."""
    with TestClient(build(make_settings(api=ApiSettings(auth="none"))).http, follow_redirects=False) as open_:
        answer = open_.get("/signin?next=/incidents/INC-1")
        assert (answer.status_code, answer.headers["location"]) == (303, "/incidents/INC-1")
    with TestClient(build(make_settings(api=ApiSettings())).http, follow_redirects=False) as bare:
        refused = bare.post("/signin", data={"token": "anything"})
        assert refused.status_code == 401
        assert "No API token is configured" in refused.text


@pytest.mark.parametrize(("path", "signed"), [
    ("/incidents?limit=garbage", 422), ("/incidents?limit=0", 422), ("/incidents?limit=1&limit=x", 422),
    ("/incidents/garbage", 400), ("/incidents/INC-x?t=garbage", 400), ("/incidents/INC-99999999999999999999", 400),
    ("/incidents/INC-1?t=garbage&t=%ff", 200), ("/incidents/INC-7", 404),
])
def test_a_page_asked_badly_is_refused_before_its_query_is_judged(client: TestClient, path: str, signed: int) -> None:
    """Without credentials a page answers as it does to any unsigned request, whatever its query
    or reference (it answered 422 or 400 first, telling a stranger what the page takes): 401, or
    for a browser the sign-in form. With a token, the same request is judged as before."""
    assert client.get(path).status_code == 401
    redirected = client.get(path, headers=BROWSER)
    assert redirected.status_code == 303
    assert redirected.headers["location"].startswith("/signin?next=")
    assert client.get(path, headers=READER).status_code == signed
