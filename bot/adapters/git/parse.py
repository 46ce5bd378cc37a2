"""Parsing `git log --raw --numstat -z` output into changes, each file classified."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.adapters.git.classify import classify_file, needs_content
from bot.domain.changes import Change, Effect, FileChange, ImageBump, Revert, pr_reference, reverted_shas

# Header fields, separated by \x1f; each record starts with \x1e.
LOG_FORMAT = "%x1e%H%x1f%P%x1f%an <%ae>%x1f%cI%x1f%s%x1f%b"
LOG_ARGS = ["--first-parent", "--diff-merges=first-parent", "-M", "--raw", "--numstat", "-z",
            "--no-abbrev", "--no-color", f"--format={LOG_FORMAT}"]
# Every commit on the branch (merged branches included) whose message names a reverted commit.
REVERT_LOG_ARGS = ["-z", "--no-color", "--format=%H%x1f%cI%x1f%B", "-E",
                   "--grep=This reverts commit [0-9a-f]{7}", "--grep=Backout-Reverts:",
                   "--grep=backout/INC-[0-9]+/revert-"]
DIFF_ARGS = ["-M", "--raw", "--numstat", "-z", "--no-abbrev", "--no-color"]
NO_BLOB = "0" * 40

Blobs = Callable[[Iterable[str]], dict[str, bytes]]


@dataclass(frozen=True)
class _RawFile:
    path: str
    status: str
    old_path: str | None
    old_blob: str
    new_blob: str


def parse_log(output: bytes, *, repo: str, blobs: Blobs | None = None) -> list[Change]:
    """Changes from `git log` run with LOG_ARGS, newest first as git prints them. `blobs` reads
    file contents by object id, so YAML and JSON edits are classified from their parsed data;
    without it those files are classified by path only."""
    parsed = []
    for record in output.decode("utf-8", errors="replace").split("\x1e")[1:]:
        header, _, body = record.partition("\x00")
        parsed.append((header.split("\x1f", 5), *_parse_body(body.split("\x00"))))
    wanted = {blob for _, raw, _ in parsed for file in raw if needs_content(file.path)
              for blob in (file.old_blob, file.new_blob) if blob != NO_BLOB}
    contents = blobs(wanted) if blobs and wanted else {}
    changes = []
    for (sha, parents, author, committed, subject, message), raw, numstat in parsed:
        files = [_classified(file, numstat.get(file.path, (0, 0)), contents) for file in raw]
        reference = pr_reference(subject, message)
        changes.append(Change(
            repo=repo, sha=sha, parents=tuple(parents.split()), author=author,
            committed_at=datetime.fromisoformat(committed).astimezone(UTC),
            subject=subject.strip(), files=tuple(files),
            additions=sum(f.added for f in files), deletions=sum(f.deleted for f in files),
            pr_number=int(reference[1:]) if reference else None, pr_ref=reference,
            image_bump=any(e in (Effect.IMAGE, Effect.VERSION) for f in files for e in f.effects),
        ))
    return changes


def parse_diff(output: bytes, *, blobs: Blobs | None = None) -> tuple[FileChange, ...]:
    """The files of `git diff` run with DIFF_ARGS (a pull request's head against its merge-base),
    each classified as a commit's are."""
    raw, numstat = _parse_body(output.decode("utf-8", errors="replace").split("\x00"))
    wanted = {blob for file in raw if needs_content(file.path)
              for blob in (file.old_blob, file.new_blob) if blob != NO_BLOB}
    contents = blobs(wanted) if blobs and wanted else {}
    return tuple(_classified(file, numstat.get(file.path, (0, 0)), contents) for file in raw)


HYDRATOR_METADATA = "hydrator.metadata"


def dry_sha_of(metadata: bytes) -> str | None:
    """The dry commit an Argo CD hydrated commit renders, from its `hydrator.metadata` JSON
    (`drySha`; some tools write `drySHA`)."""
    try:
        data = json.loads(metadata)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    value = next((v for k, v in data.items() if isinstance(k, str) and k.lower() == "drysha"), None)
    return value.lower() if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{7,64}", value) else None


def parse_reverts(output: bytes, *, repo: str) -> list[Revert]:
    """Revert records from `git log` run with REVERT_LOG_ARGS."""
    found = []
    for record in output.decode("utf-8", errors="replace").split("\x00"):
        if record.count("\x1f") < 2:
            continue
        sha, committed, message = record.strip("\n").split("\x1f", 2)
        at = datetime.fromisoformat(committed).astimezone(UTC)
        found += [Revert(repo=repo, target=target, by_sha=sha, at=at)
                  for target in reverted_shas(message) if not sha.startswith(target)]
    return found


def _classified(file: _RawFile, lines: tuple[int, int], contents: dict[str, bytes]) -> FileChange:
    old = None if file.old_blob == NO_BLOB else contents.get(file.old_blob)
    new = None if file.new_blob == NO_BLOB else contents.get(file.new_blob)
    effects: tuple[Effect, ...] = (Effect.OTHER,)  # content not read: effect unknown
    notes: tuple[str, ...] = ()
    bumps: tuple[ImageBump, ...] = ()
    if not needs_content(file.path) or ((old is None) == (file.old_blob == NO_BLOB)
                                        and (new is None) == (file.new_blob == NO_BLOB)):
        effects, notes, bumps = classify_file(file.path, old, new)
    return FileChange(path=file.path, status=file.status, old_path=file.old_path, added=lines[0],
                      deleted=lines[1], effects=effects, notes=notes, bumps=bumps)


def _parse_body(tokens: list[str]) -> tuple[list[_RawFile], dict[str, tuple[int, int]]]:
    files: list[_RawFile] = []
    numstat: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip("\n")
        i += 1
        if token.startswith(":"):
            fields = token.split()
            status, old_blob, new_blob = fields[-1], fields[2], fields[3]
            if status[0] in "RC":
                files.append(_RawFile(tokens[i + 1], status[0], tokens[i], old_blob, new_blob))
                i += 2
            else:
                files.append(_RawFile(tokens[i], status[0], None, old_blob, new_blob))
                i += 1
        elif "\t" in token:
            added, deleted, path = token.split("\t", 2)
            if path == "":
                path = tokens[i + 1]  # a rename: old and new names follow
                i += 2
            # "-" for binary files
            numstat[path] = (int(added) if added.isdigit() else 0, int(deleted) if deleted.isdigit() else 0)
    return files, numstat
