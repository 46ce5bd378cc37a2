"""Server and API settings: where the HTTP server listens, who may post webhooks and read the API,
the scheduler's intervals and the logs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from bot.config.section import Section
from bot.domain.durations import Duration


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    public_url: str | None = Field(default=None, pattern=r"^https?://")


class StorageSettings(Section):
    url: str = "sqlite:///backout.db"


class AlertmanagerSettings(Section):
    auth: Literal["bearer", "basic", "none"] | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_username: str | None = None
    basic_password: SecretStr | None = None
    basic_password_file: Path | None = None
    # An alert whose startsAt lies further from Backout's clock than this, before or ahead, is set
    # aside with the reason (the delivery's other alerts are stored); widen max_start_age to replay
    # older captures.
    max_start_age: Duration = Field(default=timedelta(days=365), ge=timedelta(minutes=1),
                                    le=timedelta(days=36_500))
    max_start_ahead: Duration = Field(default=timedelta(days=1), ge=timedelta(0), le=timedelta(days=365))

    def problems(self) -> list[tuple[str, str]]:
        """What stops the webhook from being served safely, as (key, reason)."""
        if self.auth is None:
            return [("alertmanager.auth", "not set: choose bearer or basic with credentials, "
                     "or `none` explicitly to accept unauthenticated webhooks")]
        if self.auth == "bearer" and not self.bearer_token:
            return [("alertmanager.bearer_token", "auth is bearer but no token is set "
                     "(bearer_token, bearer_token_file or BACKOUT_ALERTMANAGER__BEARER_TOKEN)")]
        if self.auth == "basic" and not (self.basic_username and self.basic_password):
            return [("alertmanager.basic_password", "auth is basic but the username or "
                     "password is missing")]
        return []


class ApiSettings(Section):
    """Who may read the API and the incident pages (alerts, timelines, authors' emails) and use
    its writes: bearer tokens compared in constant time. `/healthz` and `/readyz` stay open."""

    auth: Literal["bearer", "none"] = "bearer"
    tokens: list[SecretStr] = Field(default_factory=list)
    token_file: Path | None = None  # one token a line
    metrics_public: bool = True  # /metrics without a token (Prometheus scrapes it)
    # Links Backout posts (Slack, pull requests) to /incidents/{id} carry a token signed with this
    # key that expires: a person opens them in a browser without a bearer header.
    link_secret: SecretStr | None = None
    link_secret_file: Path | None = None
    link_lifetime: Duration = timedelta(days=30)
    # How long signing in on /signin opens the pages in that browser (a cookie; reads only).
    session_lifetime: Duration = timedelta(hours=12)

    @model_validator(mode="after")
    def _read_token_file(self) -> ApiSettings:
        if self.token_file is None:
            return self
        try:
            lines = Path(self.token_file).read_text(encoding="utf-8").splitlines()
        except OSError:
            return self  # not needed here, or refused at api.token_file already
        found = [SecretStr(line.strip()) for line in lines if line.strip() and not line.startswith("#")]
        if not found:
            raise ValueError(f"token_file: {self.token_file} holds no token")
        self.tokens = [*self.tokens, *found]
        return self

    def warnings(self) -> list[tuple[str, str]]:
        """What works but will surprise someone, as (key, reason)."""
        found = []
        if self.auth == "bearer" and not self.tokens:
            found.append(("api.tokens", "no API token: every read of /api and the incident pages is refused "
                                        "(set api.tokens or api.token_file, or api.auth: none on a private network)"))
        if self.link_secret is None:
            found.append(("api.link_secret", "not set: the page links Backout posts stop opening after a restart"))
        return found


class SchedulerSettings(Section):
    verify_every: Duration = timedelta(seconds=15)    # how often the key metric is checked after a rollback
    reminders_every: Duration = timedelta(seconds=30)  # how often unacknowledged incidents are looked at
    resolve_every: Duration = timedelta(seconds=30)    # how often incidents.clear_for is applied
    sweep_every: Duration = timedelta(seconds=15)      # how often follow-up work a crash left is finished
    # PostgreSQL: a replica that cannot renew the leader lock within this stops leading, and
    # another takes over within about this long after the leader dies.
    leader_interval: Duration = timedelta(seconds=15)
    # Work (investigate, announce, a chat message) claimed by a replica that died is taken over after this;
    # keep it above the longest investigation (a first clone, a slow forge).
    follow_up_lease: Duration = timedelta(minutes=2)
    push_retry_every: Duration = timedelta(seconds=30)  # reverts prepared while a Git host was down


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"
