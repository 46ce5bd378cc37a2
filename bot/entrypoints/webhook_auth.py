"""Request authentication: the Alertmanager webhook (bearer or basic) and the API (bearer tokens),
compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from bot.config import AlertmanagerSettings, ApiSettings
from bot.domain.untrusted import epoch_seconds


class WebhookAuth:
    """Checks an Authorization header against the configured credentials."""

    def __init__(self, settings: AlertmanagerSettings) -> None:
        self.scheme = settings.auth or "none"
        token = settings.bearer_token.get_secret_value() if settings.bearer_token else ""
        username = settings.basic_username or ""
        password = settings.basic_password.get_secret_value() if settings.basic_password else ""
        self._expected = (
            token.encode() if self.scheme == "bearer" else f"{username}:{password}".encode()
        )

    @property
    def challenge(self) -> str:
        return 'Basic realm="backout"' if self.scheme == "basic" else 'Bearer realm="backout"'

    def allows(self, authorization: str | None) -> bool:
        if self.scheme == "none":
            return True
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if self.scheme == "bearer":
            given = credentials.strip().encode() if scheme.lower() == "bearer" else b""
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
        else:
            given = b""
        # compare_digest keeps the comparison constant-time whatever the lengths.
        return bool(given) and hmac.compare_digest(given, self._expected)


class ApiAuth:
    """Checks a bearer token against the API's tokens, each compared in constant time, and says
    whose it is: the token's name is who the caller is (a `by` in a body is only whom they act for)."""

    ANONYMOUS = "api"  # the caller with api.auth none and no valid token

    def __init__(self, settings: ApiSettings) -> None:
        self.scheme = settings.auth
        self._tokens = [(token.name, token.token.get_secret_value().encode()) for token in settings.tokens]

    def refusal(self, authorization: str | None) -> str | None:
        """None when the request may go on; otherwise what is missing, and nothing else."""
        if self.scheme == "none":
            return None
        if not self._tokens:
            return "the API needs a token and none is configured (api.tokens or api.token_file)"
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return "send an API token as 'Authorization: Bearer <token>'"
        return None if self._holder(credentials) else "the API token is not valid"

    def caller(self, authorization: str | None) -> str:
        """The name of the token the request carries; `api` when none is needed and none is valid.
        Only for a request `refusal` let through."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        found = self._holder(credentials) if scheme.lower() == "bearer" else None
        return found or self.ANONYMOUS

    def _holder(self, credentials: str) -> str | None:
        given = credentials.strip().encode()
        found = None
        for name, token in self._tokens:  # every token is compared, so timing says nothing of which
            if hmac.compare_digest(given, token):
                found = name
        return found if given else None


class PageSessions:
    """The incident pages' sign-in cookie: `<expiry>.<HMAC-SHA256>` of the expiry keyed by the API
    token the person signed in with. It holds no token, so it is no API credential; it opens on
    every replica and after a restart with no key to share; it stops opening when its token leaves
    `api.tokens`. The routes that honour it are the pages' reads, nothing else."""

    def __init__(self, settings: ApiSettings) -> None:
        self._tokens = [token.token.get_secret_value().encode() for token in settings.tokens]
        self.lifetime = settings.session_lifetime

    def issue(self, token: str, *, now: datetime) -> str | None:
        """The cookie's value for a valid API token; None for any other."""
        given = token.strip().encode()
        expires = int((now + self.lifetime).timestamp())
        found = None
        for known in self._tokens:  # every token is compared and signed: timing says nothing of which
            signed = self._sign(known, expires)
            if hmac.compare_digest(given, known):
                found = signed
        return f"{expires}.{found}" if given and found else None

    def allows(self, value: str | None, *, now: datetime) -> bool:
        text, _, signature = (value or "").partition(".")
        expires = epoch_seconds(text)
        if expires is None or expires < now.timestamp() or not signature:
            return False
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(signature.encode(), self._sign(known, expires).encode())
        return matched

    @staticmethod
    def _sign(key: bytes, expires: int) -> str:
        # The label keeps a session's signature from ever equalling another use of the same key.
        return hmac.new(key, f"backout-page-session.{expires}".encode(), hashlib.sha256).hexdigest()[:40]


class ControllerAuth:
    """A GitOps controller's webhook: Flux `generic-hmac` (`X-Signature: sha256=<hex>` of the raw
    body with the shared key) and/or a bearer token (Flux `generic` with an Authorization header,
    Argo CD's webhook service)."""

    def __init__(self, *, hmac_keys: Sequence[str] = (), token: str | None = None, name: str) -> None:
        # Every form of the key (as stored in its file, and stripped): the controller signs with
        # whichever its own Secret holds.
        self._keys = [key.encode() for key in dict.fromkeys(hmac_keys) if key]
        self._token = token.encode() if token else None
        self.name = name

    @property
    def configured(self) -> bool:
        return bool(self._keys) or self._token is not None

    def early_refusal(self, *, signature: str | None, authorization: str | None) -> str | None:
        """Why the request is refused before its body is read, or None: everything but an HMAC
        signature is decided by the headers alone."""
        if self._keys and signature:
            return None  # the body proves it: `refusal` once it is read, at most the route's cap
        return self.refusal(b"", signature=signature, authorization=authorization)

    def refusal(self, body: bytes, *, signature: str | None, authorization: str | None) -> str | None:
        """None when the request is authentic; otherwise why not (naming no secret)."""
        if not self.configured:
            return f"the {self.name} webhook has no credentials configured"
        if self._keys and signature:
            algorithm, _, given = signature.strip().partition("=")
            digest = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}.get(
                algorithm.lower())
            if digest is None:
                return f"X-Signature uses {algorithm[:20]!r}; expected sha256=<hex>"
            matched = False
            for key in self._keys:  # each form is compared, so timing says nothing of which matched
                expected = hmac.new(key, body, digest).hexdigest()
                matched |= hmac.compare_digest(given.strip().lower().encode(), expected.encode())
            return None if matched else "X-Signature does not match the body"
        if self._token is not None:
            scheme, _, credentials = (authorization or "").strip().partition(" ")
            given_token = credentials.strip().encode() if scheme.lower() == "bearer" else b""
            if given_token and hmac.compare_digest(given_token, self._token):
                return None
            return "missing or wrong bearer token"
        return "missing X-Signature (a generic-hmac Provider signs every event)"
