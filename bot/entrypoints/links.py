"""Links to an incident's page: the plain page, for text that outlives any token (pull requests,
drafts, exports), and the page with a signed, expiring token, for chat and the CLI to hand a
person now. Light on imports: the CLI's local reads sign links without building the app."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.config import Settings
from bot.domain.ports import Clock, Store
from bot.domain.untrusted import epoch_seconds
from bot.services.keys import LINK_KEY, shared_key


class PageLinks:
    """Signed, expiring tokens for the incident-page links Backout hands out (chat, the CLI):
    HMAC-SHA256 of the incident and the expiry with a server key, so a link opens one incident's
    page and no more. The key is given, or read when first needed (from the database, where every
    replica finds the same one)."""

    def __init__(self, secret: bytes | Callable[[], bytes], lifetime: timedelta) -> None:
        self._secret = secret if isinstance(secret, bytes) else None
        self._load = secret if callable(secret) else None
        self._lock = threading.Lock()
        self._lifetime = lifetime

    def _key(self) -> bytes:
        with self._lock:  # read once; a failure (the database down) is tried again next time
            if self._secret is None and self._load is not None:
                self._secret = self._load()
            assert self._secret is not None
            return self._secret

    def token(self, incident_id: int, *, now: datetime) -> str:
        expires = int((now + self._lifetime).timestamp())
        return f"{expires}.{self._sign(incident_id, expires)}"

    def allows(self, incident_id: int, token: str | None, *, now: datetime) -> bool:
        text, _, signature = (token or "").partition(".")
        expires = epoch_seconds(text)
        if expires is None or expires < now.timestamp():
            return False
        return hmac.compare_digest(signature.encode(), self._sign(incident_id, expires).encode())

    def _sign(self, incident_id: int, expires: int) -> str:
        return hmac.new(self._key(), f"INC-{incident_id}.{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def page_links(settings: Settings, *, store: Store, clock: Clock) -> PageLinks:
    """What signs the page links: api.link_secret, else the key every replica shares, made at the
    first start and kept in the database (read when a link is first signed or checked)."""
    secret = settings.api.link_secret
    if secret is not None:
        return PageLinks(secret.get_secret_value().encode(), settings.api.link_lifetime)
    return PageLinks(lambda: shared_key(store=store, name=LINK_KEY, now=clock()), settings.api.link_lifetime)


def incident_page(settings: Settings, incident_id: int) -> str | None:
    """The incident's page under server.public_url, with no token: what text that outlives any
    token carries (pull requests, drafts, exports); a signed-in browser opens it."""
    base = settings.server.public_url
    return f"{base.rstrip('/')}/incidents/INC-{incident_id}" if base else None


def signed_page(settings: Settings, links: PageLinks, incident_id: int, *, now: datetime) -> str | None:
    """The incident's page with a fresh signed token that opens it without signing in, until it
    expires: what chat and the CLI hand to a person."""
    page = incident_page(settings, incident_id)
    return f"{page}?t={links.token(incident_id, now=now)}" if page else None
