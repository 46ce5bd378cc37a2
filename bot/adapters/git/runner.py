"""Running the `git` CLI: credentials through the environment, bounded time, scrubbed output."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.domain.errors import TransientError, UpstreamError


class GitCommandError(UpstreamError):
    """A git command failed; the message holds its scrubbed stderr."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int = 1) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


@dataclass(frozen=True)
class GitRunner:
    """Runs git for one repository. The token, if any, goes in an http.extraHeader set through
    GIT_CONFIG_* variables: never in a URL, an argument list (visible in `ps`) or a log line."""

    token: str | None = None
    timeout: float = 120.0
    author_name: str = "Backout"
    author_email: str = "backout@localhost"

    def env(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("GIT_", "BACKOUT_"))
        }
        env.update({
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "GIT_AUTHOR_NAME": self.author_name,
            "GIT_AUTHOR_EMAIL": self.author_email,
            "GIT_COMMITTER_NAME": self.author_name,
            "GIT_COMMITTER_EMAIL": self.author_email,
            "GIT_CONFIG_NOSYSTEM": "1",
        })
        if self.token:
            basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            env.update({
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                # git sends extraHeader to wherever a redirect leads: with a token, follow none,
                # so it never reaches another origin.
                "GIT_CONFIG_KEY_1": "http.followRedirects",
                "GIT_CONFIG_VALUE_1": "false",
            })
        return env

    def scrub(self, text: str) -> str:
        if self.token:
            basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            text = text.replace(self.token, "***").replace(basic, "***")
        return text

    def run(self, args: Sequence[str], *, cwd: Path | None = None, check: bool = True,
            timeout: float | None = None, stdin: bytes | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run `git ARGS` (with `env` added to the environment); raise GitCommandError (or
        TransientError on a time-out) on failure."""
        environment = {**self.env(), **(env or {})}
        command = _command(args)
        try:
            if stdin is None:
                done = subprocess.run(["git", *args], cwd=cwd, env=environment, capture_output=True,
                                      timeout=timeout or self.timeout, check=False, stdin=subprocess.DEVNULL)
            else:
                done = subprocess.run(["git", *args], cwd=cwd, env=environment, capture_output=True,
                                      timeout=timeout or self.timeout, check=False, input=stdin)
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"git {command} took longer than {timeout or self.timeout:.0f}s") from exc
        except FileNotFoundError as exc:
            raise UpstreamError("the git command is not installed") from exc
        if check and done.returncode != 0:
            stderr = self.scrub(done.stderr.decode(errors="replace")).strip()
            brief = next((line for line in stderr.splitlines() if line.startswith(("fatal", "error"))),
                         stderr.splitlines()[-1] if stderr else f"exit {done.returncode}")
            raise GitCommandError(f"git {command} failed: {brief[:300]}", stderr=stderr,
                                  returncode=done.returncode)
        return done

    def head(self, args: Sequence[str], *, limit: int, cwd: Path | None = None) -> tuple[bytes, bool]:
        """The first `limit` bytes of `git ARGS`'s output, and whether there was more: git is stopped
        there, so a huge output is never held (a request's 50 MB diff). Within the runner's timeout."""
        expired = threading.Event()
        with subprocess.Popen(["git", *args], cwd=cwd, env=self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL) as process:
            def expire() -> None:
                expired.set()
                process.kill()

            timer = threading.Timer(self.timeout, expire)
            timer.start()
            try:
                assert process.stdout is not None  # stdout=PIPE
                out = process.stdout.read(limit + 1)
            finally:
                timer.cancel()
                process.kill()  # stops a git that has more to say; a finished one is gone already
        if expired.is_set():
            raise TransientError(f"git {_command(args)} took longer than {self.timeout:.0f}s")
        return out[:limit], len(out) > limit

    def text(self, args: Sequence[str], *, cwd: Path | None = None) -> str:
        return self.run(args, cwd=cwd).stdout.decode(errors="replace").strip()


def _command(args: Sequence[str]) -> str:
    """The git command in `args`, after any `-c name=value` settings."""
    at = 0
    while at < len(args) - 1 and args[at] == "-c":
        at += 2
    return args[at] if at < len(args) else "git"
