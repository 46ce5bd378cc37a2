"""ConsoleNotifier: what a person would see in Slack, as readable text (the embedded default)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from bot.domain.ports import Notice
from bot.domain.text import safe


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
    return safe(text, limit=20_000)


class RecordingNotifier:
    """Keeps notices in memory (for tests and the demo's summary)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
