"""The incident page in a real browser: Debian's headless Chromium opens the demo's
`INC-1.html` and the test reads, through the DevTools protocol, what a person sees: the title,
the chart image decoded at its full width (the page's CSP allows it), the timeline rows in
order, and no console error or exception. The screenshot is kept in test-artifacts/. A served
Backout's pages: a person signs in through the form and opens an incident from the index, or opens
the signed link; either way the chart decodes and the header CSP reports no violation."""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from websockets.sync.client import ClientConnection, connect

from bot.cli import app as cli
from tests.conftest import AUTH, need_binary, payload_bytes
from tests.integration.processes import READ_TOKEN, BackoutServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BACKOUT_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """Headless Chromium with the DevTools protocol on a loopback port; yields its HTTP base."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or need_binary("chromium")
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if found := re.search(r"DevTools listening on ws://([\d.:]+)/", line):
                break
        else:
            raise AssertionError("chromium did not start its DevTools endpoint")
        # Keep reading what it logs, so a full pipe never blocks it.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"http://{found.group(1)}"
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stderr.close()


class Page:
    """One tab, driven over the DevTools protocol; console errors and exceptions are collected."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == number:
                assert "error" not in message, message
                return message.get("result", {})
            self._note(message)

    def load(self, action: str, **params: Any) -> dict[str, Any]:
        """Runs a navigating call (Page.navigate, or a Runtime.evaluate that clicks or submits)
        and waits for the page it leads to; its value as the result."""
        self.events.clear()
        result = self.call(action, **params)
        self.wait_for("Page.loadEventFired")
        return result

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self._note(json.loads(self.socket.recv(timeout=30)))

    def _note(self, message: dict[str, Any]) -> None:
        self.events.append(message)
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))


# A served incident page as a person sees it: where it is, its heading, the chart's decoded width
# (0 while missing or blocked) and the CSP violations RECORD_VIOLATIONS noted since it loaded.
SERVED_PAGE = """({
    path: location.pathname + location.search, heading: document.querySelector('h1').textContent,
    chart: (() => { const i = document.querySelector('img.chart'); return i && i.complete ? i.naturalWidth : 0 })(),
    violations: window.cspViolations})"""
# Added before any page loads (Page.addScriptToEvaluateOnNewDocument): DevTools' scripts are not bound by the CSP.
RECORD_VIOLATIONS = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation',
                          e => window.cspViolations.push(e.violatedDirective + ' blocked ' + e.blockedURI));"""


def test_the_demo_page_shows_the_draft_the_chart_and_the_timeline(browser: str, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    made = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert made.exit_code == 0, made.output
    page_file = out / "INC-1.html"
    target = httpx.put(f"{browser}/json/new?about:blank", timeout=10).json()
    with connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as socket:
        page = Page(socket)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=page_file.as_uri())
        page.wait_for("Page.loadEventFired")
        seen = page.call("Runtime.evaluate", returnByValue=True, expression="""({
            title: document.title,
            heading: document.querySelector('h1').textContent,
            sections: [...document.querySelectorAll('h2')].map(h => h.textContent),
            chart: (() => { const i = document.querySelector('img.chart');
                            return i && i.complete ? i.naturalWidth : 0 })(),
            rows: [...document.querySelectorAll('tr.event time')].map(t => t.getAttribute('datetime')),
            links: [...document.querySelectorAll('a')].map(a => a.protocol),
        })""")["result"]["value"]
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "INC-1-page.png").write_bytes(base64.b64decode(shot["data"]))
        errors = page.errors
    assert seen["title"].startswith("INC-1: HighErrorRate on checkout")
    assert seen["heading"] == seen["title"]
    for section in ("Summary", "Durations", "The key metric", "What changed", "Root cause", "Contributing factors",
                    "Action items", "Timeline", "Alerts"):
        assert section in seen["sections"], seen["sections"]
    assert seen["chart"] == 1200, "the chart image is loaded at its full width"
    assert len(seen["rows"]) >= 8
    assert seen["rows"] == sorted(seen["rows"]), "the timeline is in order"
    assert set(seen["links"]) <= {"http:", "https:"}
    assert errors == [], errors


def test_a_person_signs_in_and_opens_an_incident_from_the_index(browser: str, backout: BackoutServer) -> None:
    """The index without credentials leads to the sign-in form; the API token typed once sets a
    cookie scripts cannot read, and the index's row opens the incident's page with it, chart and all."""
    posted = httpx.post(f"{backout.url}/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH, timeout=10)
    assert posted.status_code == 200, posted.text
    target = httpx.put(f"{browser}/json/new?about:blank", timeout=10).json()
    where = "({path: location.pathname + location.search, title: document.title, cookies: document.cookie})"
    with connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as socket:
        page = Page(socket)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_VIOLATIONS)
        page.load("Page.navigate", url=f"{backout.url}/incidents")
        asked = page.call("Runtime.evaluate", returnByValue=True, expression=where)["result"]["value"]
        page.load("Runtime.evaluate", expression=f"""
            document.querySelector('input[name=token]').value = {json.dumps(READ_TOKEN)};
            document.querySelector('form').requestSubmit()""")
        index = page.call("Runtime.evaluate", returnByValue=True, expression=where)["result"]["value"]
        [cookie] = page.call("Network.getCookies", urls=[f"{backout.url}/incidents"])["cookies"]
        page.load("Runtime.evaluate", expression="document.querySelector('td a').click()")
        opened = page.call("Runtime.evaluate", returnByValue=True, expression=SERVED_PAGE)["result"]["value"]
        errors = page.errors
    assert asked == {"path": "/signin?next=%2Fincidents", "title": "Backout: sign in", "cookies": ""}
    assert index["path"] == "/incidents"
    assert index["title"] == "Backout: incidents"
    assert index["cookies"] == "", "the cookie is HttpOnly: the page's scripts cannot read it"
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        "backout_session", True, "Strict", "/incidents")
    assert READ_TOKEN not in cookie["value"]
    assert opened["path"] == "/incidents/INC-1", "the row links plainly: the cookie opens it"
    assert opened["heading"].startswith("INC-1: HighErrorRate on checkout")
    assert opened["chart"] == 1200, "the served page's CSP lets its data: chart load"
    assert opened["violations"] == []
    assert errors == [], errors


def test_a_signed_link_opens_the_served_page_with_its_chart(browser: str, backout: BackoutServer) -> None:
    """The link Slack, the CLI and the index hand out (`?t=`, no sign-in, no token in the
    browser) opens the page served over loopback: its chart decodes and its CSP reports no violation."""
    posted = httpx.post(f"{backout.url}/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH, timeout=10)
    assert posted.status_code == 200, posted.text
    index = httpx.get(f"{backout.url}/incidents", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10)
    assert index.status_code == 200, index.text
    [link] = re.findall(r'href="(/incidents/INC-1\?t=[^"]+)"', index.text)
    served = httpx.get(f"{backout.url}{html.unescape(link)}", timeout=30)
    assert served.status_code == 200, served.text
    policy = served.headers["content-security-policy"]
    target = httpx.put(f"{browser}/json/new?about:blank", timeout=10).json()
    with connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as socket:
        page = Page(socket)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_VIOLATIONS)
        page.load("Page.navigate", url=f"{backout.url}{html.unescape(link)}")
        opened = page.call("Runtime.evaluate", returnByValue=True, expression=SERVED_PAGE)["result"]["value"]
        errors = page.errors
    assert opened["path"] == html.unescape(link), "the signed link opens the page itself, not the sign-in form"
    assert opened["heading"].startswith("INC-1: HighErrorRate on checkout")
    assert opened["chart"] > 0, f"the chart is blocked or missing under {policy!r}"
    assert opened["violations"] == [], policy
    assert errors == [], errors
