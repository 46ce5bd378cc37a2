"""Chat settings: console or Slack, and Slack's credentials and channel."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
)

from bot.config.section import Section
from bot.domain.durations import Duration
from bot.domain.rooms import DEFAULT_TEMPLATE, check_template


class ChatSettings(Section):
    kind: Literal["console", "slack"] = "console"


class SlackSettings(Section):
    mode: Literal["socket", "http"] = "socket"
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    app_token: SecretStr | None = None
    app_token_file: Path | None = None
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://.*/$")
    channel: str | None = None
    command: str = Field(default="/incident", pattern=r"^/[a-z0-9_-]{1,31}$")
    responders: list[str] = Field(default_factory=list)  # user (U…) or group (S…) ids who may roll back
    workers: int = Field(default=16, ge=2, le=128)  # threads for work after the ack
    # Messages a second per channel (Slack allows about one, with short bursts of about ten).
    channel_rate: float = Field(default=1.0, gt=0, le=100)
    # A channel per declared incident (`/incident open`, a playbook's room.declare_at): its name
    # ({id}, {service}; made lowercase, at most 80 characters), and when it is archived after the
    # resolution (null: never).
    channel_name: Annotated[str, AfterValidator(check_template)] = Field(default=DEFAULT_TEMPLATE, max_length=80)
    archive_after: Duration | None = timedelta(days=1)
    # Reactions that put a message of the incident's channel on its timeline (as a pin does).
    timeline_emoji: list[str] = Field(default_factory=lambda: ["pushpin"])

    @field_validator("timeline_emoji", mode="before")
    @classmethod
    def _emoji_names(cls, value: object) -> object:
        """`pushpin`, `:pushpin:` or a list of them; Slack names reactions without the colons."""
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list):
            return [str(name).strip().strip(":") for name in names if str(name).strip().strip(":")]
        return value

    def problems(self) -> list[tuple[str, str]]:
        """What chat.kind slack cannot run without."""
        found = []
        if not self.bot_token:
            found.append(("slack.bot_token", "chat.kind is slack but no bot token is set"))
        if not self.channel:
            found.append(("slack.channel", "the default channel is needed for playbooks that name none"))
        if self.mode == "http" and not self.signing_secret:
            found.append(("slack.signing_secret", "HTTP mode verifies every request with it"))
        if self.mode == "socket" and not self.app_token:
            found.append(("slack.app_token", "Socket Mode needs an app-level token (xapp-…)"))
        return found
