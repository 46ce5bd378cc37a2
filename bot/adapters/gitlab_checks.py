"""The `backout/risk` check on GitLab: an external commit status (success, or failed when a
playbook's block_on rule matched). Setting a status GitLab already holds in that state is refused
with "Cannot transition status": it is set, so that counts as done. Called through GitLabForge's
bounded retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.domain.errors import UpstreamError
from bot.domain.review_checks import CHECK_NAME, CheckState, ReviewCheck

Call = Callable[[str, Callable[[], Any]], Any]  # GitLabForge._call
Request = Callable[..., Any]  # GitLabForge._request: verb, path, data=, query=

_STATE = {CheckState.CLEAN: "success", CheckState.WARN: "success", CheckState.BLOCKED: "failed"}


def post_status(call: Call, request: Request, *, project: str, sha: str, check: ReviewCheck) -> None:
    data: dict[str, Any] = {"state": _STATE[check.state], "name": CHECK_NAME, "description": check.description}
    if check.target_url:
        data["target_url"] = check.target_url
    try:
        call("commits.statuses.create", lambda: request("post", f"{project}/statuses/{sha}", data=data))
    except UpstreamError as exc:
        if "cannot transition status" not in str(exc).lower():
            raise
