"""What the entrypoints are handed by `bootstrap.build()`: the wired parts, nothing global."""

from __future__ import annotations

from collections.abc import Callable
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
    metrics: Metrics = field(default_factory=lambda: Metrics())
