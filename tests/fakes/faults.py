"""What the fake forges share: faults a test queues, and every call counted by method and route."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    method: str
    path: str  # a regex on the path
    status: int  # 0: no error, only the delay
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    after_write: bool = False  # do the write, then answer with the fault (the answer is lost)
    delay: float = 0.0
    message: str = ""


class FaultyApi:
    """Counts calls (ids and shas folded into :n and :sha) and hands out the queued faults."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def fail(self, method: str, path: str, status: int, **kwargs: Any) -> None:
        self.faults.append(Fault(method, path, status, **kwargs))

    def reads(self) -> int:
        return sum(n for (method, _), n in self.calls.items() if method == "GET")

    def writes(self) -> int:
        return sum(n for (method, _), n in self.calls.items() if method != "GET")

    def _count(self, method: str, path: str) -> Fault | None:
        """Count the call; the fault it meets, if any (used up once per call)."""
        route = re.sub(r"/\d+(?=/|$)", "/:n", re.sub(r"/[0-9a-f]{40}", "/:sha", path))
        with self.lock:
            self.calls[(method, route)] += 1
            fault = next((f for f in self.faults if f.method == method and re.search(f.path, path)
                          and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
        return fault
