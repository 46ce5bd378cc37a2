"""Hostile requests for every route: bodies, headers and queries that a sender can put on the wire,
each one a clear 4xx or an answer that stored what it said (never a 5xx, on any database).

`requests()` builds them against one running app's credentials; each is a `Hostile` that
`send()` sends with an HTTP client (a real server's: the test client cannot put a
Latin-1 byte such as `²` in a header). Text goes through every field that reaches storage;
times go through every field that becomes a datetime."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HUGE = "HUGE_INTEGER"  # replaced in the encoded body by 5,000 digits (json.dumps refuses to write them)
TEXTS = ["nul\x00inside", "\ud800 a lone surrogate", "\x1b[31mred\u202e\u2028", "\x00"]
TIMES: list[Any] = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z",
                    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59", 1e20, -1e20, 253402300799, "²", HUGE]
MALFORMED = [b"", b"{", b"\xff\xfe\x00", b"[" * 50_000, b"null", b"[]", b'"x"', b"1" * 5000,
             b'{"a": NaN}', b'{"a": 1e400}', b'{"a": "\\ud800"}']


@dataclass(frozen=True)
class Credentials:
    api_token: str
    alertmanager_token: str
    flux_key: str
    argocd_token: str
    slack_secret: str
    pagerduty_secret: str
    github_secret: str
    gitlab_token: str


@dataclass(frozen=True)
class Hostile:
    """One request: what it is (for the failure list), and how to send it."""

    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    expect: int | None = None  # the status issue 23 names for it, where it names one

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.request(self.method, self.path, content=self.body or None,
                              headers={key: _wire(value) for key, value in self.headers.items()})


def _wire(value: str) -> bytes:
    """A header as a sender can put it on the wire: Latin-1 where it fits (as servers read it), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def encode(value: Any) -> bytes:
    return json.dumps(value).replace(f'"{HUGE}"', "9" * 5000).encode()


def flux_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / "flux" / "kustomization-validation-failed.json").read_text())
    event["timestamp"] = "2026-11-21T22:00:00Z"
    return event


def argo_notification() -> dict[str, Any]:
    return {"event": "sync-failed", "app": "checkout", "namespace": "argocd", "revision": "a" * 40,
            "sync_revision": "a" * 40, "repo_url": "https://example.com/gitops.git", "sync_status": "OutOfSync",
            "health_status": "Degraded", "phase": "Failed", "message": "sync failed",
            "finished_at": "2026-11-21T22:00:00Z", "started_at": "2026-11-21T21:59:00Z",
            "healthy_at": None, "path": "apps/checkout"}


def build_notice() -> dict[str, Any]:
    return {"image": "registry.example.com/checkout", "tag": "1.2.3", "repo": "gitops", "sha": "a" * 40,
            "at": "2026-11-21T22:00:00Z"}


def variants(base: dict[str, Any], paths: list[str], values: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`base` with the field at each dotted path set to each value, one change at a time."""
    for path in paths:
        for value in values:
            changed = json.loads(json.dumps(base))
            *parents, last = path.split(".")
            node = changed
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, list):
                node[int(last)] = value
            else:
                node[last] = value
            yield f"{path}={value!r:.30}", changed


def requests(creds: Credentials) -> list[Hostile]:
    """Every hostile request, authenticated where the route needs it (so it reaches the parser)."""
    return [*_alertmanager(creds), *_flux(creds), *_argocd(creds), *_build(creds), *_api_writes(creds),
            *_queries(creds), *_slack(creds), *_pages(creds), *_pagerduty(creds),
            *_forges(creds)]


def _json(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def _alertmanager(creds: Credentials) -> Iterator[Hostile]:
    from tests.conftest import payload

    headers = _json(creds.alertmanager_token)
    base = payload("01")
    for name, body in variants(base, ["groupKey", "receiver", "alerts.0.labels.alertname",
                                      "alerts.0.annotations.summary", "alerts.0.generatorURL"], TEXTS):
        yield Hostile(f"alertmanager {name}", "POST", "/webhooks/alertmanager", encode(body), headers)
    for raw in MALFORMED:
        yield Hostile(f"alertmanager body {raw[:12]!r}", "POST", "/webhooks/alertmanager", raw, headers)


def _flux(creds: Credentials) -> Iterator[Hostile]:
    def signed(name: str, body: bytes) -> Hostile:
        digest = hmac.new(creds.flux_key.encode(), body, hashlib.sha256).hexdigest()
        return Hostile(f"flux {name}", "POST", "/webhooks/flux", body,
                       {"Content-Type": "application/json", "X-Signature": f"sha256={digest}"})

    texts = ["message", "reason", "involvedObject.name", "involvedObject.kind", "involvedObject.namespace",
             "reportingController", "action"]
    for name, body in variants(flux_event(), texts, TEXTS):
        yield signed(name, encode(body))
    for value in TEXTS:
        event = flux_event()
        event["metadata"] = {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{'a' * 40}{value}", value: "x"}
        yield signed(f"metadata {value!r:.20}", encode(event))
    for name, body in variants(flux_event(), ["timestamp"], TIMES[:2]):
        yield replace(signed(name, encode(body)), expect=422)
    for name, body in variants(flux_event(), ["timestamp"], TIMES[2:]):
        yield signed(name, encode(body))
    for raw in MALFORMED:
        yield signed(f"body {raw[:12]!r}", raw)


def _pagerduty(creds: Credentials) -> Iterator[Hostile]:
    def signed(name: str, body: bytes) -> Hostile:
        digest = hmac.new(creds.pagerduty_secret.encode(), body, hashlib.sha256).hexdigest()
        return Hostile(f"pagerduty {name}", "POST", "/webhooks/pagerduty", body,
                       {"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1={digest}"})

    base = json.loads((FIXTURES / "pagerduty" / "incident-triggered.json").read_text())
    texts = ["event.id", "event.event_type", "event.data.id", "event.data.title", "event.data.service.id",
             "event.data.service.summary", "event.data.html_url"]
    for name, body in variants(base, texts, TEXTS):
        yield signed(name, encode(body))
    for name, body in variants(base, ["event.occurred_at", "event.data.created_at"], TIMES):
        yield signed(name, encode(body))
    for raw in MALFORMED:
        yield signed(f"body {raw[:12]!r}", raw)


def _forges(creds: Credentials) -> Iterator[Hostile]:
    """GitHub (signed) and GitLab (token) pushes and pull/merge request events."""
    def github(name: str, event: str, body: bytes) -> Hostile:
        digest = hmac.new(creds.github_secret.encode(), body, hashlib.sha256).hexdigest()
        return Hostile(f"github {name}", "POST", "/webhooks/github", body,
                       {"Content-Type": "application/json", "X-GitHub-Event": event,
                        "X-Hub-Signature-256": f"sha256={digest}"})

    def gitlab(name: str, event: str, body: bytes) -> Hostile:
        return Hostile(f"gitlab {name}", "POST", "/webhooks/gitlab", body,
                       {"Content-Type": "application/json", "X-Gitlab-Event": event,
                        "X-Gitlab-Token": creds.gitlab_token})

    cases = [(github, "push", "github/push.json", ["ref", "commits.0.message", "commits.0.author.name",
                                                   "commits.0.added.0", "repository.full_name"]),
             (github, "pull_request", "github/pull_request_merged.json", ["action", "pull_request.head.ref"]),
             (gitlab, "Push Hook", "gitlab/push_hook.json", ["ref", "commits.0.message", "user_username",
                                                            "project.path_with_namespace"]),
             (gitlab, "Merge Request Hook", "gitlab/merge_request_hook_merged.json",
              ["object_attributes.source_branch", "user.username"])]
    for send, event, fixture, texts in cases:
        base = json.loads((FIXTURES / fixture).read_text())
        for name, body in variants(base, texts, TEXTS):
            yield send(f"{event} {name}", event, encode(body))
        if event in ("push", "Push Hook"):
            for name, body in variants(base, ["commits.0.timestamp"], TIMES):
                yield send(f"{event} {name}", event, encode(body))
        for raw in MALFORMED:
            yield send(f"{event} body {raw[:12]!r}", event, raw)


def _argocd(creds: Credentials) -> Iterator[Hostile]:
    headers = _json(creds.argocd_token)
    for name, body in variants(argo_notification(), ["message", "app", "namespace", "revision", "path"], TEXTS):
        yield Hostile(f"argocd {name}", "POST", "/webhooks/argocd", encode(body), headers)
    for name, body in variants(argo_notification(), ["finished_at", "started_at"], TIMES):
        yield Hostile(f"argocd {name}", "POST", "/webhooks/argocd", encode(body), headers,
                      expect=422 if body["finished_at"] in TIMES[:2] else None)
    deployed = {**argo_notification(), "event": "deployed", "healthy_at": "2026-11-21T22:01:00Z"}
    for name, body in variants(deployed, ["finished_at", "started_at", "healthy_at"], TIMES):
        yield Hostile(f"argocd deployed {name}", "POST", "/webhooks/argocd", encode(body), headers)
    for raw in MALFORMED:
        yield Hostile(f"argocd body {raw[:12]!r}", "POST", "/webhooks/argocd", raw, headers)


def _build(creds: Credentials) -> Iterator[Hostile]:
    headers = _json(creds.api_token)
    for name, body in variants(build_notice(), ["repo", "image", "tag", "sha"], TEXTS):
        yield Hostile(f"build {name}", "POST", "/webhooks/build", encode(body), headers)
    for name, body in variants(build_notice(), ["at"], TIMES):
        yield Hostile(f"build {name}", "POST", "/webhooks/build", encode(body), headers,
                      expect=422 if body["at"] in TIMES[:2] else None)
    for raw in MALFORMED:
        yield Hostile(f"build body {raw[:12]!r}", "POST", "/webhooks/build", raw, headers)


def _api_writes(creds: Credentials) -> Iterator[Hostile]:
    headers = _json(creds.api_token)
    writes: list[tuple[str, dict[str, Any], list[str]]] = [
        ("/api/incidents/INC-1/notes", {"text": "a note", "by": "ana"}, ["text", "by"]),
        ("/api/incidents/INC-1/updates", {"text": "rolling back", "by": "ana"}, ["text", "by"]),
        ("/api/incidents/INC-1/roles", {"role": "lead", "user": "U0BOB", "by": "ana"}, ["role", "user", "by"]),
        ("/api/incidents/INC-1/severity", {"severity": "warning", "by": "ana"}, ["severity", "by"]),
        ("/api/incidents/INC-1/ack", {"by": "ana", "note": "on it"}, ["note", "by"]),
        ("/api/incidents/INC-1/resolve", {"by": "ana", "note": "done"}, ["note", "by"]),
        ("/api/incidents/INC-1/reopen", {"by": "ana", "note": "again"}, ["note", "by"]),
        ("/api/incidents/INC-1/verdict", {"verdict": "culprit", "sha": "abc1234", "by": "ana"}, ["sha", "by"]),
        ("/api/incidents/INC-1/rollback", {"commit": "a" * 40, "by": "ana"}, ["commit", "by"]),
        ("/api/incidents/INC-1/hold", {"by": "ana"}, ["by"]),
    ]
    for path, base, texts in writes:
        for name, body in variants(base, texts, TEXTS):
            yield Hostile(f"{path} {name}", "POST", path, encode(body), headers)
        for raw in MALFORMED:
            yield Hostile(f"{path} body {raw[:12]!r}", "POST", path, raw, headers)


def _queries(creds: Credentials) -> Iterator[Hostile]:
    headers = {"Authorization": f"Bearer {creds.api_token}"}
    yield Hostile("/api/report?since=3000000d", "GET", "/api/report?since=3000000d", headers=headers, expect=422)
    queries = [
        ("/api/report", {"since": "9" * 30 + "d"}), ("/api/report", {"since": "1" * 5000 + "s"}),
        ("/api/report", {"since": "\x00"}), ("/api/report", {"service": "nul\x00inside"}),
        ("/api/report/accuracy", {"since": "3000000d"}), ("/api/incidents", {"status": "\x00"}),
        ("/api/incidents", {"limit": "9" * 5000}), ("/api/incidents/INC-1/rollback", {"commit": "ab\x00cd"}),
        ("/api/incidents/INC-1/rollback", {"commit": "\x00"}), ("/api/incidents/INC-1/export", {"format": "\x00"}),
    ]
    for path, query in queries:
        yield Hostile(f"{path}?{query!r:.40}", "GET", f"{path}?{urlencode(query)}", headers=headers)
    for ref in ["9" * 18, "INC-" + "9" * 18, "%00", "%C2%B2", "9" * 5000]:
        yield Hostile(f"/api/incidents/{ref[:20]}", "GET", f"/api/incidents/{ref}", headers=headers)


def _slack(creds: Credentials) -> Iterator[Hostile]:
    def signed(name: str, body: bytes, stamp: str | None = None) -> Hostile:
        stamp = stamp or str(int(time.time()))
        digest = hmac.new(creds.slack_secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        return Hostile(f"slack {name}", "POST", "/slack/events", body, {
            "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"})

    for stamp in ["²", "1" * 5000, "-1", "+12", "١٢٣", "9" * 30]:  # none needs the secret to send
        yield Hostile(f"slack timestamp {stamp[:10]!r}", "POST", "/slack/events", b"payload=x",
                      {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + "0" * 64}, expect=401)
    for text in TEXTS:
        form = urlencode({"command": "/incident", "text": f"note INC-1 {text}", "user_id": "U1",
                          "channel_id": "C1", "team_id": "T1", "response_url": "http://127.0.0.1:9/r",
                          "trigger_id": "t"}, encoding="utf-8", errors="surrogatepass")
        yield signed(f"command {text!r:.20}", form.encode("utf-8", "surrogatepass"))
    for raw in MALFORMED:
        yield signed(f"body {raw[:12]!r}", raw)


def _pages(creds: Credentials) -> Iterator[Hostile]:
    for token in ["².x", "9" * 5000 + ".x", "9" * 4000 + ".x", "-1.x", "١٢٣.x"]:
        yield Hostile(f"page link t={token[:10]!r}", "GET", f"/incidents/1?{urlencode({'t': token})}", expect=401)
        yield Hostile(f"page cookie {token[:10]!r}", "GET", "/incidents/1",
                      headers={"Cookie": f"backout_session={token}"}, expect=401)
    yield Hostile("page link t=NUL", "GET", "/incidents/1?t=%00")
    for form in [{"token": "\x00", "next": "/incidents"}, {"token": creds.api_token, "next": "\x00"},
                 {"token": "\ud800", "next": "/incidents/\x00"}]:
        body = urlencode(form, encoding="utf-8", errors="surrogatepass").encode()
        yield Hostile(f"signin {form!r:.30}", "POST", "/signin", body,
                      {"Content-Type": "application/x-www-form-urlencoded"})
