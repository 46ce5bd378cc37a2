"""Renderings over HTTP, off the event loop and kept per incident version: charts are drawn in
worker processes (a chart is about 100 ms of CPU that, on a thread, would hold the interpreter
lock the event loop needs to answer anything, /healthz included); pages are kept by the same
rule. Many browsers opening one incident at once cost one rendering; no lock is held while
drawing. Reading an incident for its page, and the digest of its version, happen on a few page
threads, never on the event loop."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from anyio import CapacityLimiter
from anyio.to_thread import run_sync

from bot.adapters.export.chart import render_png, warm
from bot.domain.chart import ChartData
from bot.services.incidents import IncidentView

T = TypeVar("T")
# While an incident is active its chart runs to "now": a rendering is kept this long at most.
ACTIVE_FOR = timedelta(seconds=15)
# A resolved incident's chart is fixed; its page carries a signed link, kept fresh all the same.
RESOLVED_FOR = timedelta(hours=1)
RENDER_TIMEOUT = 60.0  # seconds for one chart in a worker process
# Threads that read and render pages at once: each holds the interpreter lock while it works, and
# the event loop needs it to answer anything; more threads would only queue for the lock.
PAGE_THREADS = 4


class ChartWorkers:
    """Processes that draw charts, started on the first one (most processes never draw)."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or min(2, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the processes now, in the background (`serve` does): the first page opened then
        does not wait for them to start and import matplotlib, a second or two."""
        pool = self._started()
        for _ in range(self._workers):
            pool.submit(warm)

    async def render(self, data: ChartData) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._started(), render_png, data), RENDER_TIMEOUT)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork would copy this process's threads' locks in whatever state they are
            self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=warm)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class Renderings:
    """The newest renderings by (what, incident, version, time slot), each made once however many
    requests ask for it at the same time. Used from the event loop only: no lock."""

    def __init__(self, *, size: int = 32, threads: int = PAGE_THREADS) -> None:
        self._size = size
        self._threads = CapacityLimiter(threads)
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._making: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    async def run(self, work: Callable[[], T]) -> T:
        """`work` on one of the page threads (at most `threads` at once), not on the event loop."""
        return await run_sync(work, limiter=self._threads)

    async def get(self, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
        if key in self._kept:
            self._kept.move_to_end(key)
            found: T = self._kept[key]
            return found
        making = self._making.get(key)
        if making is None:
            making = self._making[key] = asyncio.ensure_future(make())
            making.add_done_callback(lambda done: self._made(key, done))
        # Shielded: a browser that goes away does not cancel the rendering the others wait for.
        result: T = await asyncio.shield(making)
        return result

    def _made(self, key: tuple[Any, ...], done: asyncio.Future[Any]) -> None:
        self._making.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._kept[key] = done.result()
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)


def slot(view: IncidentView, now: datetime) -> datetime:
    """The start of the time slot a rendering of the view is kept for (see ACTIVE_FOR)."""
    span = ACTIVE_FOR if view.incident.resolved_at is None else RESOLVED_FOR
    epoch = datetime.min.replace(tzinfo=now.tzinfo)
    return now - (now - epoch) % span
