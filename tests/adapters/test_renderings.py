"""The incident page and chart over HTTP: drawn off the event loop, kept per incident version."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.export.chart import render_png
from bot.domain.chart import ChartData
from bot.entrypoints.renderings import PAGE_THREADS, ChartWorkers, Renderings
from bot.entrypoints.serving import serve_in_thread
from bot.services.incidents import IncidentView
from tests.conftest import AUTH, payload_bytes
from tests.fakes.store import GatedStore


class CountingWorkers(ChartWorkers):
    """Draws in this process and counts the charts drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = 0

    async def render(self, data: ChartData) -> bytes:
        self.drawn += 1
        return render_png(data)


@pytest.fixture
def counted(app: bootstrap.App) -> Iterator[tuple[TestClient, CountingWorkers]]:
    workers = app.ctx.chart_workers = CountingWorkers()
    with TestClient(app.http) as client:
        assert client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH).status_code == 200
        yield client, workers


def test_the_chart_is_drawn_once_per_version_and_again_after_a_change(
        counted: tuple[TestClient, CountingWorkers]) -> None:
    """The same version of the incident: the same bytes, not drawn again. Resolved: a new chart."""
    client, workers = counted
    first = client.get("/api/incidents/1/chart.png")
    assert first.headers["content-type"] == "image/png"
    assert client.get("/api/incidents/1/chart.png").content == first.content
    assert client.get("/api/incidents/1/export", params={"format": "png"}).content == first.content
    assert workers.drawn == 1
    assert client.post("/api/incidents/1/resolve", json={"by": "alice"}).status_code == 200
    after = client.get("/api/incidents/1/chart.png")
    assert workers.drawn == 2
    assert after.content != first.content  # the recovery is marked


def test_the_page_is_rendered_once_per_version_and_shows_a_change(
        counted: tuple[TestClient, CountingWorkers]) -> None:
    """The page of one version is kept, chart and all; an acknowledgement makes a new version."""
    client, workers = counted
    page = client.get("/incidents/INC-1")
    assert page.status_code == 200
    assert client.get("/incidents/INC-1").text == page.text
    assert workers.drawn == 1
    assert client.post("/api/incidents/1/ack", json={"by": "alice"}).status_code == 200
    after = client.get("/incidents/INC-1")
    assert after.text != page.text
    assert "acknowledged" in after.text.lower()


def test_requests_for_one_rendering_at_once_share_it() -> None:
    """Ten requests for one key while it renders: one rendering, ten answers; a browser that goes
    away does not cancel it for the others."""
    async def main() -> tuple[list[bytes], int]:
        kept, made, gate = Renderings(), [0], asyncio.Event()

        async def make() -> bytes:
            made[0] += 1
            await gate.wait()
            return b"png"

        waiting = [asyncio.create_task(kept.get(("chart", 1, "v1"), make)) for _ in range(10)]
        await asyncio.sleep(0)
        waiting[0].cancel()
        gate.set()
        answers = await asyncio.gather(*waiting[1:])
        return [*answers, await kept.get(("chart", 1, "v1"), make)], made[0]

    answers, made = asyncio.run(main())
    assert (answers, made) == ([b"png"] * 10, 1)


def test_the_page_version_is_computed_off_the_event_loop(counted: tuple[TestClient, CountingWorkers],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest of everything an incident shows (every alert and timeline event serialised) is
    worked out on a page thread, never on the event loop that answers /healthz."""
    client, _ = counted
    on_loop: list[bool] = []
    version = IncidentView.version

    def recording(view: IncidentView) -> str:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return version(view)

    monkeypatch.setattr(IncidentView, "version", recording)
    for path in ("/incidents/INC-1", "/api/incidents/1/chart.png", "/api/incidents/1/export?format=html"):
        assert client.get(path, headers=AUTH).status_code == 200
    assert on_loop
    assert not any(on_loop)


def test_page_reads_take_a_few_threads_and_leave_the_loop_free(build: Callable[..., bootstrap.App]) -> None:
    """Twenty browsers opening pages while the database is slow: at most PAGE_THREADS reads run
    at once (more would only queue for the interpreter lock the event loop needs), and /healthz
    answers meanwhile."""
    plain = build()
    with TestClient(plain.http) as client:
        assert client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH).status_code == 200
    store = GatedStore(plain.ctx.store)
    app = build(plain.ctx.settings, store=store)
    statuses: list[int] = []
    with serve_in_thread(app.http) as base:
        def read() -> None:
            statuses.append(httpx.get(f"{base}/incidents/INC-1", headers=AUTH, timeout=60).status_code)

        readers = [threading.Thread(target=read) for _ in range(20)]
        for reader in readers:
            reader.start()
        try:
            store.wait_for(PAGE_THREADS)
            health = httpx.get(f"{base}/healthz", timeout=10)
            time.sleep(0.2)  # time for more reads to begin, were they allowed to
            began = store.calls
        finally:
            store.gate.set()
            for reader in readers:
                reader.join()
    assert health.status_code == 200
    assert began == PAGE_THREADS
    assert statuses == [200] * 20
