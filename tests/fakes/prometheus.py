"""A fake Prometheus served over HTTP: what a FakePrometheus holds (series per query, activeAt
and rule `for` per alert name) answered as Prometheus's HTTP API does (`/api/v1/query_range`,
`/api/v1/query`, `/api/v1/alerts`, `/api/v1/rules`, `/api/v1/status/config`), with a latency,
a `down` switch (503) and a hook that sees each call as it is made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.entrypoints.serving import serve_in_thread
from tests.fakes.metrics import FakePrometheus


class PrometheusServer:
    """Serve with `serving()`; `base_url` is then set. `calls` lists the API paths asked."""

    def __init__(self, data: FakePrometheus | None = None, *, latency: float = 0.0) -> None:
        self.data = data or FakePrometheus()
        self.latency = latency
        self.down = False
        self.calls: list[str] = []
        self.on_call: Callable[[str], object] = lambda _path: None
        self.base_url = ""

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self._build()) as base_url:
            self.base_url = base_url
            yield self

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            self.calls.append(request.url.path)
            self.on_call(request.url.path)
            if self.latency:
                await asyncio.sleep(self.latency)
            if self.down:
                return JSONResponse({"status": "error", "error": "down"}, status_code=503)
            return await call_next(request)

        @app.get("/api/v1/query_range")
        async def query_range(query: str, start: float, end: float) -> JSONResponse:
            points = self.data.history.get(" ".join(query.split()), [])
            values = [[at.timestamp(), repr(v)] for at, v in points if start <= at.timestamp() <= end]
            return _success({"resultType": "matrix", "result": [{"metric": {}, "values": values}] if values else []})

        @app.get("/api/v1/query")
        async def query(query: str) -> JSONResponse:
            value = self.data.values.get(" ".join(query.split()))
            now = datetime.now(UTC).timestamp()
            return _success({"resultType": "vector",
                             "result": [] if value is None else [{"metric": {}, "value": [now, repr(value)]}]})

        @app.get("/api/v1/alerts")
        async def alerts() -> JSONResponse:
            return _success({"alerts": [{"labels": {"alertname": name}, "state": "firing",
                                         "activeAt": at.isoformat().replace("+00:00", "Z")}
                                        for name, at in self.data.active.items()]})

        @app.get("/api/v1/rules")
        async def rules() -> JSONResponse:
            return _success({"groups": [{"name": "fake", "rules": [
                {"type": "alerting", "name": name, "duration": hold.total_seconds(), "labels": {}, "query": ""}
                for name, hold in self.data.rules.items()]}]})

        @app.get("/api/v1/status/config")
        async def config() -> JSONResponse:
            return _success({"yaml": "global: {}\n"})

        return app


def _success(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})
