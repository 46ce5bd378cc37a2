"""Argo CD, as far as Backout needs: render a notification template's webhook body over an
Application, the way argocd-notifications evaluates `{{toJson .app.<path>}}`; and its API's
managed-resources and sync over real HTTP (`FakeArgoCdApi`), bearer token checked, with queued faults."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.entrypoints.serving import serve_in_thread

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "notifications.yaml"
_FIELD = re.compile(r"\{\{\s*(toJson\s+)?\.([A-Za-z0-9_.]+)\s*\}\}")


def template_body(name: str) -> str:
    """The webhook body of `template.<name>` in the shipped ConfigMap."""
    config = yaml.safe_load(TEMPLATES.read_text())
    template = yaml.safe_load(config["data"][f"template.{name}"])
    return str(template["webhook"]["backout"]["body"])


def render(body: str, app: dict[str, Any]) -> str:
    """Go template field access over `{"app": app}`: a missing key is `<no value>` (or `null`
    through toJson), as text/template prints it."""
    scope = {"app": app}

    def value(match: re.Match[str]) -> str:
        found: Any = scope
        for part in match.group(2).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if match.group(1):
            return json.dumps(found)
        return "<no value>" if found is None else str(found)

    unknown = re.sub(_FIELD, "", body)
    if "{{" in unknown:
        raise AssertionError(f"the template uses more than field access: {unknown}")
    return _FIELD.sub(value, body)


API_TOKEN = "argocd-api-token-0123"


@dataclass
class FakeArgoCdApi:
    """`GET /api/v1/applications/{name}/managed-resources` answering what `managed` holds per app
    (Argo CD's ResourceDiff items: target and live states as JSON strings); `fail(status, times)`
    queues faults (a 429 carries Retry-After: 0). Serve with `serving()`; `base_url` is then set."""

    base_url: str = ""
    managed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    syncs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (app, request body) accepted
    faults: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def drift(self, app: str, *, kind: str, namespace: str, name: str, target: dict[str, Any],
              live: dict[str, Any] | None, group: str = "apps") -> None:
        """The app's resource with Git's (`target`) and the cluster's (`live`) states."""
        self.managed.setdefault(app, []).append({
            "group": group, "kind": kind, "namespace": namespace, "name": name,
            "targetState": json.dumps(target), "liveState": json.dumps(live) if live is not None else None,
            "normalizedLiveState": json.dumps(live) if live is not None else None,
            "modified": live != target, "hook": False})

    def fail(self, status: int, *, times: int = 1) -> None:
        self.faults.extend([status] * times)

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self._build()) as base_url:
            self.base_url = base_url
            yield self

    def _build(self) -> FastAPI:
        api = FastAPI()

        @api.get("/api/v1/applications/{name}/managed-resources")
        async def managed(name: str, request: Request) -> JSONResponse:
            with self.lock:
                self.requests.append(name)
                fault = self.faults.pop(0) if self.faults else None
            if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
                return JSONResponse({"error": "invalid session", "code": 16}, status_code=401)
            if fault is not None:
                return JSONResponse({"error": "injected"}, status_code=fault, headers={"Retry-After": "0"})
            if name not in self.managed:
                return JSONResponse({"error": f"applications.argoproj.io \"{name}\" not found", "code": 5},
                                    status_code=404)
            return JSONResponse({"items": self.managed[name]})

        @api.post("/api/v1/applications/{name}/sync")
        async def sync(name: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
                return JSONResponse({"error": "invalid session", "code": 16}, status_code=401)
            with self.lock:
                self.syncs.append((name, await request.json()))
            return JSONResponse({"metadata": {"name": name}, "status": {"operationState": {"phase": "Running"}}})

        return api
