"""Parsing `git log --raw --numstat -z` output into changes."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.domain.changes import Change, FileChange, pr_number_from

# Header fields, separated by \x1f; each record starts with \x1e.
LOG_FORMAT = "%x1e%H%x1f%P%x1f%an <%ae>%x1f%cI%x1f%s"
LOG_ARGS = ["--first-parent", "--diff-merges=first-parent", "-M", "--raw", "--numstat", "-z",
            "--no-abbrev", "--no-color", f"--format={LOG_FORMAT}"]


def parse_log(output: bytes, *, repo: str, image_bumps: set[str]) -> list[Change]:
    """Changes from `git log` run with LOG_ARGS, newest first as git prints them."""
    changes = []
    for record in output.decode("utf-8", errors="replace").split("\x1e")[1:]:
        header, _, body = record.partition("\x00")
        sha, parents, author, committed, subject = header.split("\x1f", 4)
        files, additions, deletions = _parse_body(body.split("\x00"))
        changes.append(Change(
            repo=repo, sha=sha, parents=tuple(parents.split()), author=author,
            committed_at=datetime.fromisoformat(committed).astimezone(UTC),
            subject=subject.strip(), files=tuple(files), additions=additions, deletions=deletions,
            pr_number=pr_number_from(subject), image_bump=sha in image_bumps,
        ))
    return changes


def _parse_body(tokens: list[str]) -> tuple[list[FileChange], int, int]:
    files: list[FileChange] = []
    additions = deletions = 0
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip("\n")
        i += 1
        if token.startswith(":"):
            status = token.split()[-1]
            if status[0] in "RC":
                files.append(FileChange(path=tokens[i + 1], status=status[0], old_path=tokens[i]))
                i += 2
            else:
                files.append(FileChange(path=tokens[i], status=status[0]))
                i += 1
        elif "\t" in token:
            added, deleted, path = token.split("\t", 2)
            additions += int(added) if added.isdigit() else 0  # "-" for binary files
            deletions += int(deleted) if deleted.isdigit() else 0
            if path == "":
                i += 2  # a rename: old and new names follow
    return files, additions, deletions
