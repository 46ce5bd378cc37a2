"""Liveness under load: /healthz answers from the event loop while every worker thread is busy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from bot import bootstrap
from bot.entrypoints.serving import serve_in_thread
from tests.fakes.store import GatedStore

THREADS = 40  # anyio's default thread limiter: the pool the sync routes run on


def test_healthz_answers_while_the_thread_pool_is_saturated(build: Callable[..., bootstrap.App]) -> None:
    """Every worker thread stuck on the database: /healthz still answers (a liveness probe must
    not restart a pod that is only busy)."""
    plain = build()
    store = GatedStore(plain.ctx.store)
    app = build(plain.ctx.settings, store=store)
    answers: list[Any] = []
    with serve_in_thread(app.http) as base:
        def read() -> None:
            answers.append(httpx.get(f"{base}/api/incidents", timeout=60).status_code)

        readers = [threading.Thread(target=read) for _ in range(THREADS + 5)]
        for reader in readers:
            reader.start()
        try:
            store.wait_for(THREADS)
            health = httpx.get(f"{base}/healthz", timeout=10)
        finally:
            store.gate.set()
            for reader in readers:
                reader.join()
    assert health.json() == {"status": "ok"}
    assert answers == [200] * len(readers)
