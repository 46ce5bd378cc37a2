"""A fake GitHub REST API over real HTTP, backed by a real bare repository, with fault injection.

It serves the endpoints Backout uses, in the shapes of GitHub's REST documentation, with ETags
(304 answers do not count against the rate limit, as on GitHub), rate-limit headers, and
faults a test queues: 5xx, 403/429 with Retry-After, a slow answer, or a 502 after the write
succeeded. Every call is counted by endpoint, reads and writes apart.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bot.entrypoints.serving import serve_in_thread
from tests.fakes.faults import FaultyApi
from tests.gitrepos import merge_in_bare


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub(FaultyApi):
    def __init__(self, bare: Path, owner_repo: str = "acme/gitops") -> None:
        super().__init__()
        self.bare = bare
        self.owner, self.name = owner_repo.split("/")
        self.base_url = ""
        self.pulls: dict[int, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.deployments: list[dict[str, Any]] = []
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        self.rate_remaining = 5000
        self.as_app = False  # the token is a GitHub App installation's: it may create check runs
        # What the App's installation was granted (GET /app/installations/{id} "permissions")
        self.app_permissions: dict[str, str] = {"checks": "write", "contents": "write", "pull_requests": "write",
                                                "statuses": "write", "metadata": "read"}
        # What GET /repos/{owner}/{repo} says the token may do (None: not said, as for an app's token)
        self.permissions: dict[str, bool] | None = {"admin": False, "maintain": False, "push": True,
                                                     "triage": True, "pull": True}
        self.counter = 0
        self.merges = 0  # merges made through the API (PUT .../merge), each a real merge commit
        self.app = self._build()

    # ---- helpers for tests ----
    def open_by_someone(self, number: int, head: str, sha: str, base: str = "main") -> None:
        """A pull request a person opened (or pushed `sha` to), as GET .../pulls lists it."""
        self.pulls[number] = {"number": number, "state": "open", "draft": False, "merged": False,
                              "title": head, "html_url": f"https://github.com/{self.owner}/{self.name}/pull/{number}",
                              "head": {"ref": head, "sha": sha}, "base": {"ref": base}, "updated_at": _now()}

    def merge(self, number: int, by: str = "octocat") -> None:
        pull = self.pulls[number]
        pull.update(state="closed", merged=True, merged_at=_now(), closed_at=_now(),
                    merged_by={"login": by, "id": 1, "type": "User"}, updated_at=_now())

    def close(self, number: int) -> None:
        self.pulls[number].update(state="closed", closed_at=_now(), updated_at=_now())

    def set_mergeable(self, number: int, state: str) -> None:
        """What GitHub computes: clean, dirty (conflicts), blocked (protection), unstable, unknown, ..."""
        self.pulls[number].update(mergeable_state=state, mergeable={"unknown": None, "dirty": False}.get(state, True),
                                  updated_at=_now())

    def _merge(self, number: int, data: dict[str, Any]) -> JSONResponse:
        """PUT .../merge as GitHub answers it: 405 when it cannot merge, 409 when the head moved."""
        pull = self.pulls[number]
        if pull["merged"] or pull["state"] != "open" or pull["mergeable_state"] in ("dirty", "blocked", "unknown"):
            return JSONResponse({"message": "Pull Request is not mergeable"}, status_code=405)
        if data.get("sha") and data["sha"] != self._sha(pull["head"]["ref"]):
            return JSONResponse({"message": "Head branch was modified. Review and try the merge again."},
                                status_code=409)
        merged = merge_in_bare(self.bare, head=pull["head"]["ref"], base=pull["base"]["ref"],
                               message=data.get("commit_message") or f"Merge pull request #{number}")
        if merged is None:
            return JSONResponse({"message": "Merge conflict"}, status_code=405)
        self.merges += 1
        self.merge(number, by="backout[bot]")
        pull["merge_commit_sha"] = merged
        return JSONResponse({"sha": merged, "merged": True, "message": "Pull Request successfully merged"})

    def set_status(self, sha: str, state: str, context: str = "ci/test") -> None:
        self.statuses.setdefault(sha, []).insert(0, {
            "id": len(self.statuses) + 1, "state": state, "context": context, "created_at": _now(),
            "updated_at": _now(), "description": "", "target_url": None})

    def set_check_run(self, sha: str, name: str, status: str, conclusion: str | None = None) -> None:
        runs = [r for r in self.check_runs.get(sha, []) if r["name"] != name]
        runs.append({"id": len(runs) + 1, "name": name, "status": status, "conclusion": conclusion,
                     "head_sha": sha, "started_at": _now(), "completed_at": _now() if conclusion else None})
        self.check_runs[sha] = runs

    def add_deployment(self, sha: str, environment: str, state: str, at: datetime) -> None:
        number = len(self.deployments) + 1
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.deployments.insert(0, {"id": number, "sha": sha, "ref": sha, "environment": environment,
                                    "created_at": stamp, "updated_at": stamp,
                                    "url": f"{self.repo_url}/deployments/{number}",
                                    "statuses_url": f"{self.repo_url}/deployments/{number}/statuses"})
        self.deployment_statuses[number] = [{"id": number * 10, "state": state, "created_at": stamp,
                                             "environment": environment}]

    @property
    def repo_url(self) -> str:
        return f"{self.base_url}/repos/{self.owner}/{self.name}"

    def _branch_exists(self, branch: str) -> bool:
        return subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                              cwd=self.bare, capture_output=True, check=False).returncode == 0

    def _sha(self, ref: str) -> str:
        return subprocess.run(["git", "rev-parse", ref], cwd=self.bare, capture_output=True, text=True,
                              check=True).stdout.strip()

    # ---- the app ----
    def _build(self) -> FastAPI:
        app = FastAPI()
        repo = "/repos/{owner}/{name}"

        @app.middleware("http")
        async def account(request: Request, call_next):  # type: ignore[no-untyped-def]
            path = request.url.path
            fault = self._count(request.method, path)
            if not request.headers.get("authorization"):
                return JSONResponse({"message": "Requires authentication"}, status_code=401)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status and not fault.after_write:
                return JSONResponse({"message": fault.message or f"injected {fault.status}"},
                                    status_code=fault.status, headers=fault.headers)
            response = await call_next(request)
            if fault is not None and fault.status:
                return JSONResponse({"message": "Bad Gateway"}, status_code=fault.status)
            if response.status_code != 304:
                with self.lock:
                    self.rate_remaining -= 1
            response.headers["x-ratelimit-limit"] = "5000"
            response.headers["x-ratelimit-remaining"] = str(self.rate_remaining)
            response.headers["x-ratelimit-reset"] = str(int(time.time()) + 3600)
            return response

        def cached(request: Request, body: Any, status: int = 200) -> Response:
            raw = json.dumps(body, sort_keys=True)
            etag = '"' + hashlib.sha1(raw.encode()).hexdigest() + '"'  # noqa: S324 - an ETag
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag})
            return Response(raw, status_code=status, media_type="application/json",
                            headers={"ETag": etag, "Last-Modified": "Sat, 21 Nov 2026 00:00:00 GMT"})

        def invalid(message: str, code: str = "custom") -> JSONResponse:
            return JSONResponse({"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "code": code, "message": message}],
                "documentation_url": "https://docs.github.com/rest"}, status_code=422)

        @app.post("/app/installations/{installation}/access_tokens")
        def installation_token(installation: int) -> Response:
            """A GitHub App's installation token (asked with the App's JWT), with what it may do."""
            expires = datetime.fromtimestamp(time.time() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return JSONResponse({"token": f"ghs_installation_{installation}", "expires_at": expires,
                                 "permissions": self.app_permissions, "repository_selection": "all"},
                                status_code=201)

        @app.get("/app/installations/{installation}")
        def installation(installation: int) -> Response:
            """The installation as its App sees it (JWT): its permissions."""
            return JSONResponse({"id": installation, "app_id": 1234, "target_type": "Organization",
                                 "account": {"login": self.owner}, "permissions": self.app_permissions,
                                 "events": ["pull_request", "push"], "repository_selection": "all"})

        @app.get(repo)
        def get_repo(owner: str, name: str) -> Response:
            body: dict[str, Any] = {"id": 1, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                                    "private": True, "default_branch": "main"}
            if self.permissions is not None:
                body["permissions"] = self.permissions
            return JSONResponse(body)

        @app.post(repo + "/pulls")
        async def create_pull(owner: str, name: str, request: Request) -> Response:
            data = await request.json()
            head = data["head"].split(":")[-1]
            if not self._branch_exists(head):
                return invalid(f"head {head} invalid", "invalid")
            with self.lock:
                for pull in self.pulls.values():
                    if pull["head"]["ref"] == head and pull["state"] == "open":
                        return invalid(f"A pull request already exists for {self.owner}:{head}.")
                self.counter += 1
                number = self.counter
                self.pulls[number] = {
                    "id": 1000 + number, "node_id": f"PR_kwDO{number:08d}", "number": number, "state": "open",
                    "locked": False,
                    "title": data["title"], "body": data.get("body", ""), "draft": data.get("draft", False),
                    "url": f"{self.repo_url}/pulls/{number}",
                    "html_url": f"https://github.example/{self.owner}/{self.name}/pull/{number}",
                    "issue_url": f"{self.repo_url}/issues/{number}",
                    "head": {"ref": head, "sha": self._sha(head), "label": f"{self.owner}:{head}"},
                    "base": {"ref": data["base"], "sha": self._sha(data["base"])},
                    "merged": False, "merged_at": None, "merged_by": None, "closed_at": None,
                    "created_at": _now(), "updated_at": _now(), "labels": [],
                    "user": {"login": "backout[bot]", "id": 2, "type": "Bot"},
                    "requested_reviewers": [], "requested_teams": [],
                    "mergeable": True, "mergeable_state": "clean", "merge_commit_sha": None,
                }
            return JSONResponse(self.pulls[number], status_code=201)

        def paged(request: Request, found: list[Any], per_page: int, page: int) -> Response:
            """One page as GitHub serves lists: per_page 30 by default, 100 at most, a Link to the next."""
            per_page = min(max(per_page, 1), 100)
            response = cached(request, found[(page - 1) * per_page:page * per_page])
            if page * per_page < len(found):
                response.headers["Link"] = (f'<{request.url.include_query_params(page=page + 1)}>; rel="next", '
                                            f'<{request.url.include_query_params(page=-(-len(found) // per_page))}>; '
                                            'rel="last"')
            return response

        @app.get(repo + "/pulls")
        def list_pulls(owner: str, name: str, request: Request, head: str = "",
                       state: str = "open", per_page: int = 30, page: int = 1) -> Response:
            branch = head.split(":")[-1]
            found = [p for p in sorted(self.pulls.values(), key=lambda p: -p["number"])
                     if (not branch or p["head"]["ref"] == branch)
                     and (state == "all" or p["state"] == state)]
            return paged(request, found, per_page, page)

        @app.get(repo + "/pulls/{number}")
        def get_pull(owner: str, name: str, number: int, request: Request) -> Response:
            if number not in self.pulls:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            return cached(request, self.pulls[number])

        @app.put(repo + "/pulls/{number}/merge")
        async def merge_pull(owner: str, name: str, number: int, request: Request) -> Response:
            if number not in self.pulls:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            data = await request.json()
            with self.lock:
                return self._merge(number, data)

        @app.post("/graphql")
        async def graphql(request: Request) -> Response:
            data = await request.json()
            node = (data.get("variables", {}).get("input") or {}).get("pullRequestId")
            pull = next((p for p in self.pulls.values() if p["node_id"] == node), None)
            if "markPullRequestReadyForReview" not in data.get("query", "") or pull is None:
                return JSONResponse({"data": None, "errors": [{"type": "NOT_FOUND", "message": "no such pull"}]})
            pull.update(draft=False, updated_at=_now())
            return JSONResponse({"data": {"markPullRequestReadyForReview": {
                "clientMutationId": None, "pullRequest": {"isDraft": False}}}})

        @app.post(repo + "/issues/{number}/labels")
        async def add_labels(owner: str, name: str, number: int, request: Request) -> Response:
            data = await request.json()
            names = data["labels"] if isinstance(data, dict) else data
            for label in names:  # GitHub creates missing labels
                self.labels.setdefault(label, {"name": label, "color": "ededed", "default": False})
            pull = self.pulls[number]
            have = {label["name"] for label in pull["labels"]}
            pull["labels"] += [self.labels[n] for n in names if n not in have]
            return JSONResponse(pull["labels"])

        @app.post(repo + "/pulls/{number}/requested_reviewers")
        async def request_reviewers(owner: str, name: str, number: int, request: Request) -> Response:
            data = await request.json()
            pull = self.pulls[number]
            pull["requested_reviewers"] += [{"login": u} for u in data.get("reviewers", [])]
            pull["requested_teams"] += [{"slug": t} for t in data.get("team_reviewers", [])]
            return JSONResponse(pull, status_code=201)

        @app.post(repo + "/issues/{number}/comments")
        async def comment(owner: str, name: str, number: int, request: Request) -> Response:
            data = await request.json()
            self.comments.append({"id": len(self.comments) + 1, "issue": number, "body": data["body"]})
            return JSONResponse(self.comments[-1], status_code=201)

        @app.get(repo + "/issues/{number}/comments")
        def list_comments(owner: str, name: str, number: int, request: Request, per_page: int = 30,
                          page: int = 1) -> Response:
            return paged(request, [c for c in self.comments if c["issue"] == number], per_page, page)

        @app.patch(repo + "/issues/comments/{comment_id}")
        async def edit_comment(owner: str, name: str, comment_id: int, request: Request) -> Response:
            found = next((c for c in self.comments if c["id"] == comment_id), None)
            if found is None:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            found["body"] = (await request.json())["body"]
            return JSONResponse(found)

        @app.get(repo + "/commits/{ref}/status")
        def combined_status(owner: str, name: str, ref: str, request: Request) -> Response:
            statuses = self.statuses.get(ref, [])
            states = {s["state"] for s in statuses}
            state = ("failure" if states & {"failure", "error"} else "pending" if "pending" in states
                     or not statuses else "success")
            return cached(request, {"state": state, "sha": ref, "total_count": len(statuses),
                                    "statuses": statuses})

        @app.get(repo + "/commits/{ref}/check-runs")
        def check_runs(owner: str, name: str, ref: str, request: Request, check_name: str = "") -> Response:
            runs = [r for r in self.check_runs.get(ref, []) if not check_name or r["name"] == check_name]
            return cached(request, {"total_count": len(runs), "check_runs": runs})

        @app.post(repo + "/check-runs")
        async def create_check_run(owner: str, name: str, request: Request) -> Response:
            """Only a GitHub App's token may create check runs (403 for others, as on GitHub)."""
            if not self.as_app:
                return JSONResponse({"message": "You must authenticate via a GitHub App."}, status_code=403)
            if self.app_permissions.get("checks") != "write":
                return JSONResponse({"message": "Resource not accessible by integration"}, status_code=403)
            data = await request.json()
            run = {**data, "id": sum(map(len, self.check_runs.values())) + 1, "started_at": _now(),
                   "completed_at": _now() if data.get("conclusion") else None}
            self.check_runs.setdefault(data["head_sha"], []).append(run)
            return JSONResponse(run, status_code=201)

        @app.patch(repo + "/check-runs/{run_id}")
        async def update_check_run(owner: str, name: str, run_id: int, request: Request) -> Response:
            found = next((r for runs in self.check_runs.values() for r in runs if r["id"] == run_id), None)
            if found is None:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            found.update(await request.json())
            return JSONResponse(found)

        @app.post(repo + "/statuses/{sha}")
        async def create_status(owner: str, name: str, sha: str, request: Request) -> Response:
            data = await request.json()
            if data.get("state") not in ("error", "failure", "pending", "success"):
                return invalid("state is not included in the list", code="invalid")
            if len(data.get("description") or "") > 140:
                return invalid("description is too long (maximum is 140 characters)", code="invalid")
            status = {"id": sum(map(len, self.statuses.values())) + 1, "state": data["state"],
                      "context": data.get("context", "default"), "description": data.get("description"),
                      "target_url": data.get("target_url"), "created_at": _now(), "updated_at": _now()}
            self.statuses.setdefault(sha, []).insert(0, status)
            return JSONResponse(status, status_code=201)

        @app.get(repo + "/commits/{ref}/statuses")
        def statuses(owner: str, name: str, ref: str, request: Request) -> Response:
            return cached(request, self.statuses.get(ref, []))

        @app.get(repo + "/deployments")
        def deployments(owner: str, name: str, request: Request, environment: str = "",
                        sha: str = "") -> Response:
            return cached(request, [d for d in self.deployments
                                    if (not environment or d["environment"] == environment)
                                    and (not sha or d["sha"] == sha)])

        @app.get(repo + "/deployments/{number}/statuses")
        def deployment_statuses(owner: str, name: str, number: int, request: Request) -> Response:
            return cached(request, self.deployment_statuses.get(number, []))

        return app

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self.app) as base_url:
            self.base_url = base_url
            yield self
