"""Load generators for the benches, each meant to run in a process of its own (so its work never
shares a core's time slice, or a GIL, with the server or with another generator's timing):

- `open_loop`: requests sent on a fixed schedule over a pool of keep-alive connections; each
  latency counts from the request's scheduled time, so a slow server cannot hide its queue
  (no coordinated omission). Raw HTTP/1.1 over asyncio (uvloop when installed): about 50 us of
  CPU a request, which the result reports with the generator's lag behind its schedule.
- `closed_loop`: `concurrency` clients each sending its next request when the last one answered.
- `probe`: one blocking client that asks for one URL every `every` seconds and times each answer.

Each returns its figures as a plain dict; `in_process` runs one in a child process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


def http_request(method: str, path: str, *, host: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> bytes:
    """The raw bytes of one HTTP/1.1 request on a kept-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    found = LENGTH.search(head)
    await reader.readexactly(int(found.group(1)) if found else 0)
    return int(head[9:12])


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def open_loop(host: str, port: int, requests: Sequence[bytes], *, rate: float, connections: int) -> dict[str, Any]:
    """Send `requests` at `rate` a second. Returns latencies (ms, from schedule to answer), the
    statuses, the send lag behind schedule (ms), the wall time and the generator's CPU seconds."""
    _use_uvloop()
    return asyncio.run(_open_loop(host, port, requests, rate=rate, connections=connections))


async def _open_loop(host: str, port: int, requests: Sequence[bytes], *, rate: float,
                     connections: int) -> dict[str, Any]:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    latencies, lags, statuses = [0.0] * len(requests), [0.0] * len(requests), [0] * len(requests)
    cpu, began = _cpu(), time.perf_counter()

    async def send(index: int, due: float) -> None:
        connection = await pool.get()
        lags[index] = (time.perf_counter() - due) * 1000
        try:
            statuses[index] = await _exchange(*connection, requests[index])
        except (OSError, asyncio.IncompleteReadError):
            statuses[index] = 0
            connection = await asyncio.open_connection(host, port)
        latencies[index] = (time.perf_counter() - due) * 1000
        pool.put_nowait(connection)

    tasks = []
    for index in range(len(requests)):
        due = began + index / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(send(index, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"latencies": latencies, "lags": lags, "statuses": statuses, "wall": wall, "cpu": _cpu() - cpu,
            "began": began}  # perf_counter is the system's monotonic clock: comparable across processes


def closed_loop(host: str, port: int, requests: Sequence[bytes], *, concurrency: int,
                seconds: float) -> dict[str, Any]:
    """`concurrency` clients, each cycling through `requests` from its own offset, for `seconds`."""
    _use_uvloop()
    return asyncio.run(_closed_loop(host, port, requests, concurrency=concurrency, seconds=seconds))


async def _closed_loop(host: str, port: int, requests: Sequence[bytes], *, concurrency: int,
                       seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    cpu, stop = _cpu(), time.perf_counter() + seconds

    async def client(offset: int) -> None:
        connection = await asyncio.open_connection(host, port)
        n = offset
        while time.perf_counter() < stop:
            started = time.perf_counter()
            statuses.append(await _exchange(*connection, requests[n % len(requests)]))
            latencies.append((time.perf_counter() - started) * 1000)
            n += 1
        connection[1].close()

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return {"latencies": latencies, "statuses": statuses, "wall": time.perf_counter() - began, "cpu": _cpu() - cpu}


def probe(host: str, port: int, path: str, *, every: float, seconds: float) -> dict[str, Any]:
    """GET `path` every `every` seconds on one kept-alive connection, as a liveness probe would."""
    raw = http_request("GET", path, host=host)
    latencies: list[float] = []
    statuses: list[int] = []
    with socket.create_connection((host, port)) as sock:
        stream = sock.makefile("rb")
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            started = time.perf_counter()
            sock.sendall(raw)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += stream.readline()
            found = LENGTH.search(head)
            stream.read(int(found.group(1)) if found else 0)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.append(int(head[9:12]))
            time.sleep(max(0.0, every - (time.perf_counter() - started)))
    return {"latencies": latencies, "statuses": statuses}


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
           out: Any) -> None:
    out.send(target(*args, **kwargs))


class in_process:  # noqa: N801 - reads as a function: in_process(probe, ...).result()
    """Run a generator in a child process (spawned: nothing of the parent's threads or loop)."""

    def __init__(self, target: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(target, args, kwargs, send), daemon=True)
        self._process.start()

    def result(self) -> dict[str, Any]:
        found: dict[str, Any] = self._receive.recv()
        self._process.join(30)
        return found


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")
