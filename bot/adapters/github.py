"""GitHubForge: pull requests and applied times through PyGithub, within GitHub's limits.

PyGithub's own retry is off (it repeats POSTs); ours retries only transient failures (5xx,
connection errors, rate limits), bounded, honouring Retry-After and x-ratelimit-reset. A create
whose answer was lost comes back as 422 "already exists" on the retry and is adopted. Reads
that are polled (pull requests, statuses, deployments) are conditional (ETag): a 304 costs
nothing against the rate limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import structlog
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from bot.adapters.github_checks import app_access, post_check_run_or_status, post_comment, post_status
from bot.adapters.paging import PAGE, pages
from bot.domain.errors import BackoutError, TransientError, UpstreamError
from bot.domain.forge_events import RequestChanged
from bot.domain.ports import MergeState, PullRequestRef, PullRequestStatus
from bot.domain.review_checks import ReviewCheck

T = TypeVar("T")
log = structlog.get_logger(__name__)
Observe = Callable[[str, str, int | None], None]  # endpoint, outcome, rate-limit remaining


@dataclass(frozen=True)
class AppliedFrom:
    """Where a repository's applied times come from on GitHub."""

    kind: str  # "deployments" or "status"
    environment: str = ""
    context: str = ""


def make_client(*, api_url: str, token: str | None = None, app_id: int | None = None,
                private_key: str | None = None, installation_id: int | None = None,
                throttle: bool = True, timeout: int = 15) -> Github:
    """A PyGithub client with its retry off and its write throttle kept (1 s between writes)."""
    auth: Auth.Auth
    if token:
        auth = Auth.Token(token)
    elif app_id and private_key and installation_id:
        auth = Auth.AppAuth(app_id, private_key).get_installation_auth(installation_id)
    else:
        raise UpstreamError("github: set github.token (or token_file), or app_id, private_key_file "
                            "and installation_id")
    return Github(auth=auth, base_url=api_url.rstrip("/"), retry=0, timeout=timeout, lazy=True,
                  seconds_between_requests=0.25 if throttle else None,
                  seconds_between_writes=1.0 if throttle else None)


class GitHubForge:
    """Implements the Forge and AppliedTimes ports for repositories hosted on GitHub."""

    def __init__(self, client: Github, *, repos: Mapping[str, str], applied: Mapping[str, AppliedFrom],
                 observe: Observe | None = None, max_wait: float = 60.0, attempts: int = 5,
                 backoff: float = 0.5, as_app: bool = False,
                 installation: Callable[[], Mapping[str, str]] | None = None) -> None:
        self._gh = client
        self._installation = installation  # an App's: what its installation was granted
        self._as_app = as_app  # a GitHub App's installation: checks are check runs (else commit statuses)
        self._checks_refused = False  # the App may not write checks: commit statuses instead
        self._repos = dict(repos)
        self._applied = dict(applied)
        self._observe = observe or (lambda *_: None)
        self._max_wait = max_wait
        self._attempts = attempts
        self._backoff = backoff
        self._pulls: dict[tuple[str, int], PullRequest] = {}
        self._etags: dict[str, tuple[str, Any]] = {}  # url -> (etag, parsed body)
        self._deployment_times: dict[int, datetime | None] = {}

    def access(self, repo: str, *, review: bool = False) -> str:
        """What the token may do on the repository, for `backout check --online`. UpstreamError
        when it cannot read it, or its answer says it may not push (branches, pull requests); as an
        App, when its installation lacks a permission Backout needs (checks: write with `review`)."""
        full = self._repos[repo]
        data = self._call("repos.get", lambda: self._json("GET", f"/repos/{full}"))
        permissions = data.get("permissions") if isinstance(data, dict) else None
        if permissions is None and self._installation is not None:
            return app_access(full, self._call("apps.installation", self._installation), review=review)
        if permissions is None:
            return (f"{full} is readable; this token type does not report its permissions (a GitHub App "
                    "needs contents: write and pull requests: write, and checks: write for review risk)")
        if not permissions.get("push"):
            raise UpstreamError(f"{full}: the token may not push (permissions: "
                                f"{', '.join(k for k, v in sorted(permissions.items()) if v) or 'none'}); "
                                "it needs write access for revert branches and pull requests")
        return f"{full}: the token may push and open pull requests"

    def handles(self, repo: str) -> bool:
        return repo in self._repos

    def names_request(self, repo: str, ref: str) -> bool:
        return repo in self._repos and ref.startswith("#")

    def request_noun(self, repo: str) -> str:
        return "pull request"

    # ---- pull requests ----
    def open_pull_request(self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool,
                          labels: Sequence[str], reviewers: Sequence[str]) -> PullRequestRef:
        gh_repo = self._gh.get_repo(self._repos[repo])
        adopted = False
        try:
            pull = self._call("pulls.create", lambda: gh_repo.create_pull(
                base=base, head=head, title=title, body=body[:60000], draft=draft))
        except UpstreamError as exc:
            if "already exists" not in str(exc):
                raise
            pull = self._find_pull(repo, head)
            adopted = True
        if labels:
            self._call("issues.labels", lambda: pull.add_to_labels(*labels))
        self._ask(pull, reviewers)
        self._pulls[(repo, pull.number)] = pull
        return PullRequestRef(number=pull.number, url=pull.html_url, adopted=adopted)

    def _ask(self, pull: PullRequest, reviewers: Sequence[str]) -> None:
        """Request reviews: users, and teams as `org/team` (GitHub ignores one already asked)."""
        users = [r for r in reviewers if "/" not in r]
        teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]
        if users or teams:
            self._call("pulls.reviewers", lambda: pull.create_review_request(
                reviewers=users, team_reviewers=teams))

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        # REST cannot undraft a pull request: PyGithub sends GraphQL's markPullRequestReadyForReview.
        pull = self._call("pulls.get", lambda: self._gh.get_repo(self._repos[repo]).get_pull(number))
        if self._call("pulls.get", lambda: pull.draft):
            self._call("graphql.mark_ready", pull.mark_ready_for_review)
        self._ask(pull, reviewers)

    def _find_pull(self, repo: str, head: str) -> PullRequest:
        owner = self._repos[repo].split("/")[0]
        pulls = self._call("pulls.list", lambda: list(
            self._gh.get_repo(self._repos[repo]).get_pulls(state="all", head=f"{owner}:{head}")))
        if not pulls:
            raise UpstreamError(f"github said a pull request exists for {head}, but none was found")
        return pulls[0]

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        pull = self._pulls.get((repo, number))
        if pull is None:
            pull = self._call("pulls.get", lambda: self._gh.get_repo(self._repos[repo]).get_pull(number))
            self._call("pulls.get", lambda: pull.state)  # completes the lazy object
            self._pulls[(repo, number)] = pull
        else:
            self._call("pulls.get", pull.update)  # If-None-Match: a 304 is free
        if pull.merged:
            merged_by = pull.merged_by.login if pull.merged_by else None
            return PullRequestStatus(state="merged", merged_by=merged_by)
        if pull.state == "closed":
            return PullRequestStatus(state="closed")
        base = f"/repos/{self._repos[repo]}/commits/{pull.head.sha}"
        status = self._conditional_get(f"{base}/status", "commits.status")
        runs = self._conditional_get(f"{base}/check-runs", "commits.check_runs") or {}
        states = [] if not status or not status.get("total_count") else [str(status["state"])]
        states += [_check_run_state(run) for run in runs.get("check_runs", [])]
        return PullRequestStatus(state="open", checks=_combine(states))

    def merge_state(self, repo: str, number: int) -> MergeState:
        pull = self._call("pulls.get", lambda: _completed(self._gh.get_repo(self._repos[repo]).get_pull(number)))
        if pull.merged:
            return MergeState(state="merged", clean=False, why="merged", head_sha=pull.head.sha,
                              merged_by=pull.merged_by.login if pull.merged_by else None)
        state = pull.mergeable_state or "unknown"  # "unknown" while GitHub is still computing it
        return MergeState(state=pull.state, clean=pull.state == "open" and state == "clean",
                          why=f"mergeable_state {state}", head_sha=pull.head.sha)

    def merge(self, repo: str, number: int, *, sha: str, message: str) -> MergeState:
        pull = self._gh.get_repo(self._repos[repo]).get_pull(number)
        try:
            self._call("pulls.merge", lambda: pull.merge(commit_message=message[:60000], merge_method="merge",
                                                         sha=sha))
        except BackoutError:
            after = self.merge_state(repo, number)  # a retried PUT after a lost answer: "not mergeable"
            if after.state == "merged":
                return after
            raise
        return self.merge_state(repo, number)

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        return post_comment(self._call, self._json, issues=f"/repos/{self._repos[repo]}/issues", number=number,
                            body=body[:60000], marker=marker, comment_id=comment_id)

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        return None  # GitHub's REST API has no revert, dry or not

    def open_requests(self, repo: str) -> list[RequestChanged]:
        full = self._repos[repo]
        pulls = [p for found in pages(lambda page: self._conditional_get(
            f"/repos/{full}/pulls", "pulls.list", {"state": "open", "per_page": PAGE, "page": page})) for p in found]
        return [RequestChanged(forge="github", project=full, number=int(p["number"]), action="opened",
                               head=str(p["head"]["ref"]), head_sha=str(p["head"]["sha"]), base=str(p["base"]["ref"]))
                for p in pulls]

    def review_check(self, repo: str, *, sha: str, check: ReviewCheck) -> None:
        full = self._repos[repo]
        if self._as_app and not self._checks_refused:
            # Until a restart, an App refused checks: write sets statuses without a refused call each time.
            self._checks_refused = not post_check_run_or_status(self._call, self._json, full=full, sha=sha,
                                                                check=check)
            return
        post_status(self._call, self._json, full=full, sha=sha, check=check)

    def _json(self, verb: str, path: str, data: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Any:
        status, headers, body = self._gh.requester.requestJson(verb, path, parameters=params, input=data)
        if status >= 400:
            raise GithubException(status, _json(body), headers)
        return _json(body)

    # ---- applied times ----
    def source(self, repo: str) -> str | None:
        applied = self._applied.get(repo)
        if applied is None:
            return None
        return "deployment" if applied.kind == "deployments" else "commit_status"

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        applied = self._applied.get(repo)
        if applied is None or not shas:
            return {}
        if applied.kind == "deployments":
            return self._deployed_at(repo, applied.environment, set(shas))
        found = {}
        for sha in shas:
            base = f"/repos/{self._repos[repo]}/commits/{sha}"
            statuses = self._conditional_get(f"{base}/statuses", "commits.statuses") or []
            times = [_time(s["created_at"]) for s in statuses
                     if s.get("context") == applied.context and s.get("state") == "success"]
            if not times:  # controllers that report as a GitHub App use check runs instead
                runs = (self._conditional_get(f"{base}/check-runs", "commits.check_runs") or {}).get("check_runs", [])
                times = [_time(r["completed_at"]) for r in runs
                         if r.get("name") == applied.context and r.get("conclusion") == "success"
                         and r.get("completed_at")]
            if times:
                found[sha] = min(times)
        return found

    def _deployed_at(self, repo: str, environment: str, wanted: set[str]) -> dict[str, datetime]:
        path = f"/repos/{self._repos[repo]}/deployments"
        deployments = self._conditional_get(path, "deployments.list",
                                            {"environment": environment, "per_page": 100}) or []
        found: dict[str, datetime] = {}
        for deployment in deployments:
            sha, number = deployment["sha"], int(deployment["id"])
            if sha not in wanted:
                continue
            if self._deployment_times.get(number) is None:
                statuses = self._conditional_get(f"{path}/{number}/statuses", "deployments.statuses") or []
                successes = [_time(s["created_at"]) for s in statuses if s.get("state") == "success"]
                self._deployment_times[number] = min(successes) if successes else None
            when = self._deployment_times[number]
            if when is not None and (sha not in found or when < found[sha]):
                found[sha] = when
        return found

    # ---- the plumbing ----
    def _conditional_get(self, path: str, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        """GET with If-None-Match; the cached body on a 304."""
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        cached = self._etags.get(key)
        headers = {"If-None-Match": cached[0]} if cached else {}

        def get() -> Any:
            status, response_headers, body = self._gh.requester.requestJson(
                "GET", path, parameters=params, headers=headers)
            if status == 304 and cached is not None:
                return cached[1]
            if status >= 400:
                raise GithubException(status, _json(body), response_headers)
            data = _json(body)
            etag = response_headers.get("etag") or response_headers.get("ETag")
            if etag:
                self._etags[key] = (etag, data)
            return data

        return self._call(endpoint, get)

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_transient), wait=self._wait, reraise=True,
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._max_wait * 2),
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        result = fn()
                    except Exception as exc:
                        self._observe(endpoint, _outcome(exc), self._remaining())
                        raise
                    self._observe(endpoint, "ok", self._remaining())
                    return result
        except GithubException as exc:
            raise _domain_error(endpoint, exc) from exc
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"github {endpoint}: {type(exc).__name__}: cannot reach GitHub") from exc
        raise AssertionError("unreachable")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = _retry_after(exc) if exc is not None else None
        if hinted is not None:
            return min(hinted, self._max_wait)
        return float(min(self._backoff * 2 ** (state.attempt_number - 1), 8.0))

    def _remaining(self) -> int | None:
        remaining = self._gh.requester.rate_limiting[0]
        return remaining if remaining >= 0 else None


def _completed(pull: PullRequest) -> PullRequest:
    """A lazy pull request read now, inside the retried call (its first attribute fetches it)."""
    _ = pull.mergeable_state
    return pull


def _check_run_state(run: dict[str, Any]) -> str:
    """A check run (GitHub Actions and other apps) as a commit-status state."""
    if run.get("status") != "completed":
        return "pending"
    return "success" if run.get("conclusion") in ("success", "neutral", "skipped") else "failure"


def _combine(states: list[str]) -> str:
    """Statuses and check runs together: any failure fails; any pending waits; else success."""
    if not states:
        return "none"
    if any(state in ("failure", "error") for state in states):
        return "failure"
    return "pending" if "pending" in states else "success"


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.RequestException):
        return True  # connection errors, timeouts, and urllib3's RetryError for a persisting 5xx
    if isinstance(exc, GithubException):
        return exc.status >= 500 or _rate_limited(exc)
    return False


def _rate_limited(exc: GithubException) -> bool:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if exc.status == 429 or "retry-after" in headers:
        return True
    message = str(exc.data).lower() if exc.data else ""
    return exc.status == 403 and (headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message)


def _retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, GithubException):
        return None
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if headers.get("retry-after", "").isdigit():
        return float(headers["retry-after"])
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    return None


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, GithubException):
        return "rate_limited" if _rate_limited(exc) else str(exc.status)
    return "connection_error"


def _domain_error(endpoint: str, exc: GithubException) -> Exception:
    message = exc.data.get("message", "") if isinstance(exc.data, dict) else str(exc.data or "")
    errors = exc.data.get("errors", []) if isinstance(exc.data, dict) else []
    detail = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    text = f"github {endpoint}: {exc.status} {message}" + (f" ({detail})" if detail else "")
    if exc.status in (403, 404) and "workflow" in (message + detail).lower():
        text += (". The revert touches .github/workflows: the token needs the Workflows write "
                 "permission")
    if exc.status >= 500 or _rate_limited(exc):
        return TransientError(text + " — still failing after retries; try again later")
    return UpstreamError(text)


def _json(body: str) -> Any:
    import json

    try:
        return json.loads(body) if body else None
    except ValueError:
        return {"message": body[:200]}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
