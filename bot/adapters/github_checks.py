"""Review risk on GitHub: the `backout/risk` check, a check run when Backout runs as a GitHub App
(only Apps may create check runs), else a commit status (also for an App whose installation lacks
checks: write); the request's one comment, found by its marker; and what an App's installation was
granted, for `backout check --online`. A check run is found by name and edited, a status is per
context. Called through GitHubForge's bounded retry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import structlog
from github import Auth, GithubException, GithubIntegration

from bot.adapters.paging import PAGE, pages
from bot.domain.errors import UpstreamError
from bot.domain.review_checks import CHECK_NAME, CheckState, ReviewCheck

T = TypeVar("T")
log = structlog.get_logger(__name__)
Call = Callable[[str, Callable[[], T]], T]  # GitHubForge._call: endpoint, work -> its answer, retried
Json = Callable[..., Any]  # GitHubForge._json: verb, path, data, params=

_CONCLUSION = {CheckState.CLEAN: "success", CheckState.WARN: "neutral", CheckState.BLOCKED: "failure"}
_STATUS = {CheckState.CLEAN: "success", CheckState.WARN: "success", CheckState.BLOCKED: "failure"}
SUMMARY_LIMIT = 65_535  # a check run's output.summary


def post_check_run(call: Call[Any], json: Json, *, full: str, sha: str, check: ReviewCheck) -> None:
    """Create the check run on `sha`, or edit the one Backout made there before."""
    body: dict[str, Any] = {
        "name": CHECK_NAME, "head_sha": sha, "status": "completed", "conclusion": _CONCLUSION[check.state],
        "output": {"title": check.title[:1000], "summary": check.summary[:SUMMARY_LIMIT]},
    }
    if check.target_url:
        body["details_url"] = check.target_url

    def put() -> Any:
        # Looked up inside the retried call: a retry after a lost answer edits what the first attempt made.
        found = json("GET", f"/repos/{full}/commits/{sha}/check-runs", params={"check_name": CHECK_NAME})
        runs = found.get("check_runs", []) if isinstance(found, dict) else []
        if runs:
            return json("PATCH", f"/repos/{full}/check-runs/{runs[0]['id']}", body)
        return json("POST", f"/repos/{full}/check-runs", body)

    call("checks.runs", put)


def post_check_run_or_status(call: Call[Any], json: Json, *, full: str, sha: str, check: ReviewCheck) -> bool:
    """The check run; where the App's installation may not write checks (403 "Resource not accessible
    by integration"), the commit status instead, and why in the log. False when check runs were refused."""
    try:
        post_check_run(call, json, full=full, sha=sha, check=check)
        return True
    except UpstreamError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, GithubException) and cause.status == 403
                and "not accessible by integration" in str(exc)):
            raise
        log.warning("github.check_run_refused", repo=full, error=str(exc),
                    detail="the GitHub App's installation lacks checks: write; backout/risk is set as a commit "
                           "status until Backout restarts (grant the App Checks: Read and write)")
    post_status(call, json, full=full, sha=sha, check=check)
    return False


def post_status(call: Call[Any], json: Json, *, full: str, sha: str, check: ReviewCheck) -> None:
    """Set the commit status `backout/risk` on `sha` (a status per context: setting it again replaces it)."""
    body: dict[str, Any] = {"state": _STATUS[check.state], "context": CHECK_NAME, "description": check.description}
    if check.target_url:
        body["target_url"] = check.target_url
    call("commits.statuses.create", lambda: json("POST", f"/repos/{full}/statuses/{sha}", body))


def post_comment(call: Call[Any], json: Json, *, issues: str, number: int, body: str, marker: str,
                 comment_id: int | None) -> int:
    """The request's one comment: edited by id; gone (deleted by a person: 404) or unknown, found by
    its marker (oldest first: Backout's is early; at most MAX_PAGES) and set to `body`, or made."""
    if comment_id is not None:
        def edit() -> bool:
            try:
                json("PATCH", f"{issues}/comments/{comment_id}", {"body": body})
            except GithubException as exc:
                if exc.status != 404:
                    raise
                return False
            return True

        if call("issues.comments.edit", edit):
            return comment_id
        log.info("github.comment_gone", issues=issues, number=number, comment_id=comment_id)

    def find_or_create() -> int:
        # Inside the retried call: a retry after a lost answer finds the comment the first attempt made.
        listed = pages(lambda page: json("GET", f"{issues}/{number}/comments", params={"per_page": PAGE,
                                                                                         "page": page}))
        for item in (item for found in listed for item in found):
            if marker in str(item.get("body", "")):
                if item.get("body") != body:  # found again after a 404, or by `backout risk --post`
                    json("PATCH", f"{issues}/comments/{item['id']}", {"body": body})
                return int(item["id"])
        return int(json("POST", f"{issues}/{number}/comments", {"body": body})["id"])

    return int(call("issues.comments.create", find_or_create))


def installation_permissions(*, api_url: str, app_id: int, private_key: str, installation_id: int,
                             timeout: int = 15) -> Callable[[], Mapping[str, str]]:
    """What a GitHub App's installation was granted (GET /app/installations/{id}, asked with the App's
    JWT: an installation token cannot read its own permissions), for `backout check --online`."""
    integration = GithubIntegration(auth=Auth.AppAuth(app_id, private_key), base_url=api_url.rstrip("/"), retry=0,
                                    timeout=timeout, seconds_between_requests=None, seconds_between_writes=None)
    return lambda: dict(integration.get_app_installation(installation_id).permissions or {})


def app_access(full: str, granted: Mapping[str, str], *, review: bool) -> str:
    """What an App's installation may do on `full`, for `backout check --online`; UpstreamError naming
    what it lacks."""
    needed = ["contents", "pull_requests", *(["checks"] if review else [])]
    missing = [name for name in needed if granted.get(name) != "write"]
    if missing:
        why = " (review risk's check run; without it a commit status is set)" if "checks" in missing else ""
        raise UpstreamError(f"{full}: the GitHub App's installation lacks {', '.join(f'{m}: write' for m in missing)}"
                            f"{why}; grant it in the App's permissions and accept them in the installation")
    return f"{full}: the GitHub App may push, open pull requests" + (" and write checks" if review else "")
