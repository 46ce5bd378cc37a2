"""A Git host over smart HTTP on loopback (`git http-backend`), that can stop answering: while
stalled it accepts each request and holds it, unanswered, until the host answers again (then it
serves it, like a proxy that stalled). And a listener that accepts nothing (its backlog full), like
a host that drops packets."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOLD_AT_MOST = 120.0  # seconds a stalled request is held if the test never lets the host answer


class GitHost:
    """Serves the bare repositories under `root` at http://127.0.0.1:PORT/<name>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests = 0  # requests received, answered or not
        self.held = 0  # requests held unanswered right now
        self._answering = threading.Event()
        self._answering.set()
        self._count = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host._serve(self)

            def do_POST(self) -> None:
                host._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def stall(self) -> None:
        self._answering.clear()

    def answer(self) -> None:
        self._answering.set()

    def close(self) -> None:
        self._answering.set()
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        with self._count:
            self.requests += 1
            self.held += 1
        self._answering.wait(HOLD_AT_MOST)
        with self._count:
            self.held -= 1
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        path, _, query = request.path.partition("?")
        env = {**os.environ, "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": request.command, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": request.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1",
               "HTTP_GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
               "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", "")}
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60,
                              check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = next((int(line.split()[1]) for line in lines if line.lower().startswith("status:")), 200)
        request.send_response(status)
        for line in lines:
            name, _, value = line.partition(":")
            if value and name.lower() != "status":
                request.send_header(name.strip(), value.strip())
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


class DeafListener:
    """A loopback port that completes no new connection: its backlog is full and never accepted."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers = []
        for _ in range(3):  # the kernel queues backlog + 1; the rest wait in SYN_SENT
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll for something the test waits for (not a measure of speed: the bound is generous)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.02)
