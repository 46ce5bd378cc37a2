"""GitMirrors: a bare mirror per watched repository, reverts in temporary worktrees, pushes.

Calls to a Git host go through its HostGuard (deadlines, circuit) and fetches through the
FetchGate (one per repository at a time); reading the mirror never waits on the host."""

from __future__ import annotations

import fcntl
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from bot.adapters.git.fetching import FetchGate
from bot.adapters.git.host import Deadlines, HostGuard, HostNotAnswering, host_of, remote_reason, unreachable
from bot.adapters.git.listing import yaml_blobs
from bot.adapters.git.memo import Memo, is_full_sha
from bot.adapters.git.parse import HYDRATOR_METADATA, LOG_ARGS, REVERT_LOG_ARGS, dry_sha_of, parse_log, parse_reverts
from bot.adapters.git.pins import pin_revert
from bot.adapters.git.requests import request_diff
from bot.adapters.git.restore import stage_restore
from bot.adapters.git.runner import GitCommandError, GitRunner
from bot.domain.changes import Change
from bot.domain.errors import Conflict, InvalidInput, NotFound, TransientError, UpstreamError
from bot.domain.ports import FetchedChanges, RequestDiff, RevertResult

log = structlog.get_logger(__name__)

KEPT_PATCH = 64 * 1024  # characters: 256 kept patches stay within 16 MiB
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass(frozen=True)
class RepoSpec:
    name: str
    url: str
    branch: str
    runner: GitRunner


class GitMirrors:
    """Implements the GitRepos port with the git CLI. One lock per mirror for the work that changes
    it (reverts, branches), across threads and processes (flock); fetches have their own gate, so
    `serve` and a CLI rollback never fetch into the same mirror at once. One HostGuard per host:
    a host that stops answering is left alone for a while, for all the repositories it holds."""

    def __init__(self, repos: Mapping[str, RepoSpec], *, mirror_dir: Path, deadlines: Deadlines | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self._repos = dict(repos)
        self._dir = mirror_dir
        self._locks = {name: threading.Lock() for name in repos}
        guards: dict[str, HostGuard] = {}
        for name, spec in repos.items():
            host = host_of(spec.url)
            if (host or name) not in guards:
                guards[host or name] = HostGuard(host or spec.url, deadlines or Deadlines(),
                                                 monotonic=monotonic or time.monotonic)
        self._hosts = {name: guards[host_of(spec.url) or name] for name, spec in repos.items()}
        lock_wait = max((spec.runner.timeout for spec in repos.values()), default=120.0)
        self.fetches = FetchGate(mirror_dir, lock_wait=lock_wait)
        # A controller storm asks the same questions hundreds of times a second: a process each is too slow.
        self._commits: Memo[tuple[str, str], str | None] = Memo()
        self._histories: Memo[tuple[str, str, str | None, int], list[str]] = Memo()
        # Every incident that ranks a change asks for its patch (revert safety): kept, if small.
        self._patches: Memo[tuple[str, str], str] = Memo(size=256)

    def _spec(self, repo: str) -> RepoSpec:
        try:
            return self._repos[repo]
        except KeyError:
            raise NotFound(f"no repository named {repo!r} in the config") from None

    def branch(self, repo: str) -> str:
        return self._spec(repo).branch

    def path(self, repo: str) -> Path:
        return self._dir / f"{repo}.git"

    @contextmanager
    def _locked(self, repo: str) -> Iterator[RepoSpec]:
        spec = self._spec(repo)
        self._dir.mkdir(parents=True, exist_ok=True)
        with self._locks[repo], (self._dir / f"{repo}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield spec
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def outages(self) -> dict[str, str]:
        """The repositories whose Git host is not answering, each with since when and why."""
        found = {repo: guard.outage() for repo, guard in self._hosts.items()}
        return {repo: str(outage) for repo, outage in found.items() if outage is not None}

    def _fetched(self, spec: RepoSpec) -> str:
        """Fetch, or join the fetch in flight, and wait for it: the new tip."""
        return self.fetches.join(spec.name, lambda: self._fetch(spec))

    def _fetch(self, spec: RepoSpec) -> str:
        """Create the mirror if need be, fetch the watched branch, return its tip."""
        mirror = self.path(spec.name)
        if not (mirror / "HEAD").exists():
            log.info("git.mirror_creating", repo=spec.name, branch=spec.branch,
                     detail="first fetch of this repository; a large history takes a while")
            shutil.rmtree(mirror, ignore_errors=True)
            spec.runner.run(["init", "--bare", "--quiet", str(mirror)])
            spec.runner.run(["config", "remote.origin.url", spec.url], cwd=mirror)
        ref = f"refs/remotes/origin/{spec.branch}"
        # Tags too: image tags of an application repository name its releases.
        self._hosts[spec.name].call(spec.runner, ["fetch", "--quiet", "--no-tags", "--prune", "origin",
                                                  f"+refs/heads/{spec.branch}:{ref}", "+refs/tags/*:refs/tags/*"],
                                    url=spec.url, cwd=mirror)
        return spec.runner.text(["rev-parse", ref], cwd=mirror)

    def refresh(self, repo: str, *, since_sha: str | None, not_before: datetime,
                wait: float | None = None) -> FetchedChanges:
        spec = self._spec(repo)
        pending: str | None = None
        try:
            if wait is None:
                self._fetched(spec)
            elif self.fetches.fetch(repo, lambda: self._fetch(spec), wait=wait) is None:
                outage = self._hosts[repo].outage()  # trying again after a time-out
                pending = str(outage) if outage else (
                    f"the fetch of {repo} is still running after {wait:g}s; it goes on in the background")
        except HostNotAnswering as exc:
            pending = str(exc)
        head = self._mirror_tip(spec, pending)
        if since_sha == head:
            return FetchedChanges(head=head, changes=(), pending=pending)
        complete = True
        if since_sha and self._is_ancestor(spec, since_sha, head):
            selection = [f"{since_sha}..{head}"]
        else:
            # A new mirror, or history rewritten by a force-push: read the import window only.
            complete = since_sha is None
            selection = [head, f"--since={not_before.isoformat()}"]
        mirror = self.path(repo)
        output = spec.runner.run(["log", *LOG_ARGS, *selection], cwd=mirror).stdout
        changes = self._with_dry_shas(spec, parse_log(output, repo=repo, blobs=lambda ids: self._blobs(spec, ids)))
        reverts = parse_reverts(spec.runner.run(["log", *REVERT_LOG_ARGS, *selection], cwd=mirror).stdout,
                                repo=repo)
        log.info("git.refreshed", repo=repo, head=head[:12], new=len(changes), reverts=len(reverts),
                 pending=pending)
        return FetchedChanges(head=head, changes=tuple(changes), complete=complete, reverts=tuple(reverts),
                              pending=pending)

    def _mirror_tip(self, spec: RepoSpec, pending: str | None) -> str:
        """The watched branch's tip in the mirror (what the last fetch brought)."""
        mirror = self.path(spec.name)
        ref = f"refs/remotes/origin/{spec.branch}"
        done = spec.runner.run(["rev-parse", "--verify", "--quiet", ref], cwd=mirror, check=False) \
            if (mirror / "HEAD").exists() else None
        if done is None or done.returncode != 0:
            raise TransientError(f"no mirror of {spec.name} yet: {pending or 'its first fetch has not finished'}")
        return done.stdout.decode().strip()

    def _with_dry_shas(self, spec: RepoSpec, changes: list[Change]) -> list[Change]:
        """Argo CD's source hydrator writes `hydrator.metadata` (JSON naming the dry commit) in
        each hydrated commit: remember which dry commit each one renders."""
        wanted = {c.sha: f"{c.sha}:{f.path}" for c in changes for f in c.files
                  if f.path.rsplit("/", 1)[-1] == HYDRATOR_METADATA and f.status != "D"}
        if not wanted:
            return changes
        contents = self._blobs(spec, wanted.values())
        return [c.model_copy(update={"dry_sha": dry_sha_of(contents.get(wanted[c.sha], b""))})
                if c.sha in wanted else c for c in changes]

    def _blobs(self, spec: RepoSpec, ids: Iterable[str]) -> dict[str, bytes]:
        """File contents by object id (or `<commit>:<path>`), all in one `git cat-file --batch`;
        what is missing is left out."""
        wanted = sorted(ids)
        if not wanted:
            return {}
        out = spec.runner.run(["cat-file", "--batch"], cwd=self.path(spec.name),
                              stdin="".join(f"{oid}\n" for oid in wanted).encode()).stdout
        found: dict[str, bytes] = {}
        at = 0
        for name in wanted:  # one answer per request, in order
            if at >= len(out):
                break
            end = out.index(b"\n", at)
            header = out[at:end].split()
            at = end + 1
            if len(header) < 3 or header[-1] == b"missing":
                continue  # "<name> missing" (or ambiguous)
            size = int(header[2])
            found[name] = out[at:at + size]
            at += size + 1
        return found

    def _is_ancestor(self, spec: RepoSpec, older: str, newer: str) -> bool:
        done = spec.runner.run(["merge-base", "--is-ancestor", older, newer],
                               cwd=self.path(spec.name), check=False)
        return done.returncode == 0

    def resolve(self, repo: str, rev: str) -> str | None:
        if is_full_sha(rev):  # found once, there for good; not found may be fetched later
            return self._commits.get((repo, rev), lambda: self._resolve(repo, rev), keep=bool)
        return self._resolve(repo, rev)

    def _resolve(self, repo: str, rev: str) -> str | None:
        spec = self._spec(repo)
        mirror = self.path(repo)
        if not re.fullmatch(r"[A-Za-z0-9._/+-]{1,250}", rev) or rev.startswith("-") or not (mirror / "HEAD").exists():
            return None
        done = spec.runner.run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=mirror, check=False)
        found = done.stdout.decode().strip()
        return found if done.returncode == 0 and found else None

    def first_parent(self, repo: str, *, new: str, old: str | None = None, limit: int = 500) -> list[str]:
        if is_full_sha(new) and (old is None or is_full_sha(old)):
            return list(self._histories.get((repo, new, old, limit),
                                            lambda: self._first_parent(repo, new=new, old=old, limit=limit)))
        return self._first_parent(repo, new=new, old=old, limit=limit)

    def _first_parent(self, repo: str, *, new: str, old: str | None, limit: int) -> list[str]:
        spec = self._spec(repo)
        mirror = self.path(repo)
        if old is not None and not self._is_ancestor(spec, old, new):
            return [new]  # the object went back, or history was rewritten: only `new` is known to apply
        selection = [f"{old}..{new}"] if old is not None else [new]
        listed = spec.runner.text(["rev-list", "--first-parent", f"--max-count={limit}", *selection], cwd=mirror)
        return listed.split()

    def log_between(self, repo: str, *, old: str, new: str, limit: int = 200) -> list[Change]:
        spec = self._spec(repo)
        output = spec.runner.run(["log", *LOG_ARGS, f"--max-count={limit}", f"{old}..{new}"],
                                 cwd=self.path(repo)).stdout
        return parse_log(output, repo=repo, blobs=lambda ids: self._blobs(spec, ids))

    def remote_branch(self, repo: str, branch: str) -> str | None:
        spec = self._spec(repo)
        _check_branch(branch)
        mirror = self.path(repo)
        cwd = mirror if mirror.exists() else None
        target = "origin" if cwd else spec.url
        done = self._hosts[repo].call(spec.runner, ["ls-remote", "--heads", target, f"refs/heads/{branch}"],
                                      url=spec.url, cwd=cwd)
        listed = done.stdout.decode(errors="replace").strip()
        return listed.split()[0] if listed else None

    def push_revert(self, repo: str, *, sha: str, branch: str, message: str) -> RevertResult:
        def stage(spec: RepoSpec, tree: Path) -> tuple[str, ...]:
            parents = spec.runner.text(["rev-list", "--parents", "-n", "1", sha], cwd=self.path(repo)).split()[1:]
            mainline = ["-m", "1"] if len(parents) > 1 else []
            done = spec.runner.run(["revert", "--no-commit", *mainline, sha], cwd=tree, check=False)
            if done.returncode == 0:
                if not spec.runner.text(["diff", "--cached", "--name-only"], cwd=tree):
                    raise Conflict(f"reverting {sha[:7]} changes nothing on {spec.branch}: "
                                   "it may already be reverted")
                return ()
            conflicts = spec.runner.text(["diff", "--name-only", "--diff-filter=U"], cwd=tree)
            if not conflicts:
                raise GitCommandError(f"git revert of {sha[:7]} failed: "
                                      f"{spec.runner.scrub(done.stderr.decode()).strip()[:300]}")
            spec.runner.run(["revert", "--abort"], cwd=tree, check=False)
            return tuple(conflicts.splitlines())

        return self._commit_and_push(repo, branch=branch, message=message, stage=stage)

    def push_restore(self, repo: str, *, good_sha: str, paths: Sequence[str], exclude: Sequence[str],
                     branch: str, message: str) -> RevertResult:
        def stage(spec: RepoSpec, tree: Path) -> tuple[str, ...]:
            if not stage_restore(spec.runner, tree, good=good_sha, paths=tuple(paths), exclude=tuple(exclude)):
                raise Conflict(f"the paths {', '.join(paths)} are on {spec.branch} as they were at {good_sha[:7]}: "
                               "there is nothing to restore")
            return ()

        return self._commit_and_push(repo, branch=branch, message=message, stage=stage)

    def _commit_and_push(self, repo: str, *, branch: str, message: str,
                         stage: Callable[[RepoSpec, Path], tuple[str, ...]]) -> RevertResult:
        """Cut `branch` from the watched branch's tip, `stage` the change in a temporary worktree
        (it returns the conflicting files, or raises), pin it against image automation, commit and
        push. A branch already on the remote is adopted as it is; while the host is down the commit
        is prepared on the mirror's last known tip and `waiting` says why."""
        _check_branch(branch)
        with self._locked(repo) as spec:
            down: str | None = None
            try:
                self._fetched(spec)
                existing = self.remote_branch(repo, branch)
            except (GitCommandError, TransientError) as exc:
                down = unreachable(exc.stderr) if isinstance(exc, GitCommandError) else str(exc)
                if down is None or not (self.path(repo) / "HEAD").exists():
                    raise
                existing = None  # the host is down: prepare on the mirror's last known tip
            if existing:
                return RevertResult(branch=branch, pushed_sha=existing, adopted=True)
            with self._worktree(spec) as tree:
                conflicts = stage(spec, tree)
                if conflicts:
                    return RevertResult(branch=branch, pushed_sha=None, conflicts=conflicts)
                pinned, unpinned = pin_revert(spec.runner, tree)
                if pinned:
                    message += "\n\nPinned against image automation (undo once the fix ships):\n" + "\n".join(
                        f"- {pin.what}" for pin in pinned)
                spec.runner.run(["commit", "--quiet", "--no-verify", "-m", message], cwd=tree)
                new_sha = spec.runner.text(["rev-parse", "HEAD"], cwd=tree)
                if down is None:
                    down = self._push_or_down(spec, tree, branch)
            pins = tuple(p.what for p in pinned)
            if down is not None:
                log.warning("git.host_unreachable", repo=repo, branch=branch, reason=down)
                return RevertResult(branch=branch, pushed_sha=None, waiting=down, prepared_sha=new_sha,
                                    pinned=pins, unpinned=tuple(unpinned))
            return RevertResult(branch=branch, pushed_sha=new_sha, pinned=pins, unpinned=tuple(unpinned))

    def _push_or_down(self, spec: RepoSpec, tree: Path, branch: str) -> str | None:
        """Push HEAD as `branch`: None when pushed, why when the host does not answer; a refusal raises."""
        try:
            self._push(spec, tree, f"HEAD:refs/heads/{branch}", branch)
        except TransientError as exc:  # the push hung
            return str(exc)
        except UpstreamError as exc:
            stderr = exc.__cause__.stderr if isinstance(exc.__cause__, GitCommandError) else ""
            down = unreachable(stderr)
            if down is None:
                raise
            return down
        return None

    def push_branch(self, repo: str, *, branch: str) -> str:
        _check_branch(branch)
        with self._locked(repo) as spec:
            head = self._fetched(spec)
            existing = self.remote_branch(repo, branch)
            if existing:
                return existing
            self._push(spec, self.path(repo), f"{head}:refs/heads/{branch}", branch)
            return head

    def branch_log(self, repo: str, branch: str) -> list[Change] | None:
        _check_branch(branch)
        with self._locked(repo) as spec:
            if branch == spec.branch:
                raise InvalidInput(f"{branch} is the watched branch of {repo}, not a branch of Backout's")
            if not (self.path(repo) / "HEAD").exists():
                self._fetched(spec)
            if self.remote_branch(repo, branch) is None:
                return None
            ref = f"refs/remotes/origin/{branch}"
            self._hosts[repo].call(spec.runner, ["fetch", "--quiet", "--no-tags", "origin",
                                                 f"+refs/heads/{branch}:{ref}"], url=spec.url, cwd=self.path(repo))
        return self.log_between(repo, old=f"refs/remotes/origin/{spec.branch}", new=ref)

    def push_files(self, repo: str, *, branch: str, files: Mapping[str, bytes], message: str) -> str:
        _check_branch(branch)
        for path in files:
            parts = Path(path).parts
            if not parts or Path(path).is_absolute() or ".." in parts or parts[0] == ".git":
                raise InvalidInput(f"{path!r} is not a path inside the repository")
        with self._locked(repo) as spec:
            self._fetched(spec)
            existing = self.remote_branch(repo, branch)
            if existing:
                return existing
            with self._worktree(spec) as tree:
                for path, content in files.items():
                    (tree / path).parent.mkdir(parents=True, exist_ok=True)
                    (tree / path).write_bytes(content)
                    spec.runner.run(["add", "--", path], cwd=tree)
                spec.runner.run(["commit", "--quiet", "--no-verify", "-m", message], cwd=tree)
                self._push(spec, tree, f"HEAD:refs/heads/{branch}", branch)
                return spec.runner.text(["rev-parse", "HEAD"], cwd=tree)

    def manifests(self, repo: str) -> dict[str, str]:
        with self._locked(repo) as spec:
            tip = self._fetched(spec)
            listed = spec.runner.run(["ls-tree", "-r", "-l", "-z", tip], cwd=self.path(repo)).stdout
            paths, truncated = yaml_blobs(listed)
            if truncated:
                log.warning("git.manifests_truncated", repo=repo, files=len(paths),
                            detail="a freeze sees only the first YAML files of this repository")
            blobs = self._blobs(spec, set(paths.values()))
        return {path: blobs[oid].decode("utf-8", "replace") for path, oid in paths.items() if oid in blobs}

    def request_diff(self, repo: str, *, ref: str, sha: str | None, base: str) -> RequestDiff | None:
        """Implements RequestHeads (bot/adapters/git/requests.py)."""
        spec = self._spec(repo)
        if not (self.path(repo) / "HEAD").exists():
            self._fetched(spec)  # creates the mirror
        return request_diff(spec.runner, self._hosts[repo], url=spec.url, mirror=self.path(repo), ref=ref, sha=sha,
                            base=base, blobs=lambda ids: self._blobs(spec, ids))

    def patch(self, repo: str, sha: str) -> str:
        if not is_full_sha(sha):
            return self._read_patch(repo, sha)
        return self._patches.get((repo, sha), lambda: self._read_patch(repo, sha),
                                 keep=lambda text: len(text) <= KEPT_PATCH)

    def _read_patch(self, repo: str, sha: str) -> str:
        with self._locked(repo) as spec:
            output = spec.runner.run(["show", "--first-parent", "--diff-merges=first-parent", "--format=",
                                      "--no-color", "--unified=3", sha], cwd=self.path(repo)).stdout
        return output[:1_000_000].decode(errors="replace")

    def _push(self, spec: RepoSpec, cwd: Path, refspec: str, branch: str) -> None:
        try:
            self._hosts[spec.name].call(spec.runner, ["push", "--quiet", "--porcelain", "origin", refspec],
                                        url=spec.url, cwd=cwd)
        except GitCommandError as exc:
            raise UpstreamError(f"the remote of {spec.name} refused branch {branch}: "
                                f"{remote_reason(exc.stderr)}") from exc

    @contextmanager
    def _worktree(self, spec: RepoSpec) -> Iterator[Path]:
        mirror = self.path(spec.name)
        tree = Path(tempfile.mkdtemp(prefix=f"backout-{spec.name}-"))
        spec.runner.run(["worktree", "add", "--quiet", "--detach", str(tree),
                         f"refs/remotes/origin/{spec.branch}"], cwd=mirror)
        try:
            yield tree
        finally:
            spec.runner.run(["worktree", "remove", "--force", str(tree)], cwd=mirror, check=False)
            shutil.rmtree(tree, ignore_errors=True)
            spec.runner.run(["worktree", "prune"], cwd=mirror, check=False)


def _check_branch(branch: str) -> None:
    if not _BRANCH.match(branch) or ".." in branch or branch.endswith((".lock", "/")):
        raise UpstreamError(f"not a safe branch name: {branch!r}")
