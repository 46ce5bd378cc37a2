"""Calls to a Git host: Backout's own deadlines on each one, and a circuit that stops calling a host
that timed out for a while (the mirrors serve meanwhile)."""

from __future__ import annotations

import math
import re
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from bot.adapters.git.runner import GitCommandError, GitRunner
from bot.domain.errors import TransientError

log = structlog.get_logger(__name__)

_PORTS = {"http": 80, "https": 443, "git": 9418}
# What git, curl, ssh or Backout say when a host took too long to answer.
_TIMED_OUT = re.compile(r"Operation too slow|timed out|Timeout|took longer than", re.IGNORECASE)


@dataclass(frozen=True)
class Deadlines:
    """How long a Git host may take (seconds): to accept a connection; to send nothing at all in the
    middle of a call; and how long Backout stops calling it after either ran out."""

    connect: float = 10.0
    stall: float = 30.0
    pause: float = 60.0


class HostNotAnswering(TransientError):
    """The host timed out and its circuit is open: Backout does not call it until `retry_at`."""

    def __init__(self, host: str, *, since: datetime, reason: str) -> None:
        super().__init__(f"Git host {host} not answering since {since:%H:%M} UTC ({reason}); "
                         "Backout tries it again shortly and works from its mirror meanwhile")
        self.host = host
        self.since = since


def host_of(url: str) -> str | None:
    """`host:port` of a remote reached over the network; None for a local path or file:// URL."""
    if "://" not in url:
        scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!//)", url)  # user@host:path, ssh's short form
        return f"{scp.group(1)}:22" if scp and not Path(url).exists() else None
    parts = urlsplit(url)
    if parts.scheme == "file" or not parts.hostname:
        return None
    port = parts.port or _PORTS.get(parts.scheme, 22)
    return f"{parts.hostname}:{port}"


def _probe_target(url: str) -> tuple[str, int] | None:
    """Where a connection must succeed for an http(s) or git:// call: the proxy the environment
    names for it (as curl would use), else the host itself. ssh has its own ConnectTimeout."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "git") or not parts.hostname:
        return None
    proxy = urllib.request.getproxies().get(parts.scheme) if parts.scheme != "git" else None
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        found = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if found.hostname:
            return found.hostname, found.port or (1080 if found.scheme.startswith("socks") else 80)
    return parts.hostname, parts.port or _PORTS[parts.scheme]


class HostGuard:
    """One Git host. Each call first connects within `connect` (git has low-speed limits, no
    connect timeout: a host that drops packets would hold a fetch for the whole `git.timeout`),
    then runs git with a stall limit. A call that times out opens the circuit: calls fail at once
    with HostNotAnswering for `pause`; then one call tries again and an answer closes it."""

    def __init__(self, name: str, deadlines: Deadlines, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.name = name
        self._deadlines = deadlines
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._reason = ""
        self._retry_at = 0.0

    def outage(self) -> HostNotAnswering | None:
        """Why the host counts as down (open or trying again), or None when it answers."""
        with self._lock:
            if self._since is None:
                return None
            return HostNotAnswering(self.name, since=self._since, reason=self._reason)

    def call(self, runner: GitRunner, args: Sequence[str], *, url: str,
             cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run `git ARGS` against the host at `url`, within Backout's deadlines."""
        self._check()
        try:
            self._connect(url)
            config, env = self._stall_limits(url)
            done = runner.run([*config, *args], cwd=cwd, env=env)
        except (GitCommandError, TransientError) as exc:
            stderr = exc.stderr if isinstance(exc, GitCommandError) else str(exc)
            if _TIMED_OUT.search(stderr):
                raise self._opened(_brief(stderr)) from exc
            raise
        self._answered()
        return done

    def _check(self) -> None:
        with self._lock:
            if self._since is None or self._monotonic() >= self._retry_at:
                return  # closed, or time to try again
            raise HostNotAnswering(self.name, since=self._since, reason=self._reason)

    def _connect(self, url: str) -> None:
        target = _probe_target(url)
        if target is None:
            return
        try:
            socket.create_connection(target, timeout=self._deadlines.connect).close()
        except TimeoutError as exc:
            raise TransientError(f"{target[0]}:{target[1]} accepted no connection within "
                                 f"{self._deadlines.connect:g}s: connection timed out") from exc
        except OSError:
            return  # refused or unresolvable: git says so itself, at once

    def _stall_limits(self, url: str) -> tuple[list[str], dict[str, str]]:
        """A call that receives nothing for `stall` seconds is abandoned: curl's low-speed limit for
        http(s); ssh's own connect timeout and keep-alives for ssh (git:// has neither: `git.timeout`)."""
        stall, connect = max(1, math.ceil(self._deadlines.stall)), max(1, math.ceil(self._deadlines.connect))
        if url.startswith(("http://", "https://")):
            return ["-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={stall}"], {}
        if host_of(url) is not None and not url.startswith("git://"):
            return [], {"GIT_SSH_COMMAND": f"ssh -o BatchMode=yes -o ConnectTimeout={connect} "
                                           f"-o ServerAliveInterval={max(1, stall // 3)} -o ServerAliveCountMax=3"}
        return [], {}

    def _opened(self, reason: str) -> HostNotAnswering:
        with self._lock:
            first = self._since is None
            since = self._since = self._since or self._wall()
            self._reason = reason
            self._retry_at = self._monotonic() + self._deadlines.pause
        if first:
            log.warning("git.host_not_answering", host=self.name, reason=reason,
                        retry_in=self._deadlines.pause)
        return HostNotAnswering(self.name, since=since, reason=reason)

    def _answered(self) -> None:
        with self._lock:
            was = self._since
            self._since = None
        if was is not None:
            log.info("git.host_answering_again", host=self.name, down_since=was.isoformat())


def _brief(stderr: str) -> str:
    line = next((ln for ln in stderr.splitlines() if _TIMED_OUT.search(ln)), stderr)
    return line.strip().removeprefix("fatal: ")[:200]


_UNREACHABLE = re.compile(
    r"Could not resolve host|Connection refused|Connection timed out|Operation timed out|timed out after"
    r"|Network is unreachable|No route to host|Could not read from remote repository|unable to access"
    r"|does not appear to be a git repository|The requested URL returned error: 50[0234]|early EOF"
    r"|Connection reset|SSL_ERROR_SYSCALL|gnutls_handshake|Temporary failure in name resolution", re.IGNORECASE)


def unreachable(stderr: str) -> str | None:
    """Why the Git host did not answer (down, unreachable, 5xx), or None for any other failure
    (a refused push, bad credentials: those are not retried by waiting)."""
    if re.search(r"Authentication failed|Permission denied|403|401|rejected", stderr):
        return None
    match = _UNREACHABLE.search(stderr)
    if match is None:
        return None
    line = next((ln for ln in stderr.splitlines() if match.group(0) in ln), match.group(0))
    return line.strip().removeprefix("fatal: ")[:200]


def remote_reason(stderr: str) -> str:
    """The remote's own words (hook output, protection rules), without git's noise."""
    lines = [line.removeprefix("remote: ").strip() for line in stderr.splitlines()
             if line.startswith("remote:") and line.removeprefix("remote:").strip()]
    if lines:
        return " / ".join(lines)[:300]
    return next((line for line in stderr.splitlines() if "rejected" in line or "error" in line),
                stderr[:300] or "no reason given")
