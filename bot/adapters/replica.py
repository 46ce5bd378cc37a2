"""This process's replica name, kept on disk: a process started again (after a crash, an OOM kill,
a container restart on the same volume) has the name it had, so it can free at once what its
previous run held. The file stays locked (flock) while the process lives: two live processes
never share a name, and the kernel drops the lock of a process that dies, however it dies."""

from __future__ import annotations

import fcntl
import re
import secrets
import socket
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger(__name__)

FILE_NAME = "replica"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ReplicaName:
    """A name held for this process's life; `close()` lets the next process take it."""

    def __init__(self, name: str, handle: IO[str] | None = None) -> None:
        self.name = name
        self._handle = handle

    @property
    def kept(self) -> bool:
        """False: a name for this run only (the folder is not writable, or its name is in use)."""
        return self._handle is not None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None


def take_name(folder: Path) -> ReplicaName:
    """The name kept in `folder` (made on first use), locked for this process. When another live
    process holds it, or the folder cannot be written, a name for this run only: its claims then
    lapse after their lease if it dies, as before."""
    path = folder / FILE_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+", encoding="utf-8")
    except OSError as exc:
        log.warning("replica.name_not_kept", path=str(path), error=str(exc),
                    detail="make the folder writable to free a crashed run's work at once on restart")
        return ReplicaName(new_name())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        log.warning("replica.name_in_use", path=str(path),
                    detail="another live process keeps its name here: give each replica its own data folder "
                           "(the parent of git.mirror_dir)")
        return ReplicaName(new_name())
    handle.seek(0)
    name = handle.read().strip()
    if not _NAME.fullmatch(name):
        name = new_name()
        handle.seek(0)
        handle.truncate()
        handle.write(name + "\n")
        handle.flush()
    return ReplicaName(name, handle)


def new_name() -> str:
    """The host's name (a pod's name in Kubernetes) and a random part, readable in /readyz."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80].strip("-.") or "backout"
    return f"{host}-{secrets.token_hex(4)}"
