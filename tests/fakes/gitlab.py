"""A fake GitLab REST API (v4) over real HTTP, backed by a real bare repository, with fault injection.

Written from GitLab's REST documentation: projects addressed by numeric id or URL-encoded path
(an unencoded slash is a 404, as on GitLab), `PRIVATE-TOKEN` authentication, merge requests
(409 when an open one exists for the source branch, labels created on use, `Draft:` titles,
reviewers by user id), notes, a commit revert with `dry_run` done by real git, deployments with
GitLab's filters, ETags on merge requests, and RateLimit-* headers. Faults a test queues: 5xx,
429 with Retry-After or RateLimit-Reset, a slow answer, or a 502 after the write succeeded.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
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

API = "/api/v4"


def _stamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeGitLab(FaultyApi):
    def __init__(self, bare: Path, project: str = "acme/platform/gitops", project_id: int = 42,
                 version: str = "17.5.0") -> None:
        super().__init__()
        self.bare = bare
        self.project, self.project_id, self.version = project, project_id, version
        self.base_url = ""
        self.users = {"alice": 7, "bob": 8}
        self.merge_requests: dict[int, dict[str, Any]] = {}
        self.labels: set[str] = set()
        self.notes: list[dict[str, Any]] = []
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # sha -> external commit statuses, newest first
        self.deployments: list[dict[str, Any]] = []
        self.access_level = 40  # Maintainer
        self.scopes = ["api"]
        self.dry_runs: list[tuple[str, str]] = []  # (sha, branch)
        self.rate_remaining = 2000
        self.not_modified = 0  # 304 answers
        self.merges = 0  # merges made through the API (PUT .../merge), each a real merge commit
        self.app = self._build()

    # ---- helpers for tests ----
    def open_by_someone(self, iid: int, source: str, target: str = "main", sha: str = "") -> None:
        """A merge request a person opened (or pushed `sha` to), not through the API Backout uses."""
        self.merge_requests[iid] = {"id": 10_000 + iid, "iid": iid, "project_id": self.project_id, "title": source,
                                    "state": "opened", "source_branch": source, "target_branch": target, "sha": sha,
                                    "labels": [], "reviewers": [], "created_at": _stamp(), "updated_at": _stamp()}

    def merge(self, iid: int, by: str = "alice") -> None:
        self.merge_requests[iid].update(state="merged", merged_at=_stamp(), updated_at=_stamp(),
                                        merge_user={"id": self.users.get(by, 1), "username": by},
                                        merged_by={"id": self.users.get(by, 1), "username": by})

    def close(self, iid: int) -> None:
        self.merge_requests[iid].update(state="closed", closed_at=_stamp(), updated_at=_stamp())

    def set_merge_status(self, iid: int, status: str) -> None:
        """GitLab's `detailed_merge_status`: mergeable, conflict, not_approved, ci_must_pass, checking, ..."""
        self.merge_requests[iid].update(detailed_merge_status=status, updated_at=_stamp())

    def _merge(self, iid: int, data: dict[str, Any]) -> JSONResponse:
        """PUT .../merge as GitLab answers it: 405 when it cannot merge, 409 when the head moved."""
        merge_request = self.merge_requests[iid]
        if merge_request["state"] != "opened" or merge_request["detailed_merge_status"] != "mergeable":
            return JSONResponse({"message": "405 Method Not Allowed"}, status_code=405)
        if data.get("sha") and data["sha"] != self._branch_sha(merge_request["source_branch"]):
            return JSONResponse({"message": "SHA does not match HEAD of source branch"}, status_code=409)
        head = merge_request["source_branch"]
        merged = merge_in_bare(self.bare, head=head, base=merge_request["target_branch"],
                               message=data.get("merge_commit_message") or f"Merge branch '{head}'")
        if merged is None:
            return JSONResponse({"message": "Branch cannot be merged"}, status_code=422)
        self.merges += 1
        self.merge(iid, by="project_42_bot_1a2b")
        merge_request["merge_commit_sha"] = merged
        return JSONResponse(merge_request)

    def set_pipeline(self, iid: int, status: str) -> None:
        merge_request = self.merge_requests[iid]
        merge_request["head_pipeline"] = {"id": 900 + iid, "iid": iid, "project_id": self.project_id,
                                          "sha": merge_request["sha"], "status": status,
                                          "source": "merge_request_event"}
        merge_request["updated_at"] = _stamp()

    def add_deployment(self, sha: str, environment: str, status: str, finished: datetime) -> None:
        number = len(self.deployments) + 1
        stamp = _stamp(finished)
        self.deployments.append({
            "id": 500 + number, "iid": number, "ref": "main", "sha": sha, "status": status,
            "created_at": stamp, "updated_at": stamp, "finished_at": stamp if status == "success" else None,
            "environment": {"id": 1, "name": environment, "external_url": None},
            "deployable": {"id": 700 + number, "status": status, "finished_at": stamp, "commit": {"id": sha}},
        })

    def _branch_sha(self, branch: str) -> str | None:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                              cwd=self.bare, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def _revert_applies(self, sha: str, branch: str) -> str | None:
        """None when `sha` reverts cleanly on `branch` (real git, in a scratch clone), else why not."""
        with tempfile.TemporaryDirectory(prefix="fake-gitlab-") as scratch:
            subprocess.run(["git", "clone", "--quiet", "--branch", branch, str(self.bare), scratch],
                           capture_output=True, check=True)
            parents = subprocess.run(["git", "rev-list", "--parents", "-n1", sha], cwd=scratch, capture_output=True,
                                     text=True, check=True).stdout.split()[1:]
            mainline = ["-m", "1"] if len(parents) > 1 else []  # a merge is reverted against its first parent
            done = subprocess.run(["git", "revert", "--no-commit", *mainline, sha], cwd=scratch, capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                return "conflict"
            staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=scratch, check=False)
            return "empty" if staged.returncode == 0 else None

    # ---- the app ----
    def _build(self) -> FastAPI:
        app = FastAPI()
        project = API + "/projects/{ident:path}"

        @app.middleware("http")
        async def account(request: Request, call_next):  # type: ignore[no-untyped-def]
            path = request.url.path
            fault = self._count(request.method, path)
            if not request.headers.get("private-token"):
                return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
            raw = request.scope.get("raw_path", b"").decode()
            if path.startswith(API + "/projects/") and not self._addressed(raw):
                return JSONResponse({"message": "404 Project Not Found"}, status_code=404)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status and not fault.after_write:
                message = fault.message or ("Retry later" if fault.status == 429 else f"injected {fault.status}")
                return JSONResponse({"message": message}, status_code=fault.status, headers=fault.headers)
            response = await call_next(request)
            if fault is not None and fault.status:
                return JSONResponse({"message": "502 Bad Gateway"}, status_code=fault.status)
            with self.lock:
                self.rate_remaining -= 1
            response.headers["RateLimit-Limit"] = "2000"
            response.headers["RateLimit-Remaining"] = str(self.rate_remaining)
            response.headers["RateLimit-Reset"] = str(int(time.time()) + 60)
            return response

        def cached(request: Request, body: Any) -> Response:
            text = json.dumps(body, sort_keys=True)
            etag = 'W/"' + hashlib.sha1(text.encode()).hexdigest() + '"'  # noqa: S324 - an ETag
            if request.headers.get("if-none-match") == etag:
                self.not_modified += 1
                return Response(status_code=304, headers={"ETag": etag})
            return Response(text, media_type="application/json", headers={"ETag": etag})

        def missing(what: str) -> JSONResponse:
            return JSONResponse({"message": f"404 {what} Not Found"}, status_code=404)

        def mine(ident: str) -> bool:
            return ident.split("/merge_requests")[0] in (self.project, str(self.project_id))

        @app.get(API + "/version")
        def version() -> Response:
            return JSONResponse({"version": self.version, "revision": "6b4f3c1e", "kas": {"enabled": False}})

        @app.get(API + "/personal_access_tokens/self")
        def token_self() -> Response:
            return JSONResponse({"id": 3, "name": "backout", "revoked": False, "active": True,
                                 "scopes": self.scopes, "user_id": 99, "expires_at": "2027-12-31"})

        @app.get(API + "/users")
        def users(username: str = "") -> Response:
            found = self.users.get(username)
            return JSONResponse([] if found is None else [{"id": found, "username": username, "state": "active"}])

        @app.post(API + "/projects/{ident:path}/statuses/{sha}")
        async def create_status(ident: str, sha: str, request: Request) -> Response:
            """An external commit status; the same state again is refused, as GitLab does."""
            if not mine(ident):
                return missing("Project")
            data = await request.json()
            name = data.get("name") or data.get("context") or "default"
            latest = next((s for s in self.statuses.get(sha, []) if s["name"] == name), None)
            if latest is not None and latest["status"] == data["state"]:
                return JSONResponse({"message": f"Cannot transition status via :{data['state']} from "
                                                f":{latest['status']}"}, status_code=400)
            status = {"id": sum(map(len, self.statuses.values())) + 1, "sha": sha, "name": name,
                      "status": data["state"], "description": data.get("description"),
                      "target_url": data.get("target_url"), "created_at": _stamp()}
            self.statuses.setdefault(sha, []).insert(0, status)
            return JSONResponse(status, status_code=201)

        def paged(found: list[Any], per_page: int, page: int) -> Response:
            """One page as GitLab serves lists: per_page 20 by default, 100 at most, X-Next-Page."""
            per_page = min(max(per_page, 1), 100)
            more = {"X-Next-Page": str(page + 1)} if page * per_page < len(found) else {}
            return JSONResponse(found[(page - 1) * per_page:page * per_page],
                                headers={"X-Total": str(len(found)), "X-Page": str(page), **more})

        @app.get(API + "/projects/{ident:path}/merge_requests/{iid}/notes")
        def list_notes(ident: str, iid: int, sort: str = "desc", per_page: int = 20, page: int = 1) -> Response:
            found = [n for n in self.notes if n["noteable_iid"] == iid]
            return paged(found[::-1] if sort == "desc" else found, per_page, page)

        @app.post(API + "/projects/{ident:path}/merge_requests/{iid}/notes")
        async def create_note(ident: str, iid: int, request: Request) -> Response:
            if iid not in self.merge_requests:
                return missing("Merge Request")
            note = {"id": 3000 + len(self.notes), "body": (await request.json())["body"], "noteable_iid": iid,
                    "noteable_type": "MergeRequest", "system": False, "created_at": _stamp()}
            self.notes.append(note)
            return JSONResponse(note, status_code=201)

        @app.put(API + "/projects/{ident:path}/merge_requests/{iid}/notes/{note_id}")
        async def edit_note(ident: str, iid: int, note_id: int, request: Request) -> Response:
            note = next((n for n in self.notes if n["id"] == note_id), None)
            if note is None:
                return missing("Note")
            note["body"] = (await request.json())["body"]
            return JSONResponse(note)

        @app.get(API + "/projects/{ident:path}/merge_requests/{iid}")
        def get_merge_request(ident: str, iid: int, request: Request) -> Response:
            if iid not in self.merge_requests:
                return missing("Merge Request")
            return cached(request, self.merge_requests[iid])

        @app.put(API + "/projects/{ident:path}/merge_requests/{iid}/merge")
        async def merge_merge_request(ident: str, iid: int, request: Request) -> Response:
            if iid not in self.merge_requests:
                return missing("Merge Request")
            data = await request.json()
            with self.lock:
                return self._merge(iid, data)

        @app.put(API + "/projects/{ident:path}/merge_requests/{iid}")
        async def update_merge_request(ident: str, iid: int, request: Request) -> Response:
            if iid not in self.merge_requests:
                return missing("Merge Request")
            data = await request.json()
            merge_request = self.merge_requests[iid]
            added = [n for n in str(data.get("add_labels", "")).split(",") if n]
            self.labels.update(added)
            merge_request["labels"] += [n for n in added if n not in merge_request["labels"]]
            if "reviewer_ids" in data:
                merge_request["reviewers"] = self._reviewers(data["reviewer_ids"])
            if "title" in data:  # GitLab's draft is the title's prefix
                merge_request["title"] = data["title"]
                merge_request["draft"] = bool(re.match(r"^\s*(\[draft\]|\(draft\)|draft:|draft)", data["title"],
                                                       re.IGNORECASE))
            merge_request["updated_at"] = _stamp()
            return JSONResponse(merge_request)

        @app.get(API + "/projects/{ident:path}/merge_requests")
        def list_merge_requests(ident: str, source_branch: str = "", state: str = "all", per_page: int = 20,
                                page: int = 1) -> Response:
            found = [m for m in sorted(self.merge_requests.values(), key=lambda m: -m["iid"])
                     if (not source_branch or m["source_branch"] == source_branch)
                     and (state == "all" or m["state"] == state)]
            return paged(found, per_page, page)

        @app.post(API + "/projects/{ident:path}/merge_requests")
        async def create_merge_request(ident: str, request: Request) -> Response:
            data = await request.json()
            for key in ("source_branch", "target_branch", "title"):
                if not data.get(key):
                    return JSONResponse({"error": f"{key} is missing"}, status_code=400)
            head, base = data["source_branch"], data["target_branch"]
            sha = self._branch_sha(head)
            if sha is None or self._branch_sha(base) is None:
                return JSONResponse({"message": ["Source branch does not exist" if sha is None
                                                 else "Target branch does not exist"]}, status_code=422)
            with self.lock:
                existing = next((m for m in self.merge_requests.values()
                                 if m["source_branch"] == head and m["state"] == "opened"), None)
                if existing is not None:
                    return JSONResponse({"message": ["Another open merge request already exists for this "
                                                     f"source branch: !{existing['iid']}"]}, status_code=409)
                iid = len(self.merge_requests) + 1
                labels = [n for n in str(data.get("labels", "")).split(",") if n]
                self.labels.update(labels)
                title = data["title"]
                self.merge_requests[iid] = {
                    "id": 10_000 + iid, "iid": iid, "project_id": self.project_id, "title": title,
                    "description": data.get("description", ""), "state": "opened",
                    "draft": bool(re.match(r"^\s*(\[draft\]|\(draft\)|draft:|draft)", title, re.IGNORECASE)),
                    "source_branch": head, "target_branch": base, "sha": sha, "labels": labels,
                    "reviewers": self._reviewers(data.get("reviewer_ids", [])),
                    "author": {"id": 99, "username": "project_42_bot_1a2b"},
                    "merge_user": None, "merged_by": None, "merged_at": None, "closed_at": None,
                    "head_pipeline": None, "created_at": _stamp(), "updated_at": _stamp(),
                    "detailed_merge_status": "mergeable", "merge_commit_sha": None,
                    "web_url": f"https://gitlab.example/{self.project}/-/merge_requests/{iid}",
                    "references": {"short": f"!{iid}", "full": f"{self.project}!{iid}"},
                }
            return JSONResponse(self.merge_requests[iid], status_code=201)

        @app.post(API + "/projects/{ident:path}/repository/commits/{sha}/revert")
        async def revert(ident: str, sha: str, request: Request) -> Response:
            data = await request.json()
            branch = data.get("branch")
            if not branch:
                return JSONResponse({"error": "branch is missing"}, status_code=400)
            if self._branch_sha(branch) is None:
                return missing("Branch")
            if not data.get("dry_run"):
                return JSONResponse({"message": "this fake only answers dry runs"}, status_code=501)
            self.dry_runs.append((sha, branch))
            problem = self._revert_applies(sha, branch)
            if problem is not None:
                return JSONResponse({"message": "Sorry, we cannot revert this commit automatically. This "
                                                "commit may already have been reverted, or a more recent commit "
                                                "may have updated some of its content.", "error_code": problem},
                                    status_code=400)
            return JSONResponse({"dry_run": "success"})

        @app.get(API + "/projects/{ident:path}/deployments")
        def deployments(ident: str, environment: str = "", status: str = "", order_by: str = "id",
                        sort: str = "asc", finished_after: str = "", per_page: int = 20, page: int = 1) -> Response:
            if finished_after and (order_by != "finished_at" or status != "success"):
                return JSONResponse({"message": "`finished_at` filter and `finished_at` sort require `status` "
                                                "to be `success`"}, status_code=400)
            found = [d for d in self.deployments
                     if (not environment or d["environment"]["name"] == environment)
                     and (not status or d["status"] == status)
                     and (not finished_after or (d["finished_at"] or "") > finished_after.replace("Z", ".000Z"))]
            key = "finished_at" if order_by == "finished_at" else "id"
            found.sort(key=lambda d: d[key] or "", reverse=sort == "desc")
            return paged(found, per_page, page)

        @app.get(project)
        def get_project(ident: str) -> Response:
            if not mine(ident):
                return missing("Project")
            return JSONResponse({
                "id": self.project_id, "path_with_namespace": self.project, "default_branch": "main",
                "web_url": f"https://gitlab.example/{self.project}",
                "permissions": {"project_access": {"access_level": self.access_level, "notification_level": 3},
                                "group_access": None}})

        return app

    def _addressed(self, raw_path: str) -> bool:
        """The project named by its id or its URL-encoded path (an unencoded slash is a 404)."""
        rest = raw_path.split("/projects/", 1)[1]
        ident = rest.split("/", 1)[0]
        return ident in (str(self.project_id), self.project.replace("/", "%2F"))

    def _reviewers(self, ids: list[int]) -> list[dict[str, Any]]:
        names = {v: k for k, v in self.users.items()}
        return [{"id": i, "username": names[i]} for i in ids if i in names]

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self.app) as base_url:
            self.base_url = base_url
            yield self
