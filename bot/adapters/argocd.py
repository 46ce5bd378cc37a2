"""Argo CD's API, outbound: which managed resources of an Application drifted, field by field, and
the sync from Git that puts them back.

GET /api/v1/applications/{name}/managed-resources answers each resource with its target state
(from Git) and live state as JSON strings; the fields Git sets whose live value differs are the
drift; POST /api/v1/applications/{name}/sync syncs it from Git. Bearer token of an Argo CD
account with `applications, get` (and `applications, sync` to sync). Bounded: a timeout per call
and a few tries on a 5xx, a 429 (its Retry-After, capped) or a connection error."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from bot.domain.drift import DriftedResource, field_drifts
from bot.domain.errors import RateLimited, TransientError, UpstreamError

log = structlog.get_logger(__name__)


class ManagedResource(BaseModel):
    """One item of Argo CD's `managed-resources` answer (v1alpha1 ResourceDiff)."""

    model_config = ConfigDict(extra="ignore")

    group: str = ""
    kind: str
    namespace: str = ""
    name: str
    targetState: str | None = None  # noqa: N815 - Argo CD's field names
    liveState: str | None = None  # noqa: N815
    normalizedLiveState: str | None = None  # noqa: N815
    modified: bool = False

    def drifted(self) -> DriftedResource | None:
        """The resource as drift, or None when its live state is Git's."""
        wanted, live = _loaded(self.targetState), _loaded(self.normalizedLiveState or self.liveState)
        if wanted is None:
            return None  # not in Git (extra in the cluster): pruning decides, not drift
        if live is None:
            return DriftedResource(kind=self.kind, namespace=self.namespace, name=self.name, how="removed")
        fields = field_drifts(wanted, live)
        if not fields and not self.modified:
            return None
        return DriftedResource(kind=self.kind, namespace=self.namespace, name=self.name, fields=fields)


class ManagedResources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[ManagedResource] | None = None


class ArgoCdClient:
    """Implements the ArgoCdApi port over httpx."""

    def __init__(self, url: str, *, token: str, timeout: float = 10.0, ca_file: Path | None = None,
                 attempts: int = 3, max_wait: float = 5.0) -> None:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, verify=verify,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._attempts, self._max_wait = attempts, max_wait

    def close(self) -> None:
        self._http.close()

    def drifted(self, app: str, *, namespace: str | None = None) -> list[DriftedResource]:
        body = self._call("GET", f"/api/v1/applications/{quote(app, safe='')}/managed-resources",
                          params=_namespaced(namespace))
        try:
            items = ManagedResources.model_validate(body).items or []
        except ValidationError as exc:
            raise UpstreamError(f"argocd: the managed resources of {app} are not what Argo CD answers: "
                                f"{exc.error_count()} errors") from exc
        return [found for item in items[:500] if (found := item.drifted()) is not None]

    def sync(self, app: str, *, namespace: str | None = None) -> str:
        # A sync twice is harmless (both sync to Git), so a 5xx is tried again like a read.
        body = self._call("POST", f"/api/v1/applications/{quote(app, safe='')}/sync",
                          json={"prune": False, **_namespaced(namespace)})
        state = (body.get("status") or {}).get("operationState") or {} if isinstance(body, dict) else {}
        return str(state.get("phase") or "requested")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True,
                            stop=stop_after_attempt(self._attempts), wait=self._wait)
        for attempt in retrying:
            with attempt:
                return self._once(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"argocd: no answer from {self._http.base_url} in time") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"argocd: cannot reach {self._http.base_url}: {exc}") from exc
        if response.status_code == 429:
            raise RateLimited("argocd: rate limited", retry_after=_seconds(response.headers.get("retry-after")))
        if response.status_code >= 500:
            raise TransientError(f"argocd: {response.status_code} from {path}")
        if response.status_code in (401, 403):
            raise UpstreamError(f"argocd: {response.status_code}: check argocd.api_token_file (an account "
                                "token with `applications, get`, and `sync` to sync, on this application)")
        if response.status_code >= 400:
            raise UpstreamError(f"argocd: {response.status_code} from {path}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"argocd: {path} did not answer JSON") from exc

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self._max_wait)
        return min(0.2 * 2.0 ** (state.attempt_number - 1), self._max_wait)


def _namespaced(namespace: str | None) -> dict[str, str]:
    """Argo CD's `appNamespace`, for an Application outside Argo CD's own namespace."""
    return {"appNamespace": namespace} if namespace and namespace != "argocd" else {}


def _loaded(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _seconds(text: str | None) -> float | None:
    return float(text) if text is not None and text.isdigit() and len(text) < 6 else None
