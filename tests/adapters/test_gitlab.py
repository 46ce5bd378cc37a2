"""GitLabForge with python-gitlab against the fake GitLab over HTTP: one merge request whatever fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.adapters.gitlab import GitLabForge, make_client
from bot.domain.errors import TransientError, UpstreamError
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import BASE, REVERT_BRANCH, Remote, remote_with_revert_branch

BRANCH = REVERT_BRANCH


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return remote_with_revert_branch(tmp_path)


@pytest.fixture
def fake(remote: Remote) -> Iterator[FakeGitLab]:
    with FakeGitLab(remote.bare).serving() as server:
        yield server


def forge(fake: FakeGitLab, project: str = "acme/platform/gitops", **environments: str) -> GitLabForge:
    client = make_client(url=fake.base_url, token="glpat-test", timeout=2)
    return GitLabForge(client, projects={"gitops": project}, environments=environments, max_wait=2, backoff=0.02)


def open_mr(target: GitLabForge, **extra: object):  # type: ignore[no-untyped-def]
    return target.open_pull_request("gitops", head=BRANCH, base="main", title="Revert x (INC-1)",
                                    body="why", draft=bool(extra.get("draft", False)),
                                    labels=["backout", "incident", "revert"],
                                    reviewers=extra.get("reviewers", ["alice", "@bob"]))


def test_a_merge_request_with_labels_and_reviewers(fake: FakeGitLab) -> None:
    """One POST: labels (created on use) and reviewers (usernames looked up once) ride along."""
    ref = open_mr(forge(fake))
    assert (ref.number, ref.adopted) == (1, False)
    assert ref.url == "https://gitlab.example/acme/platform/gitops/-/merge_requests/1"
    merge_request = fake.merge_requests[1]
    assert merge_request["labels"] == ["backout", "incident", "revert"]
    assert fake.labels == {"backout", "incident", "revert"}
    assert [r["username"] for r in merge_request["reviewers"]] == ["alice", "bob"]
    assert (merge_request["title"], merge_request["draft"], merge_request["target_branch"]) == (
        "Revert x (INC-1)", False, "main")
    assert fake.writes() == 1


def test_an_unknown_reviewer_is_skipped_not_fatal(fake: FakeGitLab) -> None:
    open_mr(forge(fake), reviewers=["alice", "nobody-here"])
    assert [r["username"] for r in fake.merge_requests[1]["reviewers"]] == ["alice"]


def test_a_draft_is_a_draft_title(fake: FakeGitLab) -> None:
    """GitLab marks drafts by title: the incident branch's merge request is one."""
    open_mr(forge(fake), draft=True)
    assert fake.merge_requests[1]["draft"]
    assert fake.merge_requests[1]["title"].startswith("Draft: ")


def test_an_existing_merge_request_is_adopted(fake: FakeGitLab) -> None:
    """409 "already exists": the open one for that branch is adopted, its labels made sure."""
    first = open_mr(forge(fake))
    fake.merge_requests[1]["labels"] = []
    second = open_mr(forge(fake))
    assert second.adopted
    assert second.number == first.number
    assert len(fake.merge_requests) == 1
    assert fake.merge_requests[1]["labels"] == ["backout", "incident", "revert"]


def test_a_502_after_the_create_succeeded_is_adopted(fake: FakeGitLab) -> None:
    """The create worked but its answer was lost: the retry gets 409 and adopts the merge request."""
    fake.fail("POST", r"/merge_requests$", 502, after_write=True)
    ref = open_mr(forge(fake))
    assert ref.adopted
    assert len(fake.merge_requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(fake: FakeGitLab, status: int) -> None:
    fake.fail("POST", r"/merge_requests$", status, times=2)
    assert open_mr(forge(fake)).number == 1
    assert len(fake.merge_requests) == 1


@pytest.mark.parametrize("header", ["Retry-After", "RateLimit-Reset"])
def test_a_429_waits_as_gitlab_asks(fake: FakeGitLab, header: str) -> None:
    """429 with Retry-After (seconds) or RateLimit-Reset (a Unix time) is waited out, bounded."""
    value = "1" if header == "Retry-After" else str(int(time.time()) + 2)
    fake.fail("POST", r"/merge_requests$", 429, headers={header: value})
    started = time.monotonic()
    assert open_mr(forge(fake)).number == 1
    assert time.monotonic() - started >= 0.9


def test_a_long_retry_after_is_capped_at_max_wait(fake: FakeGitLab) -> None:
    """python-gitlab would sleep an hour; ours waits at most max_wait (2 s here)."""
    fake.fail("POST", r"/merge_requests$", 429, headers={"Retry-After": "3600"})
    started = time.monotonic()
    assert open_mr(forge(fake)).number == 1
    assert time.monotonic() - started < 5


def test_a_slow_answer_times_out_and_is_retried(fake: FakeGitLab) -> None:
    """Slower than the client's timeout: retried; the slow first create is then adopted."""
    fake.fail("POST", r"/merge_requests$", 0, delay=2.5)
    ref = open_mr(forge(fake))
    assert len(fake.merge_requests) == 1
    assert ref.number == 1


def test_persisting_failures_end_with_a_transient_error(fake: FakeGitLab) -> None:
    fake.fail("POST", r"/merge_requests$", 503, times=100)
    with pytest.raises(TransientError, match="try again later"):
        open_mr(forge(fake))
    assert fake.writes() == 5
    assert not fake.merge_requests


def test_client_errors_fail_at_once_with_gitlabs_message(fake: FakeGitLab) -> None:
    with pytest.raises(UpstreamError, match="422 Source branch does not exist"):
        forge(fake).open_pull_request("gitops", head="no-such-branch", base="main", title="t", body="b",
                                      draft=False, labels=[], reviewers=[])
    assert fake.writes() == 1


def test_a_bad_token_is_a_clear_401(fake: FakeGitLab) -> None:
    client = make_client(url=fake.base_url, token="", timeout=2)
    target = GitLabForge(client, projects={"gitops": "acme/platform/gitops"}, environments={}, max_wait=1)
    with pytest.raises(UpstreamError, match="401"):
        target.pull_request_status("gitops", 1)


def test_a_numeric_project_id_works_too(fake: FakeGitLab) -> None:
    assert open_mr(forge(fake, project="42")).number == 1


def test_polling_an_unchanged_merge_request_is_a_304(fake: FakeGitLab) -> None:
    """After the first read, polls send If-None-Match: an unchanged merge request costs no body."""
    target = forge(fake)
    ref = open_mr(target, reviewers=[])
    assert target.pull_request_status("gitops", ref.number).state == "open"
    for _ in range(5):
        assert target.pull_request_status("gitops", ref.number).checks == "none"
    assert fake.not_modified == 5
    fake.set_pipeline(ref.number, "running")
    assert target.pull_request_status("gitops", ref.number).checks == "pending"
    fake.set_pipeline(ref.number, "failed")
    assert target.pull_request_status("gitops", ref.number).checks == "failure"
    fake.set_pipeline(ref.number, "success")
    assert target.pull_request_status("gitops", ref.number).checks == "success"
    fake.merge(ref.number, by="bob")
    merged = target.pull_request_status("gitops", ref.number)
    assert (merged.state, merged.merged_by) == ("merged", "bob")


def test_closed_unmerged(fake: FakeGitLab) -> None:
    target = forge(fake)
    ref = open_mr(target)
    fake.close(ref.number)
    assert target.pull_request_status("gitops", ref.number).state == "closed"


def test_a_note_is_posted_once_edited_and_adopted_after_a_lost_answer(fake: FakeGitLab) -> None:
    target = forge(fake)
    ref = open_mr(target)
    fake.fail("POST", r"/notes$", 502, after_write=True)
    first = target.comment("gitops", ref.number, body="hello <!-- m1 -->", marker="<!-- m1 -->", comment_id=None)
    assert len(fake.notes) == 1
    again = target.comment("gitops", ref.number, body="edited <!-- m1 -->", marker="<!-- m1 -->", comment_id=first)
    assert again == first
    assert fake.notes[0]["body"] == "edited <!-- m1 -->"


def test_applied_times_from_the_environments_deployments(fake: FakeGitLab, remote: Remote) -> None:
    """Successful deployments to the environment: the earliest finish per sha; others ignored."""
    one = remote.commit("one", {"a.txt": "2\n"})
    two = remote.commit("two", {"a.txt": "3\n"})
    at = BASE + timedelta(hours=1)
    fake.add_deployment(one, "production", "success", at + timedelta(minutes=5))
    fake.add_deployment(one, "production", "success", at + timedelta(minutes=30))  # a redeploy
    fake.add_deployment(two, "production", "failed", at + timedelta(minutes=40))
    fake.add_deployment(two, "staging", "success", at + timedelta(minutes=41))
    target = forge(fake, gitops="production")
    assert target.source("gitops") == "deployment"
    found = target.applied_at("gitops", [one, two], since=BASE)
    assert found == {one: at + timedelta(minutes=5)}
    assert target.applied_at("gitops", [one], since=at + timedelta(minutes=10)) == {one: at + timedelta(minutes=30)}


def test_a_busy_environment_is_read_page_by_page_until_every_sha_is_found(fake: FakeGitLab, remote: Remote) -> None:
    """250 deployments of other shas first: the wanted one's first deployment is on page 3, and
    reading stops there (oldest first, so the first sight is the first deployment)."""
    wanted = remote.commit("wanted", {"a.txt": "2\n"})
    at = BASE + timedelta(hours=1)
    for n in range(250):
        fake.add_deployment(f"{n:040x}", "production", "success", at + timedelta(seconds=n))
    fake.add_deployment(wanted, "production", "success", at + timedelta(minutes=10))
    fake.add_deployment(wanted, "production", "success", at + timedelta(minutes=20))
    for n in range(300):
        fake.add_deployment(f"{n + 1000:040x}", "production", "success", at + timedelta(minutes=30, seconds=n))
    reads = fake.reads()
    found = forge(fake, gitops="production").applied_at("gitops", [wanted], since=BASE)
    assert found == {wanted: at + timedelta(minutes=10)}
    assert fake.reads() - reads == 3


def test_the_revert_dry_run_cross_check(fake: FakeGitLab, remote: Remote) -> None:
    """GitLab's dry run (real git behind the fake): clean is True, conflicting False; nothing committed."""
    clean = remote.commit("clean", {"b.txt": "x\n"})
    touched = remote.commit("touch a", {"a.txt": "2\n"})
    remote.commit("touch a again", {"a.txt": "3\n"})
    head = fake._branch_sha("main")
    target = forge(fake)
    assert target.revert_dry_run("gitops", clean, branch="main") is True
    assert target.revert_dry_run("gitops", touched, branch="main") is False
    assert fake._branch_sha("main") == head
    assert fake.dry_runs == [(clean, "main"), (touched, "main")]


def test_an_old_gitlab_is_never_asked_for_a_dry_run(fake: FakeGitLab, remote: Remote) -> None:
    """Before 13.3 GitLab ignores dry_run and would commit the revert on the branch: not asked."""
    fake.version = "13.2.4"
    assert forge(fake).revert_dry_run("gitops", remote.commit("x", {"c.txt": "1\n"}), branch="main") is None
    assert fake.dry_runs == []


def test_access_names_what_the_token_lacks(fake: FakeGitLab) -> None:
    target = forge(fake)
    assert "may push and open merge requests" in target.access("gitops")
    fake.scopes = ["read_api", "write_repository"]
    with pytest.raises(UpstreamError, match="needs the api scope"):
        target.access("gitops")
    fake.access_level = 20
    with pytest.raises(UpstreamError, match="Developer"):
        target.access("gitops")


def test_a_token_without_the_api_scope_is_named(fake: FakeGitLab) -> None:
    """GitLab's 403 insufficient_scope: not retried, and the message says which scope is missing."""
    fake.fail("POST", r"/merge_requests$", 403, message="insufficient_scope")
    with pytest.raises(UpstreamError, match="merge requests need the api scope"):
        open_mr(forge(fake))
    assert fake.writes() == 1


def test_only_bang_references_are_merge_requests(fake: FakeGitLab) -> None:
    """On GitLab "#12" is an issue: Backout never comments on merge request 12 for it."""
    target = forge(fake)
    assert target.names_request("gitops", "!12")
    assert not target.names_request("gitops", "#12")
    assert not target.names_request("elsewhere", "!12")
