"""A fake Slack Web API over real HTTP (for `WebClient(base_url=...)`): records the calls,
answers like Slack's documentation, and can answer 429 with Retry-After or `ok: false`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.entrypoints.serving import serve_in_thread


class FakeSlack:
    def __init__(self) -> None:
        self.base_url = ""
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses: list[dict[str, Any]] = []  # what respond() sent to response_url
        # (method, times left, body, headers)
        self.faults: list[tuple[str, int, dict[str, Any], dict[str, str]]] = []
        self.groups: dict[str, list[str]] = {}
        self.files: dict[str, bytes] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel -> top-level messages, newest first
        self.lock = threading.Lock()
        self.counter = 0
        self.app = self._build()

    def fail(self, method: str, *, times: int = 1, status: int = 200, error: str = "",
             retry_after: int | None = None) -> None:
        body = {"ok": False, "error": error or ("ratelimited" if status == 429 else "internal_error")}
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.faults.append((method, times, {"status": status, **body}, headers))

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def _ts(self) -> str:
        with self.lock:
            self.counter += 1
            return f"{int(time.time())}.{self.counter:06d}"

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/respond/{key}")
        async def respond(key: str, request: Request) -> JSONResponse:
            self.responses.append({"key": key, **json.loads(await request.body())})
            return JSONResponse({"ok": True})

        @app.post("/upload/{file_id}")
        async def upload(file_id: str, request: Request) -> JSONResponse:
            self.files[file_id] = await request.body()
            return JSONResponse({"ok": True})

        @app.api_route("/api/{method}", methods=["GET", "POST"])
        async def api(method: str, request: Request) -> JSONResponse:
            raw = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                args: dict[str, Any] = json.loads(raw or b"{}")
            else:
                args = dict(parse_qsl(raw.decode())) | dict(request.query_params)
            with self.lock:
                self.calls.append((method, args))
                for index, (name, times, body, headers) in enumerate(self.faults):
                    if name == method and times > 0:
                        self.faults[index] = (name, times - 1, body, headers)
                        status = body.get("status", 200)
                        return JSONResponse({k: v for k, v in body.items() if k != "status"},
                                            status_code=status, headers=headers)
            return JSONResponse(self._answer(method, args))

        return app

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "backout",
                    "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.postMessage":
            ts = self._ts()
            message = {"type": "message", "ts": ts, "text": args.get("text")}
            if args.get("metadata"):
                meta = args["metadata"]
                message["metadata"] = json.loads(meta) if isinstance(meta, str) else meta
            if not args.get("thread_ts"):
                with self.lock:
                    self.history.setdefault(str(args.get("channel")), []).insert(0, message)
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
        if method == "conversations.history":
            oldest = float(args.get("oldest") or 0)
            found = [m for m in self.history.get(str(args.get("channel")), []) if float(m["ts"]) >= oldest]
            if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
                found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
            return {"ok": True, "messages": found[: int(args.get("limit") or 100)], "has_more": False}
        if method in ("chat.update", "chat.postEphemeral"):
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts") or self._ts()}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1", **args.get("view", {})}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.groups.get(str(args.get("usergroup")), [])}
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.files) + 1}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")}
                                          for f in json.loads(args.get("files", "[]"))]}
        return {"ok": False, "error": "unknown_method"}

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self.app) as base_url:
            self.base_url = base_url
            yield self
