"""A pull (merge) request's head in the mirror: fetched from where the forge keeps it
(`refs/pull/N/head`, `refs/merge-requests/N/head`: forks' heads included) within the host's
deadlines, then diffed by real git from its merge-base with the base branch."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import structlog

from bot.adapters.git.host import HostGuard
from bot.adapters.git.parse import DIFF_ARGS, Blobs, parse_diff
from bot.adapters.git.runner import GitRunner
from bot.domain.changes import reverted_shas
from bot.domain.errors import InvalidInput
from bot.domain.ports import RequestDiff

log = structlog.get_logger(__name__)

MAX_PATCH = 256 * 1024  # bytes of the diff read for the revert-safety flags (git is stopped there)
CONTENT_BUDGET = 16 * 1024 * 1024  # bytes of file contents read to classify a request's manifests
MAX_BLOB = 1024 * 1024  # a manifest larger than this is not read: its effect is unknown, its path still counts
MAX_COMMITS = 250  # commits of a request whose messages are read for the reverts they make (GitHub lists 250)
_REF = re.compile(r"^refs/(pull|merge-requests)/\d{1,10}/head$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,250}$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def request_diff(runner: GitRunner, guard: HostGuard, *, url: str, mirror: Path, ref: str, sha: str | None,
                 base: str, blobs: Blobs) -> RequestDiff | None:
    """Fetch the request's head and base, then `sha`'s files against merge-base(base, sha) (None: the
    head as fetched); None when `sha` is no longer the request's head (a later push, whose own
    delivery follows, or a force-push)."""
    safe_base = bool(_BRANCH.match(base)) and ".." not in base and not base.startswith("-")
    if not _REF.match(ref) or (sha is not None and not _SHA.match(sha)) or not safe_base:
        raise InvalidInput(f"not a request head Backout fetches: {ref} {(sha or '')[:12]} onto {base[:80]}")
    local = "refs/backout/" + ref.removeprefix("refs/")
    base_ref = f"refs/backout/base/{base}"
    guard.call(runner, ["fetch", "--quiet", "--no-tags", "origin", f"+{ref}:{local}", f"+refs/heads/{base}:{base_ref}"],
               url=url, cwd=mirror)
    tip = runner.text(["rev-parse", local], cwd=mirror)
    if sha is not None and tip != sha:
        return None
    sha = tip
    found = runner.run(["merge-base", base_ref, sha], cwd=mirror, check=False)
    start = found.stdout.decode().strip() if found.returncode == 0 else ""
    if not start:  # unrelated histories: the whole tree is the change
        start = runner.text(["hash-object", "-t", "tree", "/dev/null"], cwd=mirror)
    raw = runner.run(["diff", *DIFF_ARGS, start, sha], cwd=mirror).stdout
    patch, more = runner.head(["diff", "--no-color", "-M", "--unified=3", start, sha], limit=MAX_PATCH, cwd=mirror)
    messages = runner.run(["log", "-z", "--format=%B", f"--max-count={MAX_COMMITS}", f"{start}..{sha}"], cwd=mirror,
                          check=False).stdout.decode("utf-8", errors="replace")
    reverts = tuple(dict.fromkeys(s for message in messages.split("\x00") for s in reverted_shas(message)))
    budget = _Budget(runner, mirror, blobs)
    files = parse_diff(raw, blobs=budget.read)
    if more or budget.left_out:
        log.info("review_risk.request_cut", sha=sha[:12], files=len(files), patch_cut=more,
                 contents_not_read=budget.left_out,
                 detail=f"flags read from the first {MAX_PATCH // 1024} KB of the diff; files whose contents were "
                        "not read count by path, with an unknown effect")
    return RequestDiff(head_sha=sha, files=files, patch=patch.decode("utf-8", errors="replace"), reverts=reverts)


class _Budget:
    """File contents read within CONTENT_BUDGET, none larger than MAX_BLOB (sizes asked of git first,
    so nothing larger is ever held); the rest are left out, and counted."""

    def __init__(self, runner: GitRunner, mirror: Path, blobs: Blobs) -> None:
        self._runner, self._mirror, self._blobs = runner, mirror, blobs
        self.left_out = 0

    def read(self, ids: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(ids)
        listed = self._runner.run(["cat-file", "--batch-check"], cwd=self._mirror,
                                  stdin="".join(f"{oid}\n" for oid in wanted).encode()).stdout.decode().splitlines()
        kept, spent = [], 0
        for line in listed:  # "<oid> <type> <size>", or "<oid> missing"
            oid, _, size = [*line.split(), "", "", ""][:3]
            if size.isdigit() and int(size) <= MAX_BLOB and spent + int(size) <= CONTENT_BUDGET:
                kept.append(oid)
                spent += int(size)
        self.left_out = len(wanted) - len(kept)
        return self._blobs(kept) if kept else {}
