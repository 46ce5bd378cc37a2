"""Review risk's listings on the fake forges over HTTP, paged as the forges page them: more than 100
open requests are all polled (a second poll of an unchanged GitHub list costs nothing), and Backout's
comment is found by its marker behind 150 others, never posted twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.github import GitHubForge
from bot.adapters.gitlab import GitLabForge
from bot.adapters.gitlab import make_client as gitlab_client
from bot.domain.review_checks import MARKER
from tests.adapters.test_review_checks import github_forge, remote
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote

__all__ = ["remote"]  # the fixture: a one-commit repository

MANY = 250


@pytest.fixture
def github(remote: Remote) -> Iterator[tuple[FakeGitHub, GitHubForge]]:
    with FakeGitHub(remote.bare).serving() as fake:
        yield fake, github_forge(fake, as_app=False)


@pytest.fixture
def gitlab(remote: Remote) -> Iterator[tuple[FakeGitLab, GitLabForge]]:
    with FakeGitLab(remote.bare, project="acme/platform/gitops").serving() as fake:
        client = gitlab_client(url=fake.base_url, token="glpat-test", timeout=5)
        yield fake, GitLabForge(client, projects={"gitops": "acme/platform/gitops"}, environments={}, max_wait=2,
                                backoff=0.02)


def test_github_open_pull_requests_are_read_past_the_first_100(github: tuple[FakeGitHub, GitHubForge]) -> None:
    """250 open: three pages, each conditional; nothing changed, the next poll is three free 304s."""
    fake, forge = github
    for number in range(1, MANY + 1):
        fake.open_by_someone(number, f"feature-{number}", f"{number:040x}")
    assert sorted(r.number for r in forge.open_requests("gitops")) == list(range(1, MANY + 1))
    spent = 5000 - fake.rate_remaining
    assert forge.open_requests("gitops")
    assert (fake.calls[("GET", "/repos/acme/gitops/pulls")], 5000 - fake.rate_remaining) == (6, spent)


def test_github_finds_its_comment_behind_150_others(github: tuple[FakeGitHub, GitHubForge]) -> None:
    """Its comment came after 150 of others (oldest first on GitHub): found, edited by id later, none posted."""
    fake, forge = github
    fake.comments += [{"id": n, "issue": 1, "body": f"comment {n}"} for n in range(1, 151)]
    fake.comments.append({"id": 151, "issue": 1, "body": f"{MARKER}\nbefore"})
    assert forge.comment("gitops", 1, body=f"{MARKER}\nafter", marker=MARKER, comment_id=None) == 151
    assert fake.comments[-1]["body"] == f"{MARKER}\nafter"
    assert fake.calls[("POST", "/repos/acme/gitops/issues/:n/comments")] == 0


def test_gitlab_open_merge_requests_are_read_past_the_first_100(gitlab: tuple[FakeGitLab, GitLabForge]) -> None:
    fake, forge = gitlab
    for iid in range(1, MANY + 1):
        fake.open_by_someone(iid, f"feature-{iid}", sha=f"{iid:040x}")
    assert sorted(r.number for r in forge.open_requests("gitops")) == list(range(1, MANY + 1))
    assert fake.calls[("GET", "/api/v4/projects/acme/platform/gitops/merge_requests")] == 3


def test_gitlab_finds_its_note_behind_150_newer_ones(gitlab: tuple[FakeGitLab, GitLabForge]) -> None:
    """Its note, then 150 newer (system notes of pushes among them): found, none posted."""
    fake, forge = gitlab
    fake.open_by_someone(1, "feature")
    fake.notes.append({"id": 3000, "body": f"{MARKER}\nbefore", "noteable_iid": 1, "system": False})
    fake.notes += [{"id": 3001 + n, "body": "added 1 commit", "noteable_iid": 1, "system": True} for n in range(150)]
    assert forge.comment("gitops", 1, body=f"{MARKER}\nafter", marker=MARKER, comment_id=None) == 3000
    assert fake.notes[0]["body"] == f"{MARKER}\nafter"
    assert fake.calls[("POST", "/api/v4/projects/acme/platform/gitops/merge_requests/:n/notes")] == 0
