"""A fake PagerDuty over real HTTPS (the client accepts https only), with a certificate made for the
test: Events API v2 (`/v2/enqueue`, `/v2/change/enqueue`, answering 202 as PagerDuty does, 400 to an
event without a routing key) and the REST API's on-calls, services and escalation policies. It
records what it received and answers queued faults (429 with Retry-After, 5xx)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.entrypoints.serving import serve_in_thread

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
API_TOKEN = "u+fake-rest-token"


@dataclass
class _Fault:
    path: str
    status: int
    times: int
    retry_after: int | None


@dataclass
class FakePagerDuty:
    """Serve with `serving(tmp_path)`; `base_url` is then the HTTPS address, `ca_file` its CA."""

    base_url: str = ""
    ca_file: Path | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # /v2/enqueue bodies accepted
    changes: list[dict[str, Any]] = field(default_factory=list)  # /v2/change/enqueue bodies accepted
    requests: list[tuple[str, str]] = field(default_factory=list)  # every (method, path), faults too
    # escalation policy id -> on-call entries (user, escalation_level) as /oncalls gives them
    oncalls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # service id -> its escalation policy id
    faults: list[_Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path: str, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        self.faults.append(_Fault(path, status, times, retry_after))

    def on_call(self, policy: str, *people: tuple[str, str, int]) -> None:
        """Put (name, email, level) on call for an escalation policy."""
        self.oncalls[policy] = [
            {"escalation_level": level, "escalation_policy": {"id": policy, "type": "escalation_policy_reference"},
             "user": {"id": f"PU{index}", "type": "user", "name": name, "email": email, "summary": name}}
            for index, (name, email, level) in enumerate(people)]

    def actions(self) -> list[tuple[str, str]]:
        """(event_action, dedup_key) of each accepted Events v2 event, in order."""
        return [(e["event_action"], e.get("dedup_key", "")) for e in self.events]

    @contextmanager
    def serving(self, folder: Path) -> Iterator[Self]:
        certificate, key = _certificate(folder)
        self.ca_file = certificate
        with serve_in_thread(self._build(), tls=(str(certificate), str(key))) as base_url:
            self.base_url = base_url
            yield self

    def _fault(self, method: str, path: str) -> JSONResponse | None:
        with self.lock:
            self.requests.append((method, path))
            fault = next((f for f in self.faults if f.path == path and f.times > 0), None)
            if fault is None:
                return None
            fault.times -= 1
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = ({"status": "throttle event", "message": "Requests for this service are arriving too quickly."}
                if fault.status == 429 else {"status": "error", "message": "internal server error"})
        return JSONResponse(body, status_code=fault.status, headers=headers)

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v2/enqueue")
        async def enqueue(request: Request) -> JSONResponse:
            return await self._event(request, "/v2/enqueue", self.events)

        @app.post("/v2/change/enqueue")
        async def change(request: Request) -> JSONResponse:
            return await self._event(request, "/v2/change/enqueue", self.changes)

        @app.get("/services/{service_id}")
        async def service(service_id: str, request: Request) -> JSONResponse:
            if (refused := self._rest("GET", f"/services/{service_id}", request)) is not None:
                return refused
            if service_id not in self.services:
                return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)
            policy = self.services[service_id]
            return JSONResponse({"service": {"id": service_id, "type": "service", "escalation_policy": {
                "id": policy, "type": "escalation_policy_reference"}}})

        @app.get("/oncalls")
        async def oncalls(request: Request) -> JSONResponse:
            if (refused := self._rest("GET", "/oncalls", request)) is not None:
                return refused
            policies = request.query_params.getlist("escalation_policy_ids[]")
            users = "users" in request.query_params.getlist("include[]")
            found = [dict(entry, user=entry["user"] if users else {"id": entry["user"]["id"],
                                                                   "type": "user_reference"})
                     for policy in policies for entry in self.oncalls.get(policy, [])]
            offset, limit = int(request.query_params.get("offset", 0)), int(request.query_params.get("limit", 25))
            return JSONResponse({"oncalls": found[offset:offset + limit], "limit": limit, "offset": offset,
                                 "more": offset + limit < len(found), "total": None})

        return app

    async def _event(self, request: Request, path: str, accepted: list[dict[str, Any]]) -> JSONResponse:
        """An Events API v2 event: 202 as PagerDuty answers, 400 without the routing key."""
        body = await request.json()
        if (fault := self._fault("POST", path)) is not None:
            return fault
        if body.get("routing_key") != ROUTING_KEY:
            return JSONResponse({"status": "invalid event", "message": "Event object is invalid",
                                 "errors": ["'routing_key' is invalid"]}, status_code=400)
        accepted.append(body)
        if path == "/v2/change/enqueue":
            return JSONResponse({"status": "success", "message": "Change event processed"}, status_code=202)
        return JSONResponse({"status": "success", "message": "Event processed",
                             "dedup_key": body.get("dedup_key") or "generated"}, status_code=202)

    def _rest(self, method: str, path: str, request: Request) -> JSONResponse | None:
        if (fault := self._fault(method, path)) is not None:
            return fault
        if request.headers.get("authorization") != f"Token token={API_TOKEN}":
            return JSONResponse({"error": {"message": "Unauthorized", "code": 2006}}, status_code=401)
        return None


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake pagerduty")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "pagerduty-ca.pem", folder / "pagerduty-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file
