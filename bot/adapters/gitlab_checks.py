"""The `backout/risk` check on GitLab: an external commit status (success, or failed when a
playbook's block_on rule matched). Setting a status GitLab already holds in that state is refused
with "Cannot transition status": it is set, so that counts as done. Called through GitLabForge's
bounded retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from gitlab.exceptions import GitlabHttpError

from bot.adapters.paging import PAGE, pages
from bot.domain.errors import UpstreamError
from bot.domain.review_checks import CHECK_NAME, CheckState, ReviewCheck

log = structlog.get_logger(__name__)
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


def post_note(call: Call, request: Request, *, notes: str, body: str, marker: str, note_id: int | None) -> int:
    """The merge request's one note: edited by id; gone (deleted by a person: 404) or unknown, found by
    its marker and set to `body`, or made."""
    if note_id is not None:
        def edit() -> bool:
            try:
                request("put", f"{notes}/{note_id}", data={"body": body})
            except GitlabHttpError as exc:
                if exc.response_code != 404:
                    raise
                return False
            return True

        if call("notes.edit", edit):
            return note_id
        log.info("gitlab.note_gone", notes=notes, note_id=note_id)

    def find_or_create() -> int:
        # A retry after a lost answer finds the note the first attempt made: oldest first, as it is
        # early and every push adds a system note after it.
        listed = pages(lambda page: request("get", notes, query={
            "per_page": PAGE, "page": page, "sort": "asc", "order_by": "created_at"}))
        for note in (note for found in listed for note in found):
            if marker in str(note.get("body", "")):
                if note.get("body") != body:  # found again after a 404, or by `backout risk --post`
                    request("put", f"{notes}/{note['id']}", data={"body": body})
                return int(note["id"])
        return int(request("post", notes, data={"body": body})["id"])

    return int(call("notes.create", find_or_create))
