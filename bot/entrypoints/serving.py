"""Serving an ASGI app with uvicorn on a background thread (the demo, benches and test fakes)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_in_thread(asgi_app: Any, host: str = "127.0.0.1", *, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """Serve on a free loopback port; yields the base URL and stops the server on exit. With
    `tls` (a certificate file and its key file), over HTTPS."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    certificate, key = tls or (None, None)
    server = uvicorn.Server(uvicorn.Config(asgi_app, log_level="warning", access_log=False,
                                           ssl_certfile=certificate, ssl_keyfile=key))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            thread.join(0.02)
        yield f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
