"""A fake Slack Socket Mode server: a real WebSocket server on loopback (websockets), reached as
Slack's is, through the URL `apps.connections.open` answers (FakeSlack.socket_url). Like Slack it
greets each connection with `hello`, sends envelopes (`events_api`, `slash_commands`,
`interactive`) that the app must acknowledge with their `envelope_id`, and asks the app to move
to a new connection with `disconnect` (`refresh_requested`). Each URL opens one connection."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.port = 0
        self.connections: list[ServerConnection] = []  # every connection opened, oldest first
        self.acks: dict[str, dict[str, Any]] = {}  # envelope_id -> the app's acknowledgement
        self.unknown: list[str] = []  # messages from the app that acknowledged nothing we sent
        self._tickets: set[str] = set()
        self._counter = itertools.count(1)
        self._sent: set[str] = set()
        self._changed = threading.Condition()

    def url(self) -> str:
        """A new one-time URL, as apps.connections.open gives."""
        ticket = f"t{next(self._counter)}"
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False) -> str:
        """An envelope on the newest connection; returns its envelope_id."""
        envelope_id = f"env-{next(self._counter)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": accepts_response_payload}
        if kind == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        with self._changed:
            self._sent.add(envelope_id)
            current = self.connections[-1]
        current.send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The app's acknowledgement of an envelope, waited for."""
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self.acks, timeout=timeout):
                raise AssertionError(f"{envelope_id} was not acknowledged within {timeout} s")
            return self.acks[envelope_id]

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's warning before it closes a connection: the app is to open a new one."""
        with self._changed:
            current = self.connections[-1]
        current.send(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}))

    def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.connections) >= count, timeout=timeout):
                raise AssertionError(f"{len(self.connections)} connections, not {count}, within {timeout} s")

    def _handle(self, connection: ServerConnection) -> None:
        ticket = (connection.request.path if connection.request else "").partition("ticket=")[2]
        with self._changed:
            if ticket not in self._tickets:
                connection.close(code=4001, reason="unknown ticket: call apps.connections.open")
                return
            self._tickets.discard(ticket)
        connection.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"},
                                    "debug_info": {"host": "fake-applink", "approximate_connection_time": 18060}}))
        with self._changed:
            self.connections.append(connection)
            self._changed.notify_all()
        try:
            for raw in connection:
                self._received(str(raw))
        except ConnectionClosed:
            pass

    def _received(self, raw: str) -> None:
        message = json.loads(raw)
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        with self._changed:
            if envelope_id in self._sent:
                self.acks[envelope_id] = message
                self._changed.notify_all()
            else:
                self.unknown.append(raw)

    @contextmanager
    def serving(self) -> Iterator[Self]:
        server: Server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self.port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True, name="fake-socket-mode")
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            thread.join(timeout=10)
