"""What the entrypoints are handed by `bootstrap.build()`: the wired parts, nothing global."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.config import Settings
from bot.domain.playbooks import Playbook
from bot.domain.ports import Clock, Store
from bot.entrypoints.metrics import Metrics


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


@dataclass
class AppContext:
    settings: Settings
    store: Store
    playbooks: list[Playbook]
    clock: Clock
    readiness: Callable[[], Readiness]
    # Webhook writes run here, off the event loop. One thread for SQLite, which has one writer
    # anyway: queueing in one thread beats forty threads taking turns at a lock.
    ingest_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
    )
    metrics: Metrics = field(default_factory=lambda: Metrics())
