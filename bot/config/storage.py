"""Storage settings: the database's SQLAlchemy URL."""

from __future__ import annotations

from bot.config.section import Section


class StorageSettings(Section):
    url: str = "sqlite:///backout.db"
