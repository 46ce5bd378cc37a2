"""Forge webhooks at the border: each delivery verified (GitHub's X-Hub-Signature-256, GitLab's
X-Gitlab-Token, compared in constant time), then parsed once into pydantic models and mapped to
the domain's ForgeEvents (bot/domain/forge_events.py). Only the fields Backout reads are
declared; the rest of GitHub's and GitLab's payloads is ignored."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TypeVar
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.domain.errors import InvalidInput
from bot.domain.forge_events import BranchPush, Delivery, PushedCommit, RequestChanged
from bot.domain.untrusted import Instant, StoredText

M = TypeVar("M", bound=BaseModel)
MAX_COMMITS = 100  # GitHub lists at most 20 commits of a push, GitLab 20 (total_commits_count says how many)
_ZERO = "0" * 40
_SHA = r"^[0-9a-f]{40}([0-9a-f]{24})?$"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- verification ----
class GitHubSignature:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` with the webhook's secret."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None

    def refusal(self, body: bytes, header: str | None) -> str | None:
        """None when the body is signed with the secret; otherwise why not (nothing secret)."""
        if self._secret is None:
            return "no github.webhook_secret is configured: every delivery is refused"
        if not header or not header.startswith("sha256="):
            return "the delivery has no X-Hub-Signature-256 header"
        expected = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(header.strip().encode(), expected.encode()) else \
            "X-Hub-Signature-256 does not match the body signed with github.webhook_secret"


class GitLabToken:
    """`X-Gitlab-Token`: the webhook's secret token, as configured."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def refusal(self, header: str | None) -> str | None:
        if self._token is None:
            return "no gitlab.webhook_token is configured: every delivery is refused"
        if not header:
            return "the delivery has no X-Gitlab-Token header"
        return None if hmac.compare_digest(header.encode(), self._token) else \
            "X-Gitlab-Token is not gitlab.webhook_token"


class _Commit(_Loose):
    """A pushed commit as both forges send it (their authors differ)."""

    id: StoredText = Field(pattern=_SHA)
    message: StoredText = Field(default="", max_length=100_000)
    timestamp: Instant | None = None
    added: list[StoredText] = []
    modified: list[StoredText] = []
    removed: list[StoredText] = []


# ---- GitHub ----
class _GhAuthor(_Loose):
    name: StoredText = ""
    username: StoredText | None = None


class _GhCommit(_Commit):
    author: _GhAuthor = _GhAuthor()


class _GhRepository(_Loose):
    full_name: StoredText = Field(max_length=200)


class _GhUser(_Loose):
    login: StoredText = ""


class _GhPush(_Loose):
    ref: StoredText = Field(max_length=500)
    deleted: bool = False
    forced: bool = False
    repository: _GhRepository
    sender: _GhUser = _GhUser()
    commits: list[_GhCommit] = Field(default=[], max_length=2048)


class _GhHead(_Loose):
    ref: StoredText = Field(max_length=500)
    sha: StoredText = Field(default="", pattern=_SHA + "|^$")


class _GhPull(_Loose):
    number: int
    state: StoredText = Field(default="open", max_length=20)
    merged: bool = False
    merge_commit_sha: StoredText | None = None
    head: _GhHead
    base: _GhHead | None = None
    merged_by: _GhUser | None = None


class _Retargeted(_Loose):
    """An `edited` delivery's changes: `base` (GitHub) or `target_branch` (GitLab) when the base moved."""

    base: dict[str, object] | None = None
    target_branch: dict[str, object] | None = None


class _GhPullEvent(_Loose):
    action: StoredText = Field(max_length=50)
    repository: _GhRepository
    sender: _GhUser = _GhUser()
    pull_request: _GhPull
    changes: _Retargeted = _Retargeted()


_GH_ACTIONS = {"opened": "opened", "reopened": "opened", "synchronize": "updated", "ready_for_review": "ready",
               "converted_to_draft": "draft"}


def github_json(body: bytes, content_type: str) -> bytes:
    """The JSON of a verified GitHub delivery: the body, or its `payload` field where the webhook was
    left on GitHub's default content type, application/x-www-form-urlencoded."""
    if not content_type.lower().startswith("application/x-www-form-urlencoded"):
        return body
    try:
        found = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10).get("payload")
    except ValueError:  # more fields than a delivery has
        found = None
    if not found:
        raise InvalidInput("a form-encoded GitHub delivery without its payload field")
    return found[0].encode()


def github_delivery(event: str, body: bytes) -> Delivery:
    """A verified GitHub delivery (`X-GitHub-Event`: push, pull_request; others are ignored)."""
    if event == "push":
        push = _parse(_GhPush, body)
        return Delivery(kind="push", push=BranchPush(
            forge="github", project=push.repository.full_name, branch=push.ref.removeprefix("refs/heads/"),
            pusher=push.sender.login, forced=push.forced, deleted=push.deleted,
            commits=tuple(PushedCommit(sha=c.id, author=c.author.username or c.author.name, message=c.message,
                                       files=(*c.added, *c.modified, *c.removed), at=c.timestamp)
                          for c in push.commits[:MAX_COMMITS])))
    if event == "pull_request":
        found = _parse(_GhPullEvent, body)
        pull = found.pull_request
        action = "merged" if found.action == "closed" and pull.merged else \
            _GH_ACTIONS.get(found.action, "closed" if found.action == "closed" else "other")
        if found.action == "edited" and found.changes.base:
            action = "retargeted"  # its base branch changed: a request to assess now, if into the watched one
        by = (pull.merged_by.login if pull.merged_by else "") or found.sender.login
        return Delivery(kind="request", request=RequestChanged(
            forge="github", project=found.repository.full_name, number=pull.number, action=action,
            head=pull.head.ref, by=by, merge_sha=pull.merge_commit_sha if action == "merged" else None,
            head_sha=pull.head.sha, base=pull.base.ref if pull.base else "", closed=pull.state != "open"))
    return Delivery(kind="ignored", detail=f"github event {event[:50]!r} is not followed")


# ---- GitLab ----
class _GlAuthor(_Loose):
    name: StoredText = ""
    email: StoredText = ""


class _GlCommit(_Commit):
    author: _GlAuthor = _GlAuthor()


class _GlProject(_Loose):
    id: int | None = None
    path_with_namespace: StoredText = Field(max_length=300)


class _GlPush(_Loose):
    object_kind: StoredText
    ref: StoredText = Field(max_length=500)
    after: StoredText = ""
    user_username: StoredText = ""
    project: _GlProject
    commits: list[_GlCommit] = Field(default=[], max_length=2048)


class _GlUser(_Loose):
    username: StoredText = ""


class _GlLastCommit(_Loose):
    id: StoredText = Field(pattern=_SHA)


class _GlAttributes(_Loose):
    iid: int
    action: StoredText = ""
    state: StoredText = ""
    source_branch: StoredText = Field(max_length=500)
    target_branch: StoredText = Field(default="", max_length=500)
    merge_commit_sha: StoredText | None = None
    oldrev: StoredText | None = None  # only when the update pushed commits
    last_commit: _GlLastCommit | None = None


class _GlMergeRequest(_Loose):
    object_kind: StoredText
    user: _GlUser = _GlUser()
    project: _GlProject
    object_attributes: _GlAttributes
    changes: _Retargeted = _Retargeted()


_GL_ACTIONS = {"open": "opened", "reopen": "opened", "close": "closed", "merge": "merged"}
_GL_CLOSED = ("closed", "merged", "locked")  # a merge request's states that take no more review


def gitlab_delivery(event: str, body: bytes) -> Delivery:
    """A verified GitLab delivery (`X-Gitlab-Event`: Push Hook, Merge Request Hook; others ignored)."""
    if event == "Push Hook":
        push = _parse(_GlPush, body)
        return Delivery(kind="push", push=BranchPush(
            forge="gitlab", project=push.project.path_with_namespace, branch=push.ref.removeprefix("refs/heads/"),
            pusher=push.user_username, deleted=push.after == _ZERO,
            commits=tuple(PushedCommit(sha=c.id, author=c.author.name, message=c.message,
                                       files=(*c.added, *c.modified, *c.removed), at=c.timestamp)
                          for c in push.commits[:MAX_COMMITS])))
    if event == "Merge Request Hook":
        found = _parse(_GlMergeRequest, body)
        attributes = found.object_attributes
        action = _GL_ACTIONS.get(attributes.action, "other")
        if attributes.action == "update" and attributes.oldrev:
            action = "updated"  # new commits; an update without `oldrev` changed only its title, labels, ...
        elif attributes.action == "update" and found.changes.target_branch:
            action = "retargeted"
        return Delivery(kind="request", request=RequestChanged(
            forge="gitlab", project=found.project.path_with_namespace, number=attributes.iid, action=action,
            head=attributes.source_branch, by=found.user.username,
            merge_sha=attributes.merge_commit_sha if action == "merged" else None,
            head_sha=attributes.last_commit.id if attributes.last_commit else "", base=attributes.target_branch,
            closed=attributes.state in _GL_CLOSED))
    return Delivery(kind="ignored", detail=f"gitlab event {event[:50]!r} is not followed")


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate(json.loads(body))
    except RecursionError:
        raise InvalidInput("not a webhook payload Backout reads: nested too deeply") from None
    except (ValueError, ValidationError) as exc:  # ValidationError is a ValueError; named for the reader
        raise InvalidInput(f"not a webhook payload Backout reads: {str(exc)[:300]}") from exc
