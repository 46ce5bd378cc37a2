"""The export's Markdown and HTML, from Jinja2 templates a team can override.

Templates ship in this package (`templates/`); `export.templates_dir` names a folder whose files
of the same names replace them, one by one. Templates render in Jinja2's SandboxedEnvironment,
and what they render is data: alert and user text is never template code (`{{ 7*7 }}` in a label
stays `{{ 7*7 }}`). HTML autoescapes. Markdown goes through `md`: what Markdown would interpret is
backslashed, without HTML entities (`5xx > 5%` reads the same on GitHub, in Confluence and in
Slack); shas and queries go in code spans; links are made only of http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from bot.domain.durations import human_duration
from bot.domain.text import md, safe

MARKDOWN, HTML, INDEX = "postmortem.md", "incident.html", "incidents.html"


class ExportRenderer:
    """Renders the export document (schema version 1) as Markdown or an HTML page."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        loaders: list[BaseLoader] = [FileSystemLoader(str(templates_dir))] if templates_dir else []
        loader = ChoiceLoader([*loaders, PackageLoader("bot.adapters.export", "templates")])
        self._markdown = _environment(loader, autoescape=False)
        self._html = _environment(loader, autoescape=True)

    def markdown(self, doc: dict[str, Any], *, chart: str | None = None) -> str:
        """`chart`: where the chart image is (a file name next to the Markdown, or a URL)."""
        return self._markdown.get_template(MARKDOWN).render(doc=doc, chart=chart)

    def html(self, doc: dict[str, Any], *, chart: str | None = None) -> str:
        """`chart`: the chart as a `data:image/png;base64,...` URI (the page has no outside asset)."""
        return self._html.get_template(HTML).render(doc=doc, chart=chart)

    def index(self, incidents: list[dict[str, Any]], *, signed_in: bool = False) -> str:
        """The incident index: each incident's API shape plus `href`, the link to its page;
        `signed_in`: the reader's browser signed in (the page offers to sign out)."""
        return self._html.get_template(INDEX).render(incidents=incidents, signed_in=signed_in)


def _environment(loader: BaseLoader, *, autoescape: bool) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        loader=loader, undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=select_autoescape(default=True, default_for_string=True) if autoescape else False)
    filters: dict[str, Callable[..., Any]] = {
        "duration": human_duration, "utc": utc, "short": short,
    }
    if autoescape:
        filters |= {"link": html_link}
    else:
        filters |= {"md": md, "code": code, "link": md_link}
    environment.filters.update(filters)
    return environment


def utc(value: str | None) -> str:
    """`2026-11-21 22:21:00 UTC`: one format everywhere, kept on one line."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d\u00a0%H:%M:%S\u00a0UTC")


def short(sha: str | None, length: int = 12) -> str:
    return (sha or "")[:length]


def http_url(url: str | None) -> str | None:
    """The URL if it is http(s) with a host, else None: no javascript:, data:, file: links."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def html_link(url: str | None, text: str | None = None) -> Markup:
    """`<a href=url>text</a>` for an http(s) URL; anything else is shown as text."""
    label = text if text is not None else (url or "")
    target = http_url(url)
    if target is None:
        return escape(label)
    return Markup('<a href="{}" rel="noopener noreferrer">{}</a>').format(target, label)


def code(text: Any) -> str:
    """A code span that holds any text: fenced with one more backtick than the text's longest run."""
    value = safe(re.sub(r"\s*[\r\n]+\s*", " ", str(text)), limit=10_000)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def md_link(url: str | None, text: str | None = None) -> str:
    """`[text](url)` for an http(s) URL, with the text escaped; anything else is shown as text."""
    target = http_url(url)
    if text is None and target is not None:  # the URL as its own text: whole, not broken like prose
        label = re.sub(r"([\\`*_\[\]|~<>])", r"\\\1", target)
    else:
        label = md(text if text is not None else (url or ""))
    if target is None:
        return label
    return f"[{label}](<{target.replace('>', '%3E').replace(' ', '%20')}>)"
