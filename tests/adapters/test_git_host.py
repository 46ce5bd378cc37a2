"""A Git host that does not answer, against real git over loopback HTTP: one fetch per repository
whatever the callers, the mirror answers while the fetch waits, Backout's own connect deadline,
and the circuit that leaves a silent host alone for a while and closes when it answers again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.git.host import Deadlines, HostNotAnswering
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from tests.conftest import need_binary
from tests.fakes.git_host import DeafListener, GitHost, wait_until
from tests.gitrepos import BASE, Remote

SLOW = Deadlines(connect=60, stall=60, pause=60)  # nothing here runs into these


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def host(tmp_path: Path) -> Iterator[GitHost]:
    need_binary("git")
    served = GitHost(tmp_path / "served")
    yield served
    served.close()


def served_remote(tmp_path: Path, host: GitHost) -> Remote:
    remote = Remote(tmp_path / "served" / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": "replicas: 1\n"})
    return remote


def mirrors_of(tmp_path: Path, url: str, deadlines: Deadlines, ticks: Ticks | None = None) -> GitMirrors:
    spec = RepoSpec(name="gitops", url=url, branch="main", runner=GitRunner(timeout=120))
    return GitMirrors({"gitops": spec}, mirror_dir=tmp_path / "mirrors", deadlines=deadlines, monotonic=ticks)


def test_concurrent_callers_share_one_fetch_and_read_the_mirror_meanwhile(tmp_path: Path, host: GitHost) -> None:
    """Five callers while the host holds the fetch: one fetch runs, each caller gets the mirror's
    commits at once with the reason; when the host answers, the fetch lands for all of them."""
    remote = served_remote(tmp_path, host)
    git = mirrors_of(tmp_path, host.url("gitops/remote.git"), SLOW)
    first = git.refresh("gitops", since_sha=None, not_before=BASE)
    host.stall()
    newer = remote.commit("checkout 2", {"apps/checkout/deploy.yaml": "replicas: 2\n"})
    answers = []

    def call() -> None:
        answers.append(git.refresh("gitops", since_sha=None, not_before=BASE, wait=0))

    callers = [threading.Thread(target=call) for _ in range(5)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert len(answers) == 5
    assert {a.head for a in answers} == {first.head}
    assert all("still running" in (a.pending or "") for a in answers)
    wait_until(lambda: host.held == 1, "the fetch to reach the host")
    assert git.fetches.started == 2  # the warm-up fetch, then one for all five
    assert git.fetches.in_flight("gitops")
    host.answer()
    landed = git.refresh("gitops", since_sha=first.head, not_before=BASE)  # joins it if still in flight
    assert landed.head == newer
    assert landed.pending is None
    assert git.fetches.started in (2, 3)  # joined the one in flight, or a fresh one after it landed


def test_a_host_that_accepts_no_connection_fails_within_the_connect_deadline(tmp_path: Path) -> None:
    """git has no connect timeout: Backout's own check gives up after `connect`, not `git.timeout`,
    opens the circuit and says since when; the mirror still answers."""
    need_binary("git")
    deaf = DeafListener()
    try:
        git = mirrors_of(tmp_path, deaf.url("gitops.git"), Deadlines(connect=0.5, stall=60, pause=60))
        with pytest.raises(HostNotAnswering, match=r"not answering since \d\d:\d\d UTC .*accepted no connection"):
            git.remote_branch("gitops", "main")
        assert "not answering since" in git.outages()["gitops"]
    finally:
        deaf.close()


def test_the_circuit_opens_after_a_stall_and_closes_when_the_host_answers(tmp_path: Path, host: GitHost) -> None:
    """A fetch stalled past `stall` opens the circuit: later calls do not reach the host until
    `pause` has passed; then one tries again, and the host's answer closes the circuit."""
    remote = served_remote(tmp_path, host)
    ticks = Ticks()
    git = mirrors_of(tmp_path, host.url("gitops/remote.git"), Deadlines(connect=60, stall=1, pause=30), ticks)
    first = git.refresh("gitops", since_sha=None, not_before=BASE)
    host.stall()
    stalled = git.refresh("gitops", since_sha=first.head, not_before=BASE)
    assert "not answering since" in (stalled.pending or "")
    assert "too slow" in (stalled.pending or "")
    assert stalled.head == first.head
    asked = host.requests
    again = git.refresh("gitops", since_sha=first.head, not_before=BASE)
    assert "not answering since" in (again.pending or "")
    assert host.requests == asked  # the circuit is open: the host was left alone
    host.answer()
    newer = remote.commit("checkout 2", {"apps/checkout/deploy.yaml": "replicas: 2\n"})
    ticks.now += 31
    back = git.refresh("gitops", since_sha=first.head, not_before=BASE)
    assert (back.head, back.pending, git.outages()) == (newer, None, {})
