"""A pull (merge) request's head read by real git within bounds: a request of 20,000 files and a
30 MB manifest holds no more than the content budget of file contents and the patch bound in
memory; what is cut stays counted, by path, as a change of unknown effect."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import requests as request_heads
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.domain.changes import Effect
from tests.gitrepos import Remote, huge_request

FILES = 20_000
BIG = 30  # MB


class Recording(GitRunner):
    """A GitRunner that notes the largest output any one git call handed back."""

    largest: list[int] = [0]  # noqa: RUF012 - shared by the frozen dataclass's instances in one test

    def run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        done = super().run(args, **kwargs)
        Recording.largest[0] = max(Recording.largest[0], len(done.stdout))
        return done


@pytest.fixture
def huge(tmp_path: Path) -> tuple[Remote, str]:
    """A request adding 20,000 manifests and a 30 MB one, pushed to refs/pull/1/head."""
    return huge_request(tmp_path, files=FILES, megabytes=BIG)


def test_a_huge_request_is_read_within_the_bounds(tmp_path: Path, huge: tuple[Remote, str]) -> None:
    """No git output past the bounds is held; every file is listed; the uncut ones are classified."""
    remote, sha = huge
    spec = RepoSpec(name="gitops", url=str(remote.bare), branch="main", runner=Recording(timeout=120))
    found = GitMirrors({"gitops": spec}, mirror_dir=tmp_path / "mirrors")
    Recording.largest[0] = 0
    diff = found.request_diff("gitops", ref="refs/pull/1/head", sha=sha, base="main")
    assert diff is not None
    assert len(diff.files) == FILES + 1
    limit = request_heads.CONTENT_BUDGET + request_heads.MAX_PATCH
    assert Recording.largest[0] < limit, f"one git call handed back {Recording.largest[0]} bytes"
    assert len(diff.patch) <= request_heads.MAX_PATCH
    big = next(f for f in diff.files if f.path == "apps/checkout/bundle.yaml")
    assert big.effects == (Effect.OTHER,)  # too large to read: unknown effect, still compared by path
    classified = [f for f in diff.files if f.effects != (Effect.OTHER,)]
    assert len(classified) > 1000  # within the budget, manifests are read and classified
