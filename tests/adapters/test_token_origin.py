"""A repository token never leaves its origin: https only (unless chosen), no redirects followed."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.adapters.git.runner import GitCommandError, GitRunner
from bot.config import RepoSettings

SECRET = "ghs_canary_token_1234567890"


def test_a_token_over_plain_http_is_refused_unless_chosen() -> None:
    """http:// with a token: a config error that says what to do; allowed with allow_insecure_http."""
    with pytest.raises(ValidationError, match="a token is sent only over https"):
        RepoSettings(name="gitops", url="http://git.internal/gitops.git", token=SECRET)
    RepoSettings(name="gitops", url="http://git.internal/gitops.git", token=SECRET, allow_insecure_http=True)
    RepoSettings(name="gitops", url="https://git.example.com/gitops.git", token=SECRET)
    RepoSettings(name="gitops", url="http://git.internal/gitops.git")  # no token, nothing to leak


@contextmanager
def server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_redirect_to_another_origin_never_receives_the_token(tmp_path: Path) -> None:
    """The origin answers 302 to another port: git does not follow, the other side sees nothing."""
    seen: list[str] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(str(self.headers.get("Authorization")))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    with server(Elsewhere) as other:
        class Origin(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{other}{self.path}")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        with server(Origin) as origin:
            runner = GitRunner(token=SECRET, timeout=20)
            with pytest.raises(GitCommandError) as failure:
                runner.run(["ls-remote", f"http://127.0.0.1:{origin}/gitops.git"], cwd=tmp_path)
    assert seen == []
    assert SECRET not in str(failure.value)
