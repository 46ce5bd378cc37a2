"""A huge pull request read for review risk: 20,000 added manifests and a 50 MB one, pushed to
refs/pull/1/head of a real repository and read by Backout's mirror as the review queue reads it.
Prints the files listed and classified, the patch kept, this process's peak memory (RSS) and CPU
time, and git's CPU time (the mirror's first fetch included): figures that load moves little
(memory, CPU; wall time is printed too).
Usage: python bench/review_risk_huge.py [files] [MB]
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.domain.changes import Effect
from tests.gitrepos import huge_request


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    megabytes = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        remote, sha = huge_request(Path(tmp), files=files, megabytes=megabytes)
        mirrors = GitMirrors({"gitops": RepoSpec(name="gitops", url=str(remote.bare), branch="main",
                                                 runner=GitRunner(timeout=300))}, mirror_dir=Path(tmp) / "mirrors")
        before_self = resource.getrusage(resource.RUSAGE_SELF)
        before_git = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss_before = before_self.ru_maxrss
        started = time.monotonic()
        diff = mirrors.request_diff("gitops", ref="refs/pull/1/head", sha=sha, base="main")
        wall = time.monotonic() - started
        after_self = resource.getrusage(resource.RUSAGE_SELF)
        after_git = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert diff is not None
    unknown = sum(1 for f in diff.files if f.effects == (Effect.OTHER,))
    cpu = (after_self.ru_utime + after_self.ru_stime) - (before_self.ru_utime + before_self.ru_stime)
    git_cpu = (after_git.ru_utime + after_git.ru_stime) - (before_git.ru_utime + before_git.ru_stime)
    print(f"request: {files} files + one of {megabytes} MB; load average {os.getloadavg()[0]:.2f}")
    print(f"files listed {len(diff.files)}, effect unknown (content not read) {unknown}, "
          f"patch kept {len(diff.patch) // 1024} KB")
    print(f"peak RSS of this process: {after_self.ru_maxrss // 1024} MB (before reading the request: "
          f"{rss_before // 1024} MB)")
    print(f"CPU: this process {cpu:.2f} s, git {git_cpu:.2f} s; wall {wall:.2f} s")


if __name__ == "__main__":
    main()
