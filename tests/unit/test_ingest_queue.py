"""Group commit of webhook deliveries: batches under load, and one bad delivery sinks no other."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from bot.domain.errors import StorageUnavailable
from bot.domain.models import AlertStatus, Delivery
from bot.entrypoints.batch_queue import IngestQueue
from bot.services.ingest import IngestOutcome


def delivery(key: str) -> Delivery:
    return Delivery(group_key=key, status=AlertStatus.FIRING, alerts=())


class Gated:
    """A writer's `record` that holds each batch until `gate` opens and notes its group keys."""

    def __init__(self) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, deliveries: Sequence[Delivery]) -> list[IngestOutcome]:
        self.entered.set()
        self.gate.wait(5)
        self.batches.append([d.group_key for d in deliveries])
        return [IngestOutcome(new_alerts=len(d.group_key)) for d in deliveries]


def test_waiting_deliveries_are_written_together_and_answered_each() -> None:
    """Deliveries that queue while one is written go in the next batch, each with its own outcome."""
    record = Gated()
    gate, entered, batches = record.gate, record.entered, record.batches
    writer = IngestQueue(record)

    async def main() -> list[IngestOutcome]:
        tasks = [asyncio.create_task(writer.submit(delivery("x")))]
        await asyncio.to_thread(entered.wait, 5)  # the first is being written; the rest wait
        tasks += [asyncio.create_task(writer.submit(delivery("x" * n))) for n in range(2, 6)]
        await asyncio.sleep(0.1)
        gate.set()
        return await asyncio.gather(*tasks)

    outcomes = asyncio.run(main())
    writer.close()
    assert [o.new_alerts for o in outcomes] == [1, 2, 3, 4, 5]
    assert batches[0] == ["x"]
    assert sorted(len(b) for b in batches[1:]) == [4]


def test_a_failing_delivery_fails_alone() -> None:
    """If the batch fails, each delivery is written alone: only the bad one gets the error."""

    def record(deliveries: Sequence[Delivery]) -> list[IngestOutcome]:
        if any(d.group_key == "bad" for d in deliveries):
            raise ValueError("bad delivery")
        return [IngestOutcome(new_alerts=1) for _ in deliveries]

    writer = IngestQueue(record)
    gate = threading.Event()
    original = writer._record
    writer._record = lambda ds: (gate.wait(5), original(ds))[1]  # type: ignore[method-assign]

    async def main() -> list[IngestOutcome | BaseException]:
        tasks = [asyncio.create_task(writer.submit(delivery(key))) for key in ("a", "b", "bad", "c")]
        await asyncio.sleep(0.1)
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    writer.close()
    assert [type(r).__name__ for r in results] == ["IngestOutcome", "IngestOutcome", "ValueError", "IngestOutcome"]
    with pytest.raises(ValueError, match="bad delivery"):
        raise results[2]  # type: ignore[misc]


def test_a_part_of_a_huge_delivery_is_written_alone_after_the_small_ones_before_it() -> None:
    """Small deliveries queued around a huge delivery's part are not held in its transaction: those
    before it are committed first, together, then the part alone, then those after it."""
    record = Gated()
    gate, entered, batches = record.gate, record.entered, record.batches
    writer = IngestQueue(record, alone=lambda d: bool(d.part_of))
    part = delivery("part").model_copy(update={"part_of": "digest"})

    async def main() -> None:
        first = asyncio.create_task(writer.submit(delivery("first")))
        await asyncio.to_thread(entered.wait, 5)  # being written: the rest queue behind it, in order
        rest = [asyncio.create_task(writer.submit(d)) for d in (delivery("a"), delivery("b"), part, delivery("c"))]
        while writer.waiting < 5:
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    writer.close()
    assert batches == [["first"], ["a", "b"], ["part"], ["c"]]


def test_a_large_batch_is_answered_in_slices_with_the_loop_free_between_them() -> None:
    """The answers to a batch of 200 wake their requests a slice at a time: a request that came in
    meanwhile (a /healthz probe) is served between slices, not after all 200."""
    gate = threading.Event()

    def record(deliveries: Sequence[Delivery]) -> list[IngestOutcome]:
        gate.wait(5)
        return [IngestOutcome() for _ in deliveries]

    writer = IngestQueue(record, max_batch=200)
    woken: list[str] = []

    async def answered(n: int) -> None:
        await writer.submit(delivery(str(n)))
        woken.append("answer")
        if n == 1:  # other work the loop is asked to do once the big batch's first answer arrived
            asyncio.get_running_loop().call_soon(woken.append, "probe")

    async def main() -> None:
        first = asyncio.create_task(answered(0))
        await asyncio.sleep(0.05)  # the writer holds the first alone; the next 200 wait together
        rest = [asyncio.create_task(answered(n)) for n in range(1, 201)]
        await asyncio.sleep(0.1)
        gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    writer.close()
    probe = woken.index("probe")
    assert woken.count("answer") == 201
    assert probe < 100, f"the loop served other work only after {probe} answers"


def test_storage_unavailable_refuses_the_whole_batch_at_once() -> None:
    """A transient error (the database, the writer process) is no item's fault: every item of the
    batch gets it from the one attempt, instead of each being tried again alone."""
    gate = threading.Event()
    calls: list[int] = []

    def record(deliveries: Sequence[Delivery]) -> list[IngestOutcome]:
        gate.wait(5)
        calls.append(len(deliveries))
        raise StorageUnavailable("the database is down")

    writer = IngestQueue(record)

    async def main() -> list[IngestOutcome | BaseException]:
        first = asyncio.create_task(writer.submit(delivery("first")))
        await asyncio.sleep(0.05)  # the writer holds the first alone; the next five wait together
        rest = [asyncio.create_task(writer.submit(delivery(str(n)))) for n in range(5)]
        await asyncio.sleep(0.1)
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(main())
    writer.close()
    assert all(isinstance(r, StorageUnavailable) for r in results)
    assert sum(calls) == 6, f"batches tried: {calls}"
    assert len(calls) <= 2, f"batches tried: {calls}"


def test_an_item_submitted_after_close_is_refused_not_left_waiting() -> None:
    """A held controller event recorded while `serve` shuts down (its fetch landed in a git-wait
    thread) submits its alert after the ingest queue closed: it is refused as unavailable at once,
    instead of waiting forever for a writer that is gone (the thread, and the process's exit, hung)."""
    writer = IngestQueue(lambda deliveries: [IngestOutcome() for _ in deliveries])
    writer.close()

    async def late() -> IngestOutcome:
        return await asyncio.wait_for(writer.submit(delivery("late")), timeout=10)  # a bound: it hung forever

    with pytest.raises(StorageUnavailable, match="shutting down"):
        asyncio.run(late())
    assert writer.waiting == 0
