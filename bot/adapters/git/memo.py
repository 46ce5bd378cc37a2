"""A bounded, thread-safe memo for answers git gives once and for all: a full sha names one
commit forever, and the first-parent history between two commits never changes."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class Memo(Generic[K, V]):
    """The newest `size` answers; the lock covers the dictionary only, never the git call."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._answers: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], V], *, keep: Callable[[V], bool] = lambda _: True) -> V:
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        value = compute()
        if keep(value):
            with self._lock:
                self._answers[key] = value
                while len(self._answers) > self._size:
                    self._answers.popitem(last=False)
        return value


def is_full_sha(rev: str | None) -> bool:
    """A full sha, not an abbreviation (which a new commit may make ambiguous) nor a ref (which moves)."""
    return rev is not None and FULL_SHA.fullmatch(rev) is not None
