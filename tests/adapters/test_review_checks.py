"""The `backout/risk` check on the fake forges over HTTP: a GitHub App's check run (neutral,
failure when blocked) edited in place on its commit; a commit status cut to 140 characters for a
token; GitLab's status, the same state twice counted as set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from bot.adapters.github import GitHubForge
from bot.adapters.github import make_client as github_client
from bot.adapters.gitlab import GitLabForge
from bot.adapters.gitlab import make_client as gitlab_client
from bot.domain.errors import UpstreamError
from bot.domain.review_checks import CheckState, ReviewCheck
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote

WARN = ReviewCheck(state=CheckState.WARN, title="Touches what caused INC-1", summary="- INC-1 ...",
                   target_url="https://backout.example.com/incidents/INC-1")
BLOCKED = ReviewCheck(state=CheckState.BLOCKED, title="Blocked (crd): Touches what caused " + ", ".join(
    f"INC-{n}" for n in range(1, 40)), summary="- INC-1 ...")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"a.yaml": "a: 1\n"})
    return remote


@pytest.fixture
def github(remote: Remote) -> Iterator[FakeGitHub]:
    with FakeGitHub(remote.bare).serving() as server:
        yield server


def github_forge(fake: FakeGitHub, *, as_app: bool) -> GitHubForge:
    client = github_client(api_url=fake.base_url, token="ghs_test", throttle=False, timeout=2)
    return GitHubForge(client, repos={"gitops": "acme/gitops"}, applied={}, max_wait=2, backoff=0.02, as_app=as_app)


def test_a_github_app_sets_one_check_run_per_commit_neutral_then_failure(github: FakeGitHub) -> None:
    """As an App: a check run `backout/risk`, neutral; set again on the same commit, the same run edited."""
    github.as_app = True
    forge = github_forge(github, as_app=True)
    sha = "a" * 40
    forge.review_check("gitops", sha=sha, check=WARN)
    forge.review_check("gitops", sha=sha, check=BLOCKED)
    [run] = github.check_runs[sha]
    assert (run["name"], run["status"], run["conclusion"]) == ("backout/risk", "completed", "failure")
    assert run["output"]["title"].startswith("Blocked (crd)")
    forge.review_check("gitops", sha="b" * 40, check=WARN)
    [other] = github.check_runs["b" * 40]
    assert (other["conclusion"], other["details_url"]) == ("neutral", WARN.target_url)


def test_a_github_app_without_checks_write_sets_a_commit_status_and_says_why(github: FakeGitHub) -> None:
    """403 "Resource not accessible by integration" on the check run: a status instead, logged once;
    later heads go straight to the status (no refused call each time)."""
    github.as_app = True
    github.app_permissions["checks"] = "read"
    forge = github_forge(github, as_app=True)
    with structlog.testing.capture_logs() as logs:
        forge.review_check("gitops", sha="e" * 40, check=WARN)
        forge.review_check("gitops", sha="f" * 40, check=WARN)
    assert github.check_runs == {}
    assert [s["state"] for sha in ("e", "f") for s in github.statuses[sha * 40]] == ["success", "success"]
    [refused] = [e for e in logs if e["event"] == "github.check_run_refused"]
    assert "checks: write" in refused["detail"]
    assert github.calls[("POST", "/repos/acme/gitops/check-runs")] == 1


def test_with_a_token_it_is_a_commit_status_with_the_warning_cut_to_140_characters(github: FakeGitHub) -> None:
    """Not an App (check runs are refused to tokens): a status, success with the warning, failure when blocked."""
    forge = github_forge(github, as_app=False)
    forge.review_check("gitops", sha="c" * 40, check=WARN)
    forge.review_check("gitops", sha="d" * 40, check=BLOCKED)
    [warned] = github.statuses["c" * 40]
    assert (warned["state"], warned["context"], warned["description"]) == ("success", "backout/risk", WARN.title)
    [blocked] = github.statuses["d" * 40]
    assert blocked["state"] == "failure"
    assert len(blocked["description"]) == 140
    assert blocked["description"].endswith("…")
    assert github.check_runs == {}


def test_gitlab_sets_a_commit_status_and_the_same_state_again_is_done(remote: Remote) -> None:
    """success, then success again (GitLab's 400 "Cannot transition status"), then failed when blocked."""
    with FakeGitLab(remote.bare, project="acme/platform/gitops").serving() as fake:
        client = gitlab_client(url=fake.base_url, token="glpat-test", timeout=2)
        forge = GitLabForge(client, projects={"gitops": "acme/platform/gitops"}, environments={}, max_wait=2,
                            backoff=0.02)
        sha = "e" * 40
        forge.review_check("gitops", sha=sha, check=WARN)
        forge.review_check("gitops", sha=sha, check=WARN)
        forge.review_check("gitops", sha=sha, check=BLOCKED)
        assert [s["status"] for s in fake.statuses[sha]] == ["failed", "success"]
        assert fake.statuses[sha][1]["target_url"] == WARN.target_url
        fake.fail("POST", r"/statuses/", 403, message="403 Forbidden")
        with pytest.raises(UpstreamError, match="403"):
            forge.review_check("gitops", sha="f" * 40, check=WARN)
