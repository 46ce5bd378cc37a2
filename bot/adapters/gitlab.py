"""GitLabForge: merge requests, pipelines and deployments through python-gitlab, within GitLab's limits.

python-gitlab's own retry is off (it would sleep through any Retry-After, however long); ours
retries only transient failures (5xx, connection errors, 429), bounded, honouring Retry-After and
RateLimit-Reset. Other 4xx fail at once with GitLab's message. A create whose answer was lost
comes back as 409 "already exists" on the retry and is adopted. Polled reads (a merge request)
send If-None-Match: an unchanged answer is a 304 with no body.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import gitlab
import requests
import structlog
from gitlab.exceptions import GitlabError, GitlabHttpError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from bot.adapters.gitlab_checks import post_note, post_status
from bot.adapters.paging import PAGE as LIST_PAGE
from bot.adapters.paging import pages
from bot.domain.errors import BackoutError, TransientError, UpstreamError
from bot.domain.forge_events import RequestChanged
from bot.domain.ports import MergeState, PullRequestRef, PullRequestStatus
from bot.domain.review_checks import ReviewCheck

T = TypeVar("T")
log = structlog.get_logger(__name__)
Observe = Callable[[str, str, int | None], None]  # endpoint, outcome, rate-limit remaining

DRY_RUN_SINCE = (13, 3)  # older GitLab ignores `dry_run` and would really commit the revert
PAGE, MAX_PAGES = 100, 10  # deployments read per request, and at most (a busy environment's day)
_DRAFT = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\b)\s*", re.IGNORECASE)  # GitLab's draft prefixes
DEVELOPER = 30  # the access level that may push branches and open merge requests
_PIPELINE_STATES = {
    "success": "success", "skipped": "success",
    "failed": "failure", "canceled": "failure",
    "created": "pending", "waiting_for_resource": "pending", "preparing": "pending", "pending": "pending",
    "running": "pending", "manual": "pending", "scheduled": "pending",
}


def make_client(*, url: str, token: str, timeout: float = 15) -> gitlab.Gitlab:
    """A python-gitlab client with its own retries off; every answer's headers are kept (per
    thread) for our retry, which needs Retry-After and RateLimit-Reset from the failures too."""
    session = requests.Session()
    session.hooks["response"].append(_keep_headers)
    return gitlab.Gitlab(url.rstrip("/"), private_token=token, timeout=timeout, session=session,
                         retry_transient_errors=False, keep_base_url=True)


_last = threading.local()


def _keep_headers(response: requests.Response, *_: Any, **__: Any) -> None:
    _last.headers = response.headers


def _last_headers() -> Mapping[str, str]:
    return getattr(_last, "headers", None) or {}


class _Retryable(Exception):
    """A transient answer, with the wait it asked for."""

    def __init__(self, error: GitlabError, wait: float | None) -> None:
        super().__init__(str(error))
        self.error, self.wait = error, wait


class GitLabForge:
    """Implements the Forge and AppliedTimes ports for repositories hosted on GitLab."""

    def __init__(self, client: gitlab.Gitlab, *, projects: Mapping[str, str], environments: Mapping[str, str],
                 observe: Observe | None = None, max_wait: float = 60.0, attempts: int = 5,
                 backoff: float = 0.5) -> None:
        self._gl = client
        self._projects = dict(projects)  # repo name -> group/subgroup/name or numeric id
        self._environments = dict(environments)  # repo name -> environment whose deployments count
        self._observe = observe or (lambda *_: None)
        self._max_wait = max_wait
        self._attempts = attempts
        self._backoff = backoff
        self._etags: dict[str, tuple[str, Any]] = {}  # path -> (etag, parsed body)
        self._users: dict[str, int | None] = {}
        self._version: tuple[int, int] | None = None

    def handles(self, repo: str) -> bool:
        return repo in self._projects

    def names_request(self, repo: str, ref: str) -> bool:
        return repo in self._projects and ref.startswith("!")

    def request_noun(self, repo: str) -> str:
        return "merge request"

    def _project(self, repo: str) -> str:
        return "/projects/" + quote(self._projects[repo], safe="")

    def access(self, repo: str, *, review: bool = False) -> str:
        """What the token may do on the project, for `backout check --online`. UpstreamError when it
        cannot read it, its access level cannot push, or its scopes cannot open merge requests (which
        also covers review risk's commit statuses and notes: `review` needs nothing more)."""
        name = self._projects[repo]
        project = self._call("projects.get", lambda: self._request("get", self._project(repo)))
        permissions = project.get("permissions") or {}
        levels = [int(p.get("access_level") or 0) for p in (permissions.get("project_access"),
                                                             permissions.get("group_access")) if p]
        if levels and max(levels) < DEVELOPER:
            raise UpstreamError(f"{name}: the token's access level is {max(levels)}; revert branches and merge "
                                f"requests need Developer ({DEVELOPER}) or above")
        try:
            token = self._call("tokens.self", lambda: self._request("get", "/personal_access_tokens/self"))
        except UpstreamError:
            token = None  # older GitLab, or a token type that cannot read itself
        scopes = set(token.get("scopes") or []) if isinstance(token, dict) else set()
        if token is not None and "api" not in scopes:
            raise UpstreamError(f"{name}: the token's scopes are {', '.join(sorted(scopes)) or 'none'}; "
                                "opening merge requests needs the api scope")
        return f"{name}: the token may push and open merge requests"

    # ---- merge requests ----
    def open_pull_request(self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool,
                          labels: Sequence[str], reviewers: Sequence[str]) -> PullRequestRef:
        path = f"{self._project(repo)}/merge_requests"
        reviewer_ids = self._user_ids(reviewers)
        data: dict[str, Any] = {
            "source_branch": head, "target_branch": base, "description": body[:1_000_000],
            "title": f"Draft: {title}" if draft else title,
            "labels": ",".join(labels),  # GitLab creates the labels that do not exist yet
        }
        if reviewer_ids:
            data["reviewer_ids"] = reviewer_ids
        try:
            merge_request = self._call("merge_requests.create", lambda: self._request("post", path, data=data))
            adopted = False
        except UpstreamError as exc:
            if "already exists" not in str(exc):
                raise
            merge_request = self._find_merge_request(repo, head)
            adopted = True
            update: dict[str, Any] = {"add_labels": ",".join(labels)}
            if reviewer_ids:
                present = [int(r["id"]) for r in merge_request.get("reviewers") or []]
                update["reviewer_ids"] = sorted({*reviewer_ids, *present})
            merge_request = self._call("merge_requests.update", lambda: self._request(
                "put", f"{path}/{merge_request['iid']}", data=update))
        iid = int(merge_request["iid"])
        return PullRequestRef(number=iid, url=str(merge_request["web_url"]), adopted=adopted,
                              name=f"merge request !{iid}")

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        # GitLab's draft is the title's prefix: removing it marks the merge request ready.
        path = f"{self._project(repo)}/merge_requests/{number}"
        merge_request = self._call("merge_requests.get", lambda: self._request("get", path))
        update: dict[str, Any] = {}
        title = str(merge_request.get("title", ""))
        ready = _DRAFT.sub("", title)
        if ready != title:
            update["title"] = ready
        present = [int(r["id"]) for r in merge_request.get("reviewers") or []]
        wanted = sorted({*self._user_ids(reviewers), *present})
        if wanted != sorted(present):
            update["reviewer_ids"] = wanted
        if update:
            self._call("merge_requests.update", lambda: self._request("put", path, data=update))

    def _find_merge_request(self, repo: str, head: str) -> dict[str, Any]:
        found = self._call("merge_requests.list", lambda: self._request(
            "get", f"{self._project(repo)}/merge_requests", query={"source_branch": head, "state": "opened"}))
        if not found:
            raise UpstreamError(f"gitlab said a merge request exists for {head}, but no open one was found")
        return dict(found[0])

    def _user_ids(self, usernames: Sequence[str]) -> list[int]:
        """Reviewers by GitLab username; one that does not exist is skipped (and logged), not fatal."""
        ids = []
        for name in usernames:
            username = name.removeprefix("@")
            if username not in self._users:
                self._users[username] = self._user_id(username)
            if self._users[username] is None:
                log.warning("gitlab.reviewer_unknown", username=username)
                continue
            ids.append(self._users[username] or 0)
        return ids

    def _user_id(self, username: str) -> int | None:
        found = self._call("users.list", lambda: self._request("get", "/users", query={"username": username}))
        return int(found[0]["id"]) if found else None

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        merge_request = self._conditional_get(f"{self._project(repo)}/merge_requests/{number}",
                                              "merge_requests.get")
        state = merge_request.get("state")
        if state == "merged":
            user = merge_request.get("merge_user") or merge_request.get("merged_by") or {}
            return PullRequestStatus(state="merged", merged_by=user.get("username"))
        if state in ("closed", "locked"):
            return PullRequestStatus(state="closed")
        pipeline = merge_request.get("head_pipeline") or merge_request.get("pipeline")
        if pipeline is None:
            return PullRequestStatus(state="open")
        return PullRequestStatus(state="open", checks=_PIPELINE_STATES.get(str(pipeline.get("status")), "none"))

    def merge_state(self, repo: str, number: int) -> MergeState:
        found = self._call("merge_requests.get", lambda: self._request(
            "get", f"{self._project(repo)}/merge_requests/{number}"))
        state, status = str(found.get("state")), str(found.get("detailed_merge_status") or "unknown")
        user = found.get("merge_user") or found.get("merged_by") or {}
        return MergeState(state={"opened": "open", "locked": "closed"}.get(state, state),
                          clean=state == "opened" and status == "mergeable", why=f"detailed_merge_status {status}",
                          head_sha=str(found.get("sha") or ""), merged_by=user.get("username"))

    def merge(self, repo: str, number: int, *, sha: str, message: str) -> MergeState:
        path = f"{self._project(repo)}/merge_requests/{number}/merge"
        data = {"sha": sha, "merge_commit_message": message, "should_remove_source_branch": False}
        try:
            self._call("merge_requests.merge", lambda: self._request("put", path, data=data))
        except BackoutError:
            after = self.merge_state(repo, number)  # a retried PUT after a lost answer is refused (405)
            if after.state == "merged":
                return after
            raise
        return self.merge_state(repo, number)

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        return post_note(self._call, self._request, notes=f"{self._project(repo)}/merge_requests/{number}/notes",
                         body=body, marker=marker, note_id=comment_id)

    def open_requests(self, repo: str) -> list[RequestChanged]:
        def read(page: int) -> Any:
            return self._call("merge_requests.list", lambda: self._request(
                "get", f"{self._project(repo)}/merge_requests", query={"state": "opened", "per_page": LIST_PAGE,
                                                                       "page": page}))

        found = [m for listed in pages(read) for m in listed]
        return [RequestChanged(forge="gitlab", project=self._projects[repo], number=int(m["iid"]), action="opened",
                               head=str(m["source_branch"]), head_sha=str(m.get("sha") or ""),
                               base=str(m["target_branch"])) for m in found]

    def review_check(self, repo: str, *, sha: str, check: ReviewCheck) -> None:
        post_status(self._call, self._request, project=self._project(repo), sha=sha, check=check)

    # ---- the revert cross-check ----
    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        """Whether GitLab could revert `sha` on `branch` (its `dry_run`, which commits nothing):
        True clean, False conflicting or empty, None when it cannot say (GitLab older than 13.3,
        which would ignore dry_run and really commit, is never asked)."""
        if self._server_version() < DRY_RUN_SINCE:
            return None
        path = f"{self._project(repo)}/repository/commits/{sha}/revert"
        try:
            self._call("commits.revert_dry_run", lambda: self._request(
                "post", path, data={"branch": branch, "dry_run": True}))
        except UpstreamError as exc:
            text = str(exc).lower()
            if "cannot revert" in text or "conflict" in text or "empty" in text:
                return False
            log.warning("gitlab.revert_dry_run_failed", repo=repo, sha=sha, error=str(exc))
            return None
        except TransientError:
            return None
        return True

    def _server_version(self) -> tuple[int, int]:
        if self._version is None:
            try:
                answer = self._call("version", lambda: self._request("get", "/version"))
                major, minor = str(answer.get("version", "0.0")).split(".")[:2]
                self._version = (int(major), int(minor))
            except (UpstreamError, TransientError, ValueError):
                return (0, 0)  # asked again next time
        return self._version

    # ---- applied times ----
    def source(self, repo: str) -> str | None:
        return "deployment" if repo in self._environments else None

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        """When each sha was first deployed successfully to the repository's environment."""
        environment = self._environments.get(repo)
        if environment is None or not shas:
            return {}
        wanted = set(shas)
        query = {"environment": environment, "status": "success", "order_by": "finished_at", "sort": "asc",
                 "finished_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "per_page": PAGE}
        path = f"{self._project(repo)}/deployments"

        def read(page: int) -> Any:
            return self._request("get", path, query={**query, "page": page})

        found: dict[str, datetime] = {}
        for page in range(1, MAX_PAGES + 1):  # oldest first: a sha's first deployment comes first
            deployments = self._call("deployments.list", partial(read, page)) or []
            for deployment in deployments:
                sha = str(deployment.get("sha", ""))
                when = _finished(deployment)
                if sha in wanted and when is not None and (sha not in found or when < found[sha]):
                    found[sha] = when
            if len(deployments) < PAGE or found.keys() >= wanted:
                break
        return found

    # ---- the plumbing ----
    def _request(self, verb: str, path: str, *, data: dict[str, Any] | None = None,
                 query: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
        response = self._gl.http_request(verb, path, query_data=query, post_data=data, extra_headers=headers,
                                         obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        return response.json() if response.content else None

    def _conditional_get(self, path: str, endpoint: str) -> Any:
        """GET with If-None-Match; the cached body on a 304."""
        cached = self._etags.get(path)

        def get() -> Any:
            try:
                response = self._gl.http_request(
                    "get", path, extra_headers={"If-None-Match": cached[0]} if cached else None,
                    obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
            except GitlabHttpError as exc:
                if exc.response_code == 304 and cached is not None:
                    return cached[1]
                raise
            body = response.json()
            etag = response.headers.get("ETag")
            if etag:
                self._etags[path] = (etag, body)
            return body

        return self._call(endpoint, get)

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable | requests.RequestException)),
            wait=self._wait, reraise=True,
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._max_wait * 2),
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        result = fn()
                    except GitlabError as exc:  # an answer that is not 2xx (401 is its own class)
                        headers = _last_headers()
                        self._observe(endpoint, _outcome(exc), _remaining(headers))
                        if _transient(exc):
                            raise _Retryable(exc, _retry_after(headers)) from exc
                        raise
                    except requests.RequestException:
                        self._observe(endpoint, "connection_error", None)
                        raise
                    self._observe(endpoint, "ok", _remaining(_last_headers()))
                    return result
        except _Retryable as exc:
            raise TransientError(f"gitlab {endpoint}: {exc.error.response_code} {_message(exc.error)} "
                                 "— still failing after retries; try again later") from exc
        except GitlabError as exc:
            status = f"{exc.response_code} " if exc.response_code else ""
            hint = ""
            if "insufficient_scope" in _message(exc):
                hint = (". The token's scopes do not allow this: merge requests need the api scope (read_api and "
                        "write_repository push branches but cannot open them)")
            raise UpstreamError(f"gitlab {endpoint}: {status}{_message(exc)}{hint}") from exc
        except requests.RequestException as exc:
            raise TransientError(f"gitlab {endpoint}: {type(exc).__name__}: cannot reach GitLab") from exc
        raise AssertionError("unreachable")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.wait is not None:
            return min(exc.wait, self._max_wait)
        return float(min(self._backoff * 2 ** (state.attempt_number - 1), 8.0))


def _transient(exc: GitlabError) -> bool:
    return exc.response_code is not None and (exc.response_code >= 500 or exc.response_code == 429)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    after = str(headers.get("Retry-After", ""))
    if after.isdigit():
        return float(after)
    reset = str(headers.get("RateLimit-Reset", ""))
    if reset.isdigit():
        return max(0.0, float(reset) - time.time())
    return None


def _remaining(headers: Mapping[str, str]) -> int | None:
    value = str(headers.get("RateLimit-Remaining", ""))
    return int(value) if value.isdigit() else None


def _outcome(exc: GitlabError) -> str:
    return "rate_limited" if exc.response_code == 429 else str(exc.response_code)


def _message(exc: GitlabError) -> str:
    """GitLab's message: a string, a list, or a field -> [problems] mapping."""
    message = exc.error_message
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)
    if isinstance(message, dict):
        return "; ".join(f"{field} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                         for field, v in message.items())
    return str(message)


def _finished(deployment: Mapping[str, Any]) -> datetime | None:
    """When a successful deployment finished: its own `finished_at` (GitLab 15+), else its job's,
    else when it was last updated (to success)."""
    deployable = deployment.get("deployable") or {}
    for text in (deployment.get("finished_at"), deployable.get("finished_at"), deployment.get("updated_at")):
        if isinstance(text, str) and text:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return None
