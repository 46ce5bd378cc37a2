"""Keys Backout makes for itself: random, made once, kept in the database and shared by every
replica (the page links' signing key when api.link_secret is unset)."""

from __future__ import annotations

import secrets
from datetime import datetime

from bot.domain.ports import Store

LINK_KEY = "page-links"  # signs the incident-page links handed to chat and the CLI


def shared_key(*, store: Store, name: str, now: datetime) -> bytes:
    """The key `name`: the one already kept, or 32 random bytes kept now. Replicas starting at
    once agree on one (the first to commit it)."""
    made = secrets.token_hex(32)
    return bytes.fromhex(store.run(lambda tx: tx.keys.get_or_add(name, made, at=now)))
