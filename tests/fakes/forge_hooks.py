"""Forge webhook deliveries as GitHub and GitLab send them: the recorded shapes in
tests/fixtures/github and tests/fixtures/gitlab filled with a real repository's commits (their
shas, authors, messages and added/modified/removed files from `git`), signed, and posted over
real HTTP to a running Backout."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def _git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, text=True, check=True).stdout


def commits_between(bare: Path, old: str, new: str) -> list[dict[str, Any]]:
    """The commits of `old..new`, oldest first, as a push delivery lists them."""
    found = []
    for sha in _git(bare, "rev-list", "--reverse", f"{old}..{new}").split():
        author, email, stamp, message = _git(bare, "show", "-s", "--format=%an%x00%ae%x00%aI%x00%B", sha).split("\0", 3)
        status = _git(bare, "show", "--format=", "--name-status", "--no-renames", sha).splitlines()
        files: dict[str, list[str]] = {"A": [], "M": [], "D": []}
        for line in status:
            kind, _, path = line.partition("\t")
            files.setdefault(kind[:1], []).append(path)
        found.append({"id": sha, "message": message.rstrip("\n") + "\n", "timestamp": stamp,
                      "author": {"name": author, "email": email}, "added": files["A"], "modified": files["M"],
                      "removed": files["D"]})
    return found


def github_push(bare: Path, *, project: str, branch: str, old: str, new: str, by: str = "alice") -> dict[str, Any]:
    body = copy.deepcopy(_fixture("github/push.json"))
    commits = commits_between(bare, old, new)
    for commit in commits:
        commit["author"]["username"] = by
    body.update(ref=f"refs/heads/{branch}", before=old, after=new, commits=commits,
                head_commit=commits[-1] if commits else None, sender={"login": by, "id": 1, "type": "User"})
    body["repository"]["full_name"] = project
    return body


def github_merged(*, project: str, number: int, head: str, merge_sha: str, by: str = "bob") -> dict[str, Any]:
    body = copy.deepcopy(_fixture("github/pull_request_merged.json"))
    body["number"] = number
    body["pull_request"].update(number=number, merge_commit_sha=merge_sha, merged_by={"login": by})
    body["pull_request"]["head"]["ref"] = head
    body["repository"]["full_name"] = project
    return body


def gitlab_push(bare: Path, *, project: str, branch: str, old: str, new: str, by: str = "alice") -> dict[str, Any]:
    body = copy.deepcopy(_fixture("gitlab/push_hook.json"))
    commits = commits_between(bare, old, new)
    body.update(ref=f"refs/heads/{branch}", before=old, after=new, checkout_sha=new, commits=commits,
                total_commits_count=len(commits), user_username=by)
    body["project"]["path_with_namespace"] = project
    return body


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_github(base_url: str, event: str, payload: dict[str, Any], *, secret: str) -> httpx.Response:
    """POST it to Backout's /webhooks/github as GitHub does: the raw body signed with the secret."""
    body = json.dumps(payload).encode()
    return httpx.post(f"{base_url}/webhooks/github", content=body, timeout=30, headers={
        "content-type": "application/json", "x-github-event": event, "x-github-delivery": "72d3162e-cc78-11e3",
        "x-hub-signature-256": signed(secret, body), "user-agent": "GitHub-Hookshot/044aadd"})


def deliver_gitlab(base_url: str, event: str, payload: dict[str, Any], *, token: str) -> httpx.Response:
    """POST it to Backout's /webhooks/gitlab as GitLab does, with the secret token in X-Gitlab-Token."""
    return httpx.post(f"{base_url}/webhooks/gitlab", json=payload, timeout=30, headers={
        "x-gitlab-event": event, "x-gitlab-token": token, "user-agent": "GitLab/17.5.0"})


def github_pull(*, project: str, number: int, action: str, head: str, head_sha: str, base: str = "main",
                before: str | None = None, by: str = "carol") -> dict[str, Any]:
    """A `pull_request` delivery for an open pull request (opened, synchronize, reopened, ready_for_review)."""
    body = copy.deepcopy(_fixture("github/pull_request_synchronize.json"))
    body.update(action=action, number=number, after=head_sha, before=before or body["before"],
                sender={"login": by, "id": 11, "type": "User"})
    if action != "synchronize":
        body.pop("before"), body.pop("after")
    pull = body["pull_request"]
    pull.update(number=number, html_url=f"https://github.com/{project}/pull/{number}")
    pull["head"].update(ref=head, sha=head_sha, label=f"{project.split('/')[0]}:{head}")
    pull["base"]["ref"] = base
    body["repository"]["full_name"] = project
    return body


def gitlab_merge_request(*, project: str, iid: int, action: str, source: str, sha: str, target: str = "main",
                         oldrev: str | None = None, by: str = "carol") -> dict[str, Any]:
    """A `Merge Request Hook` delivery for an open merge request (open, update with `oldrev`, reopen)."""
    body = copy.deepcopy(_fixture("gitlab/merge_request_hook_update.json"))
    attributes = body["object_attributes"]
    attributes.update(iid=iid, action=action, source_branch=source, target_branch=target)
    attributes["last_commit"]["id"] = sha
    if oldrev is None:
        attributes.pop("oldrev")
    else:
        attributes["oldrev"] = oldrev
    body["project"]["path_with_namespace"] = project
    body["user"]["username"] = by
    return body
