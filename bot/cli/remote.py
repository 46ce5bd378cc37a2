"""A running Backout's HTTP API, as the CLI uses it with `--server` (like `amtool
--alertmanager.url` or `kubectl --server`): on-call engineers need neither a shell in the pod
nor the database's credentials, only the URL and an API token."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bot.domain.errors import BackoutError


class RemoteError(BackoutError):
    """The server refused or could not be reached; the message says which and what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """`--token`, else the first token of `--token-file`: its first line that is not a comment,
    the token alone or `name: token` (the server's api.token_file form)."""
    if token:
        return token.strip()
    if token_file is None:
        return None
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RemoteError(f"--token-file {token_file}: cannot read: {exc.strerror}") from None
    first = next((line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")), None)
    if first is None:
        raise RemoteError(f"--token-file {token_file}: the file holds no token")
    return first[-1] if len(first) == 2 and first[0].endswith(":") else first[0]


class BackoutClient:
    """One method per API call; answers are the API's JSON, errors are RemoteError."""

    def __init__(self, server: str, *, token: str | None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not server.startswith(("http://", "https://")):
            raise RemoteError(f"--server {server}: give a URL, like http://backout.example:8080")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def list_incidents(self, *, status: str | None, limit: int) -> dict[str, Any]:
        return self._json("GET", "/api/incidents", params={"limit": limit, **({"status": status} if status else {})})

    def incident(self, ref: str) -> dict[str, Any]:
        return self._json("GET", f"/api/incidents/{ref}")

    def suspects(self, ref: str) -> dict[str, Any]:
        return self._json("GET", f"/api/incidents/{ref}/suspects")

    def plan(self, ref: str) -> dict[str, Any]:
        return self._json("GET", f"/api/incidents/{ref}/plan")

    def acknowledge(self, ref: str, *, by: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/ack", json={"by": by})

    def resolve(self, ref: str, *, by: str, note: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/resolve", json={"by": by, "note": note})

    def reopen(self, ref: str, *, by: str, note: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/reopen", json={"by": by, "note": note})

    def note(self, ref: str, *, by: str, text: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/notes", json={"by": by, "text": text})

    def update(self, ref: str, *, by: str, text: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/updates", json={"by": by, "text": text})

    def role(self, ref: str, *, by: str, role: str, user: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/roles", json={"by": by, "role": role, "user": user})

    def severity(self, ref: str, *, by: str, level: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/severity", json={"by": by, "severity": level})

    def rollback_plan(self, ref: str, *, commit: str | None) -> dict[str, Any]:
        return self._json("GET", f"/api/incidents/{ref}/rollback", params={"commit": commit} if commit else None)

    def rollback(self, ref: str, *, commit: str, by: str, force: bool = False) -> dict[str, Any]:
        override = {"force": True} if force else {}  # sent only when meant: a server before it refuses unknown keys
        return self._json("POST", f"/api/incidents/{ref}/rollback", json={"commit": commit, "by": by, **override})

    def hold(self, ref: str, *, by: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/hold", json={"by": by})

    def branch(self, ref: str, *, by: str, ready: bool) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/branch", json={"by": by, **({"ready": True} if ready else {})})

    def verdict(self, ref: str, *, verdict: str, sha: str | None, by: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{ref}/verdict", json={"verdict": verdict, "sha": sha, "by": by})

    def good(self, service: str, *, repo: str | None) -> dict[str, Any]:
        return self._json("GET", f"/api/services/{quote(service, safe='')}/good",
                          params={"repo": repo} if repo else None)

    def restore_plan(self, ref: str, *, include: Sequence[str], repo: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"include": list(include)} if include else {}
        return self._json("GET", f"/api/incidents/{ref}/restore", params={**params, **({"repo": repo} if repo else {})})

    def restore(self, ref: str, *, good: str, include: Sequence[str], repo: str | None, by: str) -> dict[str, Any]:
        optional: dict[str, Any] = {"include": list(include)} if include else {}
        optional |= {"repo": repo} if repo else {}
        return self._json("POST", f"/api/incidents/{ref}/restore", json={"good": good, "by": by, **optional})

    def freeze(self, target: str, *, by: str, reconcile_disabled: bool) -> dict[str, Any]:
        asked = {"reconcile_disabled": True} if reconcile_disabled else {}
        return self._json("POST", f"/api/incidents/{quote(target, safe='')}/freeze", json={"by": by, **asked})

    def unfreeze(self, target: str, *, by: str) -> dict[str, Any]:
        return self._json("POST", f"/api/incidents/{quote(target, safe='')}/unfreeze", json={"by": by})

    def freezes(self) -> dict[str, Any]:
        return self._json("GET", "/api/freezes")

    def report(self, *, since: str, service: str | None) -> dict[str, Any]:
        return self._json("GET", "/api/report", params={"since": since, **({"service": service} if service else {})})

    def accuracy(self, *, since: str) -> dict[str, Any]:
        return self._json("GET", "/api/report/accuracy", params={"since": since})

    def drift(self, *, since: str, service: str | None) -> dict[str, Any]:
        return self._json("GET", "/api/drift", params={"since": since, **({"service": service} if service else {})})

    def sync_drift(self, ref: str, *, by: str) -> dict[str, Any]:
        return self._json("POST", f"/api/drift/{ref}/sync", json={"by": by})

    def export(self, ref: str, *, format: str) -> str | bytes:
        answer = self._call("GET", f"/api/incidents/{ref}/export", params={"format": format})
        return answer.content if format == "png" else answer.text

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self._call(method, path, **kwargs).json()
        if not isinstance(answer, dict):
            raise RemoteError(f"{self.server}{path}: the answer is not a JSON object")
        return answer

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise RemoteError(f"{self.server} did not answer in time ({method} {path})") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.server}: {exc}") from None
        if response.status_code < 400:
            return response
        raise RemoteError(_explain(response), status=response.status_code)


def _explain(response: httpx.Response) -> str:
    """The server's own error text, with what to do for the usual ones."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:300]
    if isinstance(detail, list):  # validation errors: where and why, without pydantic's "Value error, "
        detail = "; ".join(f"{d.get('loc', '')}: {str(d.get('msg', '')).removeprefix('Value error, ')}"
                           if isinstance(d, dict) else str(d) for d in detail)
    hint = {401: " (give --token or --token-file with an API token: api.tokens on the server)",
            503: " (the server's storage is unavailable; try again shortly)"}.get(response.status_code, "")
    # The status stays on RemoteError.status; a person reads the server's words, not the code.
    return f"{detail or f'the server refused: {response.reason_phrase.lower()}'}{hint}"
