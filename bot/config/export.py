"""Export settings: templates for the review documents and the post-mortem repository."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
)

from bot.config.section import Section


class PostmortemSettings(Section):
    """Where resolved incidents' drafts are proposed as pull requests (or pushed branches)."""

    repo: str = Field(min_length=1)  # a name from `repos`
    path: str = Field(default="postmortems", pattern=r"^[\w.-]+(/[\w.-]+)*$")  # the folder in that repository
    branch_prefix: str = Field(default="backout/postmortem", pattern=r"^[\w.-]+(/[\w.-]+)*$")


class ExportSettings(Section):
    # A folder whose postmortem.md, incident.html or incidents.html replace the shipped templates
    # (bot/adapters/export/templates/), one by one.
    templates_dir: Path | None = None
    postmortem: PostmortemSettings | None = None
