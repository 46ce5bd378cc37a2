"""The post-mortem draft with the shipped templates, for callers without an app context (the
templates a team sets with `export.templates_dir` go through the context's ExportRenderer)."""

from __future__ import annotations

from functools import cache
from typing import Any

from bot.adapters.export.render import ExportRenderer


@cache
def _default() -> ExportRenderer:
    return ExportRenderer()


def render_markdown(document: dict[str, Any], *, chart: str | None = None) -> str:
    """The post-mortem draft in Markdown."""
    return _default().markdown(document, chart=chart)
