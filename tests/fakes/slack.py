"""A fake Slack Web API over real HTTP (for `WebClient(base_url=...)`): records the calls,
answers like Slack's documentation, and can answer 429 with Retry-After or `ok: false`.

As Slack does, `chat.postMessage` takes a channel's name or ID and answers with the ID; the
methods that read or change a channel (history, replies, updates, pins, reactions, permalinks)
take only the ID and answer `channel_not_found` to a name. History and replies page by cursor.
People's side: `say` posts as a person, `pin` and `react` mark a message and return the event
Slack sends for it (also kept in `events`); `apps.connections.open` takes only an app-level token
and answers with the Socket Mode server's URL (tests/fakes/slack_socket.py).
Channels are made by `conversations.create` (`name_taken` when the name exists), people invited,
channels archived and unarchived (`not_archived`, `channel_not_found`), users found by email
(`users.lookupByEmail`, `users_not_found`)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Self
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.entrypoints.serving import serve_in_thread

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # C123ABC; a name is lowercase (#inc-checkout)
TAKES_NAMES = frozenset({"chat.postMessage", "chat.postEphemeral", "chat.scheduleMessage"})
CHANNEL_ARGS = ("channel", "channel_id")
MARKING = frozenset({"pins.add", "pins.remove", "pins.list", "reactions.add", "reactions.remove", "reactions.get"})
ROOM_METHODS = frozenset({"conversations.create", "conversations.invite", "conversations.archive",
                          "conversations.unarchive", "users.lookupByEmail"})


class FakeSlack:
    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.base_url = ""
        self.clock = clock  # a test's clock for the messages' ts; the machine's time without one
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses: list[dict[str, Any]] = []  # what respond() sent to response_url
        # (method, times left, body, headers)
        self.faults: list[tuple[str, int, dict[str, Any], dict[str, str]]] = []
        self.groups: dict[str, list[str]] = {}
        self.files: dict[str, bytes] = {}
        self.channels: dict[str, str] = {}  # name (without '#') -> ID, made by the first post there
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel ID -> its messages, newest first
        self.threads: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (ID, parent ts) -> replies, oldest first
        self.pins: dict[str, list[str]] = {}  # channel ID -> pinned messages' ts
        self.reactions: dict[tuple[str, str], dict[str, list[str]]] = {}  # (ID, ts) -> emoji -> users
        self.events: list[dict[str, Any]] = []  # the events Slack would send the app, oldest first
        self.socket_url: Callable[[], str] | None = None  # apps.connections.open's answer (FakeSocketMode.url)
        self.made: dict[str, dict[str, Any]] = {}  # channel ID -> what conversations.create recorded
        self.members: dict[str, set[str]] = {}  # channel ID -> users invited
        self.archived: set[str] = set()
        self.emails: dict[str, str] = {}  # email -> user ID, for users.lookupByEmail
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

    def channel_id(self, name: str) -> str:
        """The ID of a channel by name (made if new), as Slack's answer to a post there gives it."""
        with self.lock:
            return self.channels.setdefault(name.removeprefix("#"), f"C{len(self.channels) + 1:08d}")

    def _ts(self) -> str:
        with self.lock:
            self.counter += 1
            now = self.clock().timestamp() if self.clock else time.time()
            return f"{int(now)}.{self.counter:06d}"

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
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            with self.lock:
                self.calls.append((method, args))
                for index, (name, times, body, headers) in enumerate(self.faults):
                    if name == method and times > 0:
                        self.faults[index] = (name, times - 1, body, headers)
                        status = body.get("status", 200)
                        return JSONResponse({k: v for k, v in body.items() if k != "status"},
                                            status_code=status, headers=headers)
            if method not in TAKES_NAMES and any(
                    isinstance(args.get(key), str) and not CHANNEL_ID.fullmatch(args[key]) for key in CHANNEL_ARGS):
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            if method == "apps.connections.open":
                return JSONResponse(self._connections_open(token))
            if method in MARKING:
                return JSONResponse(self._marking(method, args))
            if method.startswith("chat.") and args.get("channel") in self.archived:
                return JSONResponse({"ok": False, "error": "is_archived"})
            return JSONResponse(self._answer(method, args))

        return app

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "backout",
                    "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.postMessage":
            return self._post(args)
        if method == "conversations.history":
            return self._page(self.history.get(args["channel"], []), args)
        if method == "conversations.replies":  # `ts`: the parent's, or a reply's (its thread is read)
            found = self.message(args["channel"], str(args.get("ts")))
            parent = found and self.message(args["channel"], found.get("thread_ts") or found["ts"])
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            return self._page([parent, *self.threads.get((args["channel"], parent["ts"]), [])], args)
        if method == "chat.getPermalink":
            found = self.message(args["channel"], str(args.get("message_ts")))
            if found is None:
                return {"ok": False, "error": "message_not_found"}
            return {"ok": True, "channel": args["channel"], "permalink": self.permalink(args["channel"], found)}
        if method == "conversations.list":
            listed = [{"id": cid, "name": name, "is_channel": True, **self.made.get(cid, {})}
                      for name, cid in self.channels.items() if cid not in self.archived]
            return self._page(listed, args, key="channels")
        if method in ROOM_METHODS:
            return self._room(method, args)
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

    def _room(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Making, joining and archiving channels, and finding people by email, as Slack answers."""
        if method == "users.lookupByEmail":
            user = self.emails.get(str(args.get("email", "")).lower())
            return {"ok": True, "user": {"id": user}} if user else {"ok": False, "error": "users_not_found"}
        if method == "conversations.create":
            name = str(args.get("name", ""))
            if not re.fullmatch(r"[a-z0-9_-]{1,80}", name):
                return {"ok": False, "error": "invalid_name_specials"}
            with self.lock:
                if name in self.channels:
                    return {"ok": False, "error": "name_taken"}
                cid = self.channels[name] = f"C{len(self.channels) + 1:08d}"
                created = int(self.clock().timestamp() if self.clock else time.time())
                private = str(args.get("is_private", "")).lower() in ("1", "true")
                self.made[cid] = {"creator": "UBOT", "created": created, "is_private": private}
            return {"ok": True, "channel": {"id": cid, "name": name, "is_private": private, "created": created}}
        channel = str(args.get("channel"))
        if channel not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.unarchive":
            if channel not in self.archived:
                return {"ok": False, "error": "not_archived"}
            self.archived.discard(channel)
            return {"ok": True}
        if channel in self.archived:
            return {"ok": False, "error": "already_archived" if method == "conversations.archive" else "is_archived"}
        if method == "conversations.archive":
            self.archived.add(channel)
            return {"ok": True}
        users = [u for u in str(args.get("users", "")).split(",") if u]
        members = self.members.setdefault(channel, set())
        if users and all(u in members for u in users):
            return {"ok": False, "error": "already_in_channel"}
        members.update(users)
        return {"ok": True, "channel": {"id": channel}}

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        """A message in the channel, or a reply in a thread (also in the channel when broadcast)."""
        named = str(args.get("channel"))
        channel = named if CHANNEL_ID.fullmatch(named) else self.channel_id(named)
        ts = self._ts()
        message: dict[str, Any] = {"type": "message", "ts": ts, "text": args.get("text")}
        if args.get("metadata"):
            meta = args["metadata"]
            message["metadata"] = json.loads(meta) if isinstance(meta, str) else meta
        parent = args.get("thread_ts")
        with self.lock:
            if parent:
                message["thread_ts"] = parent
                self.threads.setdefault((channel, str(parent)), []).append(message)
            if not parent or str(args.get("reply_broadcast")).lower() in ("1", "true"):
                self.history.setdefault(channel, []).insert(0, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def say(self, channel: str, text: str, *, user: str, thread_ts: str | None = None) -> str:
        """A person's message in the channel (by ID), or in a thread there: its ts."""
        ts = self._ts()
        message: dict[str, Any] = {"type": "message", "ts": ts, "text": text, "user": user}
        with self.lock:
            if thread_ts:
                message["thread_ts"] = thread_ts
                self.threads.setdefault((channel, thread_ts), []).append(message)
            else:
                self.history.setdefault(channel, []).insert(0, message)
        return ts

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message `ts` of a channel: in its history or in one of its threads."""
        with self.lock:
            found = [m for m in self.history.get(channel, []) if m["ts"] == ts]
            found += [m for (where, _), replies in self.threads.items() if where == channel
                      for m in replies if m["ts"] == ts]
        return found[0] if found else None

    def permalink(self, channel: str, message: dict[str, Any]) -> str:
        link = f"https://acme.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
        thread = message.get("thread_ts")
        return link + (f"?thread_ts={thread}&cid={channel}" if thread and thread != message["ts"] else "")

    def pin(self, channel: str, ts: str, *, user: str, add: bool = True) -> dict[str, Any]:
        """A person pins (or unpins) a message: what Slack records, and the event it sends."""
        answer = self._marking("pins.add" if add else "pins.remove", {"channel": channel, "timestamp": ts}, user=user)
        assert answer["ok"], answer
        return self.events[-1]

    def react(self, channel: str, ts: str, *, user: str, name: str = "pushpin", add: bool = True) -> dict[str, Any]:
        """A person adds (or removes) a reaction: what Slack records, and the event it sends."""
        answer = self._marking("reactions.add" if add else "reactions.remove",
                               {"channel": channel, "timestamp": ts, "name": name}, user=user)
        assert answer["ok"], answer
        return self.events[-1]

    def _marking(self, method: str, args: dict[str, Any], *, user: str = "UBOT") -> dict[str, Any]:
        """pins.add/remove/list and reactions.add/remove/get, with the events Slack sends for them."""
        channel, ts = str(args.get("channel")), str(args.get("timestamp", ""))
        if method == "pins.list":
            return {"ok": True, "items": [{"type": "message", "channel": channel, "message": self.message(channel, t)}
                                          for t in self.pins.get(channel, [])]}
        found = self.message(channel, ts)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        if method == "reactions.get":
            return {"ok": True, "type": "message", "channel": channel, "message": {**found, "reactions": [
                {"name": name, "users": users, "count": len(users)}
                for name, users in self.reactions.get((channel, ts), {}).items() if users]}}
        if method.startswith("pins."):
            return self._pin(method == "pins.add", channel, found, user)
        return self._react(method == "reactions.add", channel, found, str(args.get("name", "")), user)

    def _pin(self, add: bool, channel: str, found: dict[str, Any], user: str) -> dict[str, Any]:
        with self.lock:
            pinned = self.pins.setdefault(channel, [])
            if add == (found["ts"] in pinned):
                return {"ok": False, "error": "already_pinned" if add else "no_pin"}
            pinned.append(found["ts"]) if add else pinned.remove(found["ts"])
            message = {k: v for k, v in found.items() if k != "metadata"}
            self.events.append({"type": "pin_added" if add else "pin_removed", "user": user, "channel_id": channel,
                                "item": {"type": "message", "channel": channel, "created": int(time.time()),
                                         "created_by": user, "message": message},
                                "item_user": found.get("user", ""), "pin_count": str(len(pinned)),
                                "event_ts": f"{time.time():.6f}"})
        return {"ok": True}

    def _react(self, add: bool, channel: str, found: dict[str, Any], name: str, user: str) -> dict[str, Any]:
        with self.lock:
            users = self.reactions.setdefault((channel, found["ts"]), {}).setdefault(name, [])
            if add == (user in users):
                return {"ok": False, "error": "already_reacted" if add else "no_reaction"}
            users.append(user) if add else users.remove(user)
            self.events.append({"type": "reaction_added" if add else "reaction_removed", "user": user,
                                "reaction": name, "item_user": found.get("user", ""),
                                "item": {"type": "message", "channel": channel, "ts": found["ts"]},
                                "event_ts": f"{time.time():.6f}"})
        return {"ok": True}

    def _connections_open(self, token: str) -> dict[str, Any]:
        """Socket Mode: only an app-level token opens a connection; the answer is a one-time URL."""
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if self.socket_url is None:
            return {"ok": False, "error": "internal_error"}
        return {"ok": True, "url": self.socket_url()}

    @staticmethod
    def event_callback(event: dict[str, Any]) -> dict[str, Any]:
        """An event as the Events API wraps it (the body in HTTP mode, the payload in Socket Mode)."""
        return {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "event": event, "type": "event_callback",
                "event_id": f"Ev{abs(hash(json.dumps(event, sort_keys=True))):012d}", "event_time": int(time.time()),
                "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}]}

    @staticmethod
    def _page(items: list[dict[str, Any]], args: dict[str, Any], key: str = "messages") -> dict[str, Any]:
        """One page of messages (or channels) within `oldest`/`latest`, from `cursor`, at most `limit`."""
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        found = [m for m in items if "ts" not in m or (
            (oldest <= float(m["ts"]) <= latest) if inclusive else (oldest < float(m["ts"]) < latest))]
        if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        start = int(base64.b64decode(args["cursor"]).decode().removeprefix("next:")) if args.get("cursor") else 0
        end = start + min(int(args.get("limit") or 100), 999)
        more = end < len(found)
        cursor = base64.b64encode(f"next:{end}".encode()).decode() if more else ""
        return {"ok": True, key: found[start:end], "has_more": more, "response_metadata": {"next_cursor": cursor}}

    @contextmanager
    def serving(self) -> Iterator[Self]:
        with serve_in_thread(self.app) as base_url:
            self.base_url = base_url
            yield self


class AnswerLost(WebClient):
    """Slack posts the message, then the answer never arrives (a read time-out; a kill -9 looks
    the same to the next delivery): `replies` picks thread replies, else the incident's message;
    `event_type` only the posts carrying that metadata (a room's pointer, say); `status` answers
    Slack's 5xx instead of timing out."""

    def __init__(self, *, replies: bool, event_type: str | None = None, status: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replies = replies
        self.event_type = event_type
        self.status = status

    def chat_postMessage(self, **kwargs: Any) -> SlackResponse:  # noqa: N802 (slack_sdk's name)
        answer = super().chat_postMessage(**kwargs)
        if ("thread_ts" in kwargs) != self.replies:
            return answer
        if self.event_type is not None and (kwargs.get("metadata") or {}).get("event_type") != self.event_type:
            return answer
        if self.status is not None:
            lost = SlackResponse(client=self, http_verb="POST", api_url=answer.api_url, req_args={},
                                 data={"ok": False, "error": "internal_error"}, headers={}, status_code=self.status)
            raise SlackApiError("internal_error", lost)
        raise TimeoutError("The read operation timed out")
