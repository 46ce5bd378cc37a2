"""Alertmanager webhook authentication: bearer or basic, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from bot.config import AlertmanagerSettings


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
