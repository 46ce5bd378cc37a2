"""The embedded defaults: ConsoleNotifier (what a person would see in Slack, as text), and the
null forge and applied-time source for repositories that have neither."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from bot.domain.errors import UpstreamError
from bot.domain.ports import Notice, PullRequestRef, PullRequestStatus

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ConsoleNotifier:
    """Prints notices to a stream. Alert text is untrusted: control characters are replaced so
    it cannot move the cursor or recolour the terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def notify(self, notice: Notice) -> None:
        text = "\n".join([f"── {notice.kind}: {_clean(notice.title)}",
                          *(f"   {_clean(line)}" for line in notice.lines)])
        with self._lock:
            print(text + "\n", file=self._stream, flush=True)


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)


class RecordingNotifier:
    """Keeps notices in memory (for tests and the demo's summary)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


class NoForge:
    """The Forge port for repositories with `forge: local`: plain branches, no pull requests."""

    def handles(self, repo: str) -> bool:
        return False

    def open_pull_request(self, repo: str, **_: object) -> PullRequestRef:
        raise UpstreamError(f"{repo} has no forge: its branches are pushed without a pull request")

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        raise UpstreamError(f"{repo} has no forge")


class NoAppliedTimes:
    """The AppliedTimes port when no repository names a source: commit time plus sync delay."""

    def source(self, repo: str) -> str | None:
        return None

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        return {}


class SingleReplica:
    """The leader gate for one process: it always leads. (PostgreSQL replicas use an advisory lock.)"""

    def is_leader(self) -> bool:
        return True
