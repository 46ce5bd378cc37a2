"""The incident page and index with the shipped templates (kept for callers that do not
configure `export.templates_dir`; see render.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

from bot.adapters.export.render import ExportRenderer


@cache
def _default() -> ExportRenderer:
    return ExportRenderer()


def render_html(document: dict[str, Any], *, chart: str | None = None) -> str:
    """The review page for one incident (schema version 1 document)."""
    return _default().html(document, chart=chart)


def render_markdown(document: dict[str, Any], *, chart: str | None = None) -> str:
    """The post-mortem draft in Markdown."""
    return _default().markdown(document, chart=chart)


def render_index(incidents: list[dict[str, Any]]) -> str:
    """The incident index: each incident's API shape plus `href`, the link to its page."""
    return _default().index(incidents)
