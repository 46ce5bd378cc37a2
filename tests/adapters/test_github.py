"""GitHubForge with PyGithub against the fake GitHub over HTTP: one PR whatever fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.github import AppliedFrom, GitHubForge, make_client
from bot.domain.errors import TransientError, UpstreamError
from tests.fakes.github import FakeGitHub
from tests.gitrepos import REVERT_BRANCH, Remote, remote_with_revert_branch

BRANCH = REVERT_BRANCH


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return remote_with_revert_branch(tmp_path)


@pytest.fixture
def fake(remote: Remote) -> Iterator[FakeGitHub]:
    with FakeGitHub(remote.bare).serving() as server:
        yield server


def forge(fake: FakeGitHub, **applied: AppliedFrom) -> GitHubForge:
    client = make_client(api_url=fake.base_url, token="ghs_test", throttle=False, timeout=2)
    return GitHubForge(client, repos={"gitops": "acme/gitops"}, applied=applied, max_wait=2, backoff=0.02)


def open_pr(target: GitHubForge, **extra: object):  # type: ignore[no-untyped-def]
    return target.open_pull_request("gitops", head=BRANCH, base="main", title="Revert x (INC-1)",
                                    body="why", draft=False, labels=["backout", "incident", "revert"],
                                    reviewers=extra.get("reviewers", ["alice", "acme/oncall"]))


def test_a_pull_request_with_labels_and_reviewers(fake: FakeGitHub) -> None:
    """One POST for the PR, one for the labels (created if missing), one for the reviewers."""
    ref = open_pr(forge(fake))
    assert (ref.number, ref.adopted) == (1, False)
    pull = fake.pulls[1]
    assert [label["name"] for label in pull["labels"]] == ["backout", "incident", "revert"]
    assert pull["requested_reviewers"] == [{"login": "alice"}]
    assert pull["requested_teams"] == [{"slug": "oncall"}]
    assert fake.writes() == 3


def test_an_existing_pull_request_is_adopted(fake: FakeGitHub) -> None:
    """422 "already exists": the PR for that head is found and adopted, not duplicated."""
    first = open_pr(forge(fake))
    second = open_pr(forge(fake))
    assert second.adopted
    assert second.number == first.number
    assert len(fake.pulls) == 1


def test_a_502_after_the_create_succeeded_is_adopted(fake: FakeGitHub) -> None:
    """The create worked but its answer was lost: the retry gets 422 and adopts the PR."""
    fake.fail("POST", r"/pulls$", 502, after_write=True)
    ref = open_pr(forge(fake))
    assert ref.adopted
    assert len(fake.pulls) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(fake: FakeGitHub, status: int) -> None:
    """5xx twice, then success: one PR."""
    fake.fail("POST", r"/pulls$", status, times=2)
    assert open_pr(forge(fake)).number == 1
    assert len(fake.pulls) == 1


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limits_wait_for_retry_after(fake: FakeGitHub, status: int) -> None:
    """A secondary rate limit with Retry-After is waited out, then the call succeeds."""
    fake.fail("POST", r"/pulls$", status, headers={"Retry-After": "1"})
    started = time.monotonic()
    assert open_pr(forge(fake)).number == 1
    assert time.monotonic() - started >= 1.0


def test_a_slow_answer_times_out_and_is_retried(fake: FakeGitHub) -> None:
    """Slower than the client's timeout: retried; the slow first create then gets adopted."""
    fake.fail("POST", r"/pulls$", 0, delay=2.5)
    ref = open_pr(forge(fake))
    assert len(fake.pulls) == 1
    assert ref.number == 1


def test_persisting_failures_end_with_a_transient_error(fake: FakeGitHub) -> None:
    """Bounded: after the attempts, a clear error that says to try again; no PR."""
    fake.fail("POST", r"/pulls$", 503, times=100)
    with pytest.raises(TransientError, match="try again later"):
        open_pr(forge(fake))
    assert fake.calls[("POST", "/repos/acme/gitops/pulls")] == 5


def test_client_errors_are_not_retried(fake: FakeGitHub) -> None:
    """A 4xx other than a rate limit fails at once with GitHub's message."""
    with pytest.raises(UpstreamError, match="head no-such-branch invalid"):
        forge(fake).open_pull_request("gitops", head="no-such-branch", base="main", title="t", body="b",
                                      draft=False, labels=[], reviewers=[])
    assert fake.calls[("POST", "/repos/acme/gitops/pulls")] == 1


def test_polling_an_unchanged_pull_request_costs_no_rate_limit(fake: FakeGitHub) -> None:
    """After the first read, polls are conditional: 304s do not count against the limit."""
    target = forge(fake)
    ref = open_pr(target, reviewers=[])
    assert target.pull_request_status("gitops", ref.number).state == "open"
    spent = fake.rate_remaining
    for _ in range(5):
        assert target.pull_request_status("gitops", ref.number).checks == "none"
    assert fake.rate_remaining == spent
    fake.merge(ref.number, by="octocat")
    merged = target.pull_request_status("gitops", ref.number)
    assert (merged.state, merged.merged_by) == ("merged", "octocat")


def test_failing_checks_are_reported(fake: FakeGitHub) -> None:
    """The combined status of the PR's head shows failing checks."""
    target = forge(fake)
    ref = open_pr(target, reviewers=[])
    fake.set_status(fake.pulls[ref.number]["head"]["sha"], "failure")
    assert target.pull_request_status("gitops", ref.number).checks == "failure"


def test_applied_times_from_deployments_and_statuses(fake: FakeGitHub) -> None:
    """The first successful deployment (or status context) for a sha is when it was applied."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    fake.add_deployment("a" * 40, "production", "success", at)
    fake.add_deployment("b" * 40, "production", "failure", at)
    fake.add_deployment("a" * 40, "staging", "success", at - timedelta(hours=1))
    target = forge(fake, gitops=AppliedFrom(kind="deployments", environment="production"))
    found = target.applied_at("gitops", ["a" * 40, "b" * 40], since=at - timedelta(days=1))
    assert found == {"a" * 40: at}
    reads = fake.reads()
    target.applied_at("gitops", ["a" * 40, "b" * 40], since=at - timedelta(days=1))
    assert fake.reads() - reads <= 2, "warm: the list is a 304 and known deployments are not re-read"
    fake.set_status("c" * 40, "success", context="flux/kustomization")
    fake.set_check_run("d" * 40, "flux/kustomization", "completed", "success")
    by_status = forge(fake, gitops=AppliedFrom(kind="status", context="flux/kustomization"))
    assert sorted(by_status.applied_at("gitops", ["c" * 40, "d" * 40], since=at)) == ["c" * 40, "d" * 40]


def test_an_exhausted_primary_limit_waits_for_the_reset(fake: FakeGitHub) -> None:
    """403 with x-ratelimit-remaining 0: wait until x-ratelimit-reset, then go on."""
    reset = str(int(time.time()) + 2)
    fake.fail("POST", r"/pulls$", 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
              message="API rate limit exceeded")
    started = time.monotonic()
    assert open_pr(forge(fake), reviewers=[]).number == 1
    assert time.monotonic() - started >= 0.9


def test_writes_are_paced_one_second_apart_in_production(fake: FakeGitHub) -> None:
    """With the production client, the PR's three writes take at least two seconds."""
    client = make_client(api_url=fake.base_url, token="ghs_test", throttle=True)
    target = GitHubForge(client, repos={"gitops": "acme/gitops"}, applied={})
    started = time.monotonic()
    open_pr(target)
    assert time.monotonic() - started >= 2.0
    assert fake.writes() == 3


def test_check_runs_count_like_statuses(fake: FakeGitHub) -> None:
    """GitHub Actions reports check runs: in progress is pending, a failed one fails the PR's checks."""
    target = forge(fake)
    ref = open_pr(target, reviewers=[])
    sha = fake.pulls[ref.number]["head"]["sha"]
    fake.set_check_run(sha, "ci/build", "in_progress")
    assert target.pull_request_status("gitops", ref.number).checks == "pending"
    fake.set_check_run(sha, "ci/build", "completed", "success")
    assert target.pull_request_status("gitops", ref.number).checks == "success"
    fake.set_check_run(sha, "ci/lint", "completed", "failure")
    assert target.pull_request_status("gitops", ref.number).checks == "failure"


def test_a_comment_is_posted_once_edited_and_adopted_after_a_lost_answer(fake: FakeGitHub) -> None:
    """Create (the answer lost: 502 after the write), the retry adopts it by its marker; edit in place;
    a comment deleted since is found again by its marker; a refused edit is an error."""
    target = forge(fake)
    fake.fail("POST", r"/issues/7/comments$", 502, after_write=True)
    first = target.comment("gitops", 7, body="<!-- m -->\nhello", marker="<!-- m -->", comment_id=None)
    assert [c["id"] for c in fake.comments] == [first]
    assert target.comment("gitops", 7, body="<!-- m -->\nagain", marker="<!-- m -->", comment_id=first) == first
    assert [c["body"] for c in fake.comments] == ["<!-- m -->\nagain"]
    # a comment gone (deleted by a person: 404) is found again by its marker, not an error
    assert target.comment("gitops", 7, body="<!-- m -->\nthird", marker="<!-- m -->", comment_id=999) == first
    assert [c["body"] for c in fake.comments] == ["<!-- m -->\nthird"]
    fake.fail("PATCH", r"/issues/comments/", 403)
    with pytest.raises(UpstreamError):
        target.comment("gitops", 7, body="x", marker="m", comment_id=first)
