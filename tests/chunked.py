"""A sender that streams a large chunked body and stops as soon as the server answers: what a
server that refuses early reads, and what one that reads it all, show apart (tests and bench)."""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

CHUNK = 64 * 1024


@dataclass
class Streamed:
    status: int
    sent: int  # bytes of body the sender got out before the answer came
    answer: bytes  # the start of the answer: status line, headers, the body's first bytes


def stream_chunked(base_url: str, path: str, headers: dict[str, str], *, total: int) -> Streamed:
    """POST `total` bytes as a chunked body over one connection, stopping at the first answer byte."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=120) as conn:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": url.netloc, "Transfer-Encoding": "chunked",
                                                    "Content-Type": "application/json", **headers}.items())
        conn.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        chunk, sent = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n", 0
        try:
            while sent < total and not select.select([conn], [], [], 0)[0]:
                conn.sendall(chunk)
                sent += CHUNK
            if sent >= total:
                conn.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: the answer is in the socket's buffer
        answer = conn.recv(4096)
    return Streamed(status=int(answer.split(b" ", 2)[1]), sent=sent, answer=answer)
