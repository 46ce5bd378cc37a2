"""Real Git repositories made by tests: a bare remote and a working clone to commit from."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner

# Commits are dated from two days before the run, never from a fixed day: the code under test
# compares them with the wall clock (lookbacks, import windows).
BASE = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)


def git(*args: str, cwd: Path, when: datetime | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Dev One", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev One", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


class Remote:
    """`remote.git` (bare, what Backout mirrors) and `work/` (a clone people commit in)."""

    def __init__(self, root: Path, branch: str = "main", *, start: datetime = BASE) -> None:
        self.root = root
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.branch = branch
        root.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(self.bare), cwd=root)
        git("init", "--quiet", f"--initial-branch={branch}", str(self.work), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        self.clock = start

    def commit(self, message: str, files: dict[str, str | None], *, minutes: float = 10,
               push: bool = True) -> str:
        """Write (or delete, with None) files and commit, `minutes` after the previous commit."""
        self.clock += timedelta(minutes=minutes)
        for name, content in files.items():
            path = self.work / name
            if content is None:
                git("rm", "--quiet", name, cwd=self.work)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            git("add", name, cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work, when=self.clock)
        if push:
            self.push()
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, *extra: str) -> None:
        git("push", "--quiet", *extra, "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.work)

    def tree(self, ref: str) -> str:
        return git("rev-parse", f"{ref}^{{tree}}", cwd=self.bare)

    def branches(self) -> list[str]:
        out = git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare)
        return out.splitlines()


def merge_in_bare(bare: Path, *, head: str, base: str, message: str) -> str | None:
    """Merge branch `head` into `base` in a bare repository as a forge does (a merge commit, made
    with real git); the merge commit's sha, or None when the branches conflict."""
    base_sha = git("rev-parse", f"refs/heads/{base}", cwd=bare)
    head_sha = git("rev-parse", f"refs/heads/{head}", cwd=bare)
    try:
        tree = git("merge-tree", "--write-tree", base_sha, head_sha, cwd=bare).splitlines()[0]
    except AssertionError:
        return None  # conflicts
    merged = git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m", message, cwd=bare)
    git("update-ref", f"refs/heads/{base}", merged, base_sha, cwd=bare)
    return merged


def mirrors(tmp: Path, remotes: dict[str, Remote], *, token: str | None = None) -> GitMirrors:
    specs = {name: RepoSpec(name=name, url=str(remote.bare), branch=remote.branch,
                            runner=GitRunner(token=token, timeout=30))
             for name, remote in remotes.items()}
    return GitMirrors(specs, mirror_dir=tmp / "mirrors")


REVERT_BRANCH = "backout/INC-1/revert-abc1234"


def remote_with_revert_branch(root: Path) -> Remote:
    """A one-commit remote that already has a revert branch, for opening pull (merge) requests."""
    remote = Remote(root / "gitops")
    remote.commit("init", {"a.txt": "1\n"})
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{REVERT_BRANCH}", cwd=remote.work)
    return remote


def huge_request(root: Path, *, files: int, megabytes: int) -> tuple[Remote, str]:
    """A request adding `files` small manifests and one of `megabytes` MB, pushed to refs/pull/1/head."""
    remote = Remote(root / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: checkout:1\n"})
    many = remote.work / "apps" / "many"
    many.mkdir(parents=True)
    for n in range(files):
        (many / f"cm-{n}.yaml").write_text(f"kind: ConfigMap\nmetadata: {{name: cm-{n}}}\ndata: {{n: x{n}}}\n")
    line = "  key: " + "x" * 100 + "\n"
    bundle = remote.work / "apps" / "checkout" / "bundle.yaml"
    bundle.write_text("kind: ConfigMap\ndata:\n" + line * (megabytes * 1024 * 1024 // len(line)))
    git("add", "-A", cwd=remote.work)
    git("commit", "--quiet", "-m", "everything at once", cwd=remote.work)
    git("push", "--quiet", "origin", "HEAD:refs/pull/1/head", cwd=remote.work)
    return remote, git("rev-parse", "HEAD", cwd=remote.work)
