"""ConsoleNotifier: what a person would see in Slack, as readable text (the embedded default)."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

from bot.domain.ports import Notice
from bot.domain.text import safe


class ConsoleNotifier:
    """Prints notices to a stream. Alert text is untrusted: control characters are replaced so
    it cannot move the cursor or recolour the terminal."""

    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False) -> None:
        """`as_json`: one JSON object a notice, for a stream where every line is JSON (the
        logs with `logging.format: json`)."""
        self._stream = stream or sys.stdout
        self._json = as_json
        self._lock = threading.Lock()

    def notify(self, notice: Notice) -> None:
        if self._json:
            text = json.dumps({"event": "chat.notice", "kind": notice.kind, "incident": notice.incident_id,
                               "title": notice.title, "lines": list(notice.lines), "level": "info",
                               "logger": "bot.adapters.console",
                               "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
        else:
            text = "\n".join([f"── {notice.kind}: {_clean(notice.title)}",
                              *(f"   {_clean(line)}" for line in notice.lines)]) + "\n"
        with self._lock:
            print(text, file=self._stream, flush=True)


def _clean(text: str) -> str:
    return safe(text, limit=20_000)


class RecordingNotifier:
    """Keeps notices in memory (for tests and the demo's summary)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
