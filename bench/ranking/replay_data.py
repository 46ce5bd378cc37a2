"""Extract a small replay data file from a real GitOps repository's history (run by a person).

Reads the first-parent history of a local clone or bare mirror, ending at a pinned commit, and
writes `bench/ranking/replay/<owner>-<name>.json`: each commit's time and subject (no author:
every commit is written as "Dev"), which earlier commit of the window it reverts, and the YAML
and JSON files it changed under the deploy root, as line edits against their previous text; plus
the text those files had before the window. Nothing else of the repository is kept.
`bench/ranking/replay.py` rebuilds the history from it; `replay/README.md` lists the sources.

Usage: python bench/ranking/replay_data.py GIT_DIR --repository OWNER/NAME --pin SHA --licence SPDX
           --apps 'kubernetes/apps/*/*' [--shared 'kubernetes/flux/**' ...] [--exclude GLOB ...]
           [--commits 300] [--max-file-bytes 32000] [--suffix -2]
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.replay_history import DATA_DIR, Edit, apply_edits
from bot.domain.changes import matches_any

SUFFIXES = (".yaml", ".yml", ".json")
_REVERTS_SHA = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
_REVERT_SUBJECT = re.compile(r'^Revert "(.+)"$')
_REQUEST = re.compile(r"\s*\((?:#|!)\d+\)$")  # the "(#123)" a squash merge appends


def git(git_dir: Path, *args: str) -> str:
    """One git command's output, as text."""
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True,
                          text=True, encoding="utf-8", errors="replace").stdout


def kept(path: str, root: str, exclude: tuple[str, ...]) -> bool:
    """Only deployable data files under the deploy root, less the excluded globs, are kept."""
    return path.startswith(root) and path.lower().endswith(SUFFIXES) and not matches_any(path, exclude)


def changed_files(git_dir: Path, *, parent: str, sha: str, root: str, exclude: tuple[str, ...]) -> dict[
        str, str | None]:
    """The kept files a commit changed against its first parent: new text, or None where deleted."""
    listing = git(git_dir, "diff-tree", "-r", "--no-renames", "--name-status", "-z", parent, sha, "--", root)
    fields = [f for f in listing.split("\0") if f]
    files: dict[str, str | None] = {}
    for status, path in zip(fields[::2], fields[1::2], strict=True):
        if kept(path, root, exclude):
            files[path] = None if status == "D" else git(git_dir, "show", f"{sha}:{path}")
    return files


def reverted_index(message: str, subject: str, *, window: list[dict[str, Any]]) -> int | None:
    """Which earlier commit of the window a revert undoes: the sha it names, else the quoted subject."""
    named = _REVERTS_SHA.search(message)
    if named:
        for index, commit in enumerate(window):
            if commit["sha"].startswith(named.group(1)):
                return index
    quoted = _REVERT_SUBJECT.match(_REQUEST.sub("", subject))
    if quoted:
        wanted = _REQUEST.sub("", quoted.group(1))
        for index in range(len(window) - 1, -1, -1):
            if _REQUEST.sub("", window[index]["subject"]) == wanted:
                return index
    return None


def line_edits(old: str, new: str) -> list[Edit]:
    """The line edits that turn `old` into `new`: [first, past, replacement lines] each, last first."""
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    edits: list[Edit] = [(i1, i2, after[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]
    return edits[::-1]  # applied last first, the earlier line numbers stay right


def deltas(base: dict[str, str], window: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The window's commits with each changed file as line edits against its previous text."""
    text = dict(base)
    out = []
    for commit in window:
        files: dict[str, Any] = {}
        for path, new in commit["files"].items():
            old = text.get(path)
            files[path] = new if old is None or new is None else line_edits(old, new)
            assert new is None or old is None or apply_edits(old, files[path]) == new, path
            if new is None:
                text.pop(path, None)
            else:
                text[path] = new
        out.append({**commit, "sha": commit["sha"][:12], "files": files})
    return out


def extract(git_dir: Path, *, pin: str, commits: int, root: str, max_bytes: int,
            exclude: tuple[str, ...]) -> tuple[
        dict[str, str], list[dict[str, Any]]]:
    """The window's base texts and its commits, oldest first."""
    shas = git(git_dir, "rev-list", "--first-parent", f"--max-count={commits + 1}", pin).split()[::-1]
    base, rest = shas[0], shas[1:]
    window: list[dict[str, Any]] = []
    touched: set[str] = set()
    for parent, sha in zip([base, *rest], rest, strict=False):
        time, message = git(git_dir, "log", "-1", "--format=%ct%x00%B", sha).split("\0", 1)
        subject = message.splitlines()[0].strip() if message.strip() else ""
        files = changed_files(git_dir, parent=parent, sha=sha, root=root, exclude=exclude)
        touched.update(files)
        window.append({"sha": sha, "time": int(time), "subject": subject,
                       "reverts": reverted_index(message, subject, window=window), "files": files})
    present = set(git(git_dir, "ls-tree", "-r", "--name-only", base, "--", root).splitlines())
    texts = {path: git(git_dir, "show", f"{base}:{path}") for path in sorted(touched & present)}
    # Generated files (dashboards, rule mixins) would be most of the data: a file that is ever
    # larger than the limit is left out of the whole window.
    large = {p for p, t in texts.items() if len(t) > max_bytes}
    large |= {p for c in window for p, t in c["files"].items() if t is not None and len(t) > max_bytes}
    for commit in window:
        commit["files"] = {p: t for p, t in commit["files"].items() if p not in large}
    return {p: t for p, t in texts.items() if p not in large}, window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dir", type=Path, help="a clone's .git or a bare mirror")
    parser.add_argument("--repository", required=True, help="owner/name on GitHub")
    parser.add_argument("--pin", required=True, help="the commit the window ends at")
    parser.add_argument("--licence", required=True, help="the repository's licence (SPDX id)")
    parser.add_argument("--apps", required=True, help="glob of an application folder, e.g. kubernetes/apps/*/*")
    parser.add_argument("--shared", action="append", default=[], help="glob of paths every service shares")
    parser.add_argument("--root", default="kubernetes/", help="the deploy root; files elsewhere are dropped")
    parser.add_argument("--exclude", action="append", default=[], help="glob of generated files to leave out")
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--suffix", default="", help="for a second window of a repository: -2, say")
    parser.add_argument("--max-file-bytes", type=int, default=32_000, help="larger files are left out")
    args = parser.parse_args()
    pin = git(args.git_dir, "rev-parse", args.pin).strip()
    base, window = extract(args.git_dir, pin=pin, commits=args.commits, root=args.root,
                           max_bytes=args.max_file_bytes, exclude=tuple(args.exclude))
    data = {"repository": args.repository, "pinned": pin, "licence": args.licence, "root": args.root,
            "apps": args.apps, "shared": args.shared, "excluded": args.exclude, "base": base,
            "commits": deltas(base, window)}
    DATA_DIR.mkdir(exist_ok=True)
    out = DATA_DIR / f"{args.repository.replace('/', '-')}{args.suffix}.json"
    out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    reverts = sum(c["reverts"] is not None for c in window)
    print(f"{out}: {len(window)} commits, {reverts} reverts, {out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
