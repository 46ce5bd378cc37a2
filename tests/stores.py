"""Real stores for tests: several on one database, each with its own engine (as processes have)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore


@contextmanager
def store_maker(url: str) -> Iterator[Callable[[], SqlStore]]:
    """A function that makes a store on `url`; every one made is disposed of on leaving."""
    made: list[SqlStore] = []

    def make() -> SqlStore:
        made.append(SqlStore(create_engine(url)))
        return made[-1]

    try:
        yield make
    finally:
        for store in made:
            store.engine.dispose()
