"""The incident page: the export document rendered as HTML with Jinja2 (autoescaped: alert text
is shown, never interpreted; no script, no external resource)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from bot.domain.durations import human_duration


@cache
def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("bot.adapters.export", "templates"),
                              autoescape=select_autoescape(default=True, default_for_string=True))
    environment.filters["duration"] = human_duration
    return environment


def render_html(document: dict[str, Any]) -> str:
    """The review page for one incident (schema version 1 document)."""
    return _environment().get_template("incident.html").render(doc=document)


def render_index(incidents: list[dict[str, Any]]) -> str:
    """The incident index: each incident's API shape plus `href`, the link to its page."""
    return _environment().get_template("incidents.html").render(incidents=incidents)
