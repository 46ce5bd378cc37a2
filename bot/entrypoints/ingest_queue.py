"""Group commit for webhook deliveries: one writer thread takes every delivery that is waiting
and records them in one transaction. Under load this saves a transaction per delivery; alone,
a delivery is written at once, as before."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from bot.domain.models import Delivery
from bot.services.ingest import IngestOutcome

log = structlog.get_logger(__name__)
Record = Callable[[Sequence[Delivery]], list[IngestOutcome]]


@dataclass
class _Item:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestOutcome]


class IngestQueue:
    def __init__(self, record: Record, *, max_batch: int = 32) -> None:
        self._record = record
        self._max = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    async def submit(self, delivery: Delivery) -> IngestOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestOutcome] = loop.create_future()
        self._queue.put(_Item(delivery, loop, future))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write(batch)
                    return
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._record([item.delivery for item in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc=exc)
                return
            for item in batch:  # find the one that fails; the others are recorded on their own
                self._write([item])
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            _settle(item, outcome=outcome)


def _settle(item: _Item, *, outcome: IngestOutcome | None = None, exc: BaseException | None = None) -> None:
    def done() -> None:
        if item.future.done():
            return
        if exc is not None:
            item.future.set_exception(exc)
        else:
            assert outcome is not None
            item.future.set_result(outcome)

    try:
        item.loop.call_soon_threadsafe(done)
    except RuntimeError:
        log.warning("ingest.loop_closed")  # the server stopped while this delivery was written
