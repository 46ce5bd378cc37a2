"""Forge webhooks at the border: the recorded GitHub and GitLab deliveries parse into Backout's
forge events, and a delivery is trusted only with the right signature or token."""

from __future__ import annotations

import json

import pytest

from bot.adapters.forge_hooks import GitHubSignature, GitLabToken, github_delivery, gitlab_delivery
from bot.domain.errors import InvalidInput
from tests.fakes.forge_hooks import FIXTURES, signed


def test_a_github_push_says_who_pushed_what_and_which_files() -> None:
    """The recorded push: branch, pusher, each commit's author, message and files (added, modified, removed)."""
    delivery = github_delivery("push", (FIXTURES / "github" / "push.json").read_bytes())
    assert delivery.push is not None
    push = delivery.push
    assert (push.forge, push.project, push.branch, push.pusher) == ("github", "acme/gitops",
                                                                     "backout/INC-1/incident", "alice")
    [commit] = push.commits
    assert commit.author == "alice"
    assert commit.subject == "checkout: drop the index the migration added"
    assert commit.files == ("apps/checkout/migrations/003_drop_index.sql", "apps/checkout/deploy.yaml")


def test_a_github_merged_pull_request_is_a_merge_with_its_sha() -> None:
    delivery = github_delivery("pull_request", (FIXTURES / "github" / "pull_request_merged.json").read_bytes())
    assert delivery.request is not None
    assert (delivery.request.action, delivery.request.number, delivery.request.by) == ("merged", 1, "bob")
    assert delivery.request.merge_sha == "8f2c1b7e0a4d4c0e9b1f3a6d5e7c9b2a4f6d8e01"


def test_a_github_push_to_a_pull_request_is_an_update_with_its_head_and_base() -> None:
    """`synchronize`: new commits on the head; review risk needs the head's sha and the base branch."""
    delivery = github_delivery("pull_request", (FIXTURES / "github" / "pull_request_synchronize.json").read_bytes())
    request = delivery.request
    assert request is not None
    assert (request.action, request.number, request.head, request.base) == ("updated", 7, "checkout-replicas", "main")
    assert request.head_sha == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert request.open
    assert request.merge_sha is None


def test_a_gitlab_update_with_oldrev_is_new_commits_and_without_it_is_not() -> None:
    """GitLab's `update` with `oldrev` pushed commits; without it only the title or labels changed."""
    body = (FIXTURES / "gitlab" / "merge_request_hook_update.json").read_bytes()
    request = gitlab_delivery("Merge Request Hook", body).request
    assert request is not None
    assert (request.action, request.number, request.base) == ("updated", 7, "main")
    assert request.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    edited = json.loads(body)
    del edited["object_attributes"]["oldrev"]
    assert gitlab_delivery("Merge Request Hook", json.dumps(edited).encode()).request.action == "other"  # type: ignore[union-attr]


def test_gitlab_hooks_parse_the_same_way() -> None:
    """Push Hook and Merge Request Hook: the project's full path, the branch, the merge."""
    push = gitlab_delivery("Push Hook", (FIXTURES / "gitlab" / "push_hook.json").read_bytes()).push
    assert push is not None
    assert (push.project, push.branch, push.pusher) == ("acme/platform/gitops", "backout/INC-1/incident", "alice")
    assert push.commits[0].files == ("apps/checkout/migrations/003_drop_index.sql", "apps/checkout/deploy.yaml")
    merged = gitlab_delivery("Merge Request Hook",
                             (FIXTURES / "gitlab" / "merge_request_hook_merged.json").read_bytes()).request
    assert merged is not None
    assert (merged.action, merged.number, merged.head, merged.by) == ("merged", 1, "backout/INC-1/incident", "bob")


def test_other_events_are_ignored_and_a_broken_body_is_invalid() -> None:
    assert github_delivery("ping", b"{}").kind == "ignored"
    assert gitlab_delivery("Pipeline Hook", b"{}").kind == "ignored"
    with pytest.raises(InvalidInput):
        github_delivery("push", b"{not json")


def test_only_the_right_signature_or_token_is_trusted() -> None:
    """sha256 HMAC of the exact body with the secret; GitLab's token as configured; none set: all refused."""
    body = b'{"ref": "refs/heads/x"}'
    check = GitHubSignature("s3cret")
    assert check.refusal(body, signed("s3cret", body)) is None
    assert check.refusal(body + b" ", signed("s3cret", body)) is not None
    assert check.refusal(body, signed("other", body)) is not None
    assert check.refusal(body, None) is not None
    assert GitHubSignature(None).refusal(body, signed("s3cret", body)) is not None
    assert GitLabToken("t0ken").refusal("t0ken") is None
    assert GitLabToken("t0ken").refusal("t0ke") is not None
    assert GitLabToken(None).refusal("") is not None
