"""Server and API settings: where the HTTP server listens, who may post webhooks and read the API,
the scheduler's intervals and the logs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from bot.config.section import Section
from bot.domain.durations import Duration


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    # Where `serve` records controller events: `process`, a child process of its own (the event
    # loop keeps its interpreter lock under a storm), or `thread`, beside the event loop.
    controller_writer: Literal["process", "thread"] = "process"


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


TOKEN_NAME = r"^[A-Za-z0-9][\w.@+-]{0,63}$"  # noqa: S105 (a pattern for names, not a secret)
# A token file's line: `name: token`; any other line is a token alone (the old, unnamed form).
_NAMED_LINE = re.compile(r"([A-Za-z0-9][\w.@+-]{0,63}):\s+(\S+)")
_UNNAMED = re.compile(r"token-(\d+)")


class ApiToken(Section):
    """One API token and the name that stands for whoever holds it: the timeline records writes
    made with it under this name."""

    name: str = Field(pattern=TOKEN_NAME, description="who holds the token, as the timeline names them")
    token: SecretStr


class ApiSettings(Section):
    """Who may read the API and the incident pages (alerts, timelines, authors' emails) and use
    its writes: bearer tokens compared in constant time. `/healthz` and `/readyz` stay open."""

    auth: Literal["bearer", "none"] = "bearer"
    # `{name, token}` entries; a plain string is the old unnamed form, named token-1, token-2, ...
    tokens: list[ApiToken] = Field(default_factory=list)
    token_file: Path | None = None  # `name: token` a line (a bare token a line: token-N)
    metrics_public: bool = True  # /metrics without a token (Prometheus scrapes it)
    # Links Backout posts to chat and the CLI prints (to /incidents/{id}) carry a token signed with
    # this key that expires: a person opens them in a browser without a bearer header. Unset, a
    # key made once and kept in the database signs them, the same on every replica.
    link_secret: SecretStr | None = None
    link_secret_file: Path | None = None
    link_lifetime: Duration = timedelta(days=30)
    # How long signing in on /signin opens the pages in that browser (a cookie; reads only).
    session_lifetime: Duration = timedelta(hours=12)

    @field_validator("tokens", mode="before")
    @classmethod
    def _name_unnamed(cls, value: Any) -> Any:
        """Plain strings (the old form) become `{name: token-N, token: ...}`, numbered in order."""
        if not isinstance(value, list):
            return value
        count = 0
        named = []
        for item in value:
            if isinstance(item, str | SecretStr):
                count += 1
                item = {"name": f"token-{count}", "token": item}
            named.append(item)
        return named

    @model_validator(mode="after")
    def _read_token_file(self) -> ApiSettings:
        if self.token_file is not None:
            self.tokens = _merged(self.tokens, _file_tokens(self.token_file, self.tokens))
        _refuse_ambiguous(self.tokens)
        return self

    def warnings(self) -> list[tuple[str, str]]:
        """What works but will surprise someone, as (key, reason)."""
        found = []
        if self.auth == "bearer" and not self.tokens:
            found.append(("api.tokens", "no API token: every read of /api and the incident pages is refused "
                                        "(set api.tokens or api.token_file, or api.auth: none on a private network)"))
        return found


def _file_tokens(path: Path, before: list[ApiToken]) -> list[ApiToken]:
    """The tokens of a token file, unnamed lines numbered after the unnamed ones already listed."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []  # not needed here, or refused at api.token_file already
    count = max((int(m.group(1)) for t in before if (m := _UNNAMED.fullmatch(t.name))), default=0)
    found = []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        if named := _NAMED_LINE.fullmatch(line):
            found.append(ApiToken(name=named.group(1), token=SecretStr(named.group(2))))
        else:
            count += 1
            found.append(ApiToken(name=f"token-{count}", token=SecretStr(line)))
    if not found:
        raise ValueError(f"token_file: {path} holds no token")
    return found


def _merged(listed: list[ApiToken], read: list[ApiToken]) -> list[ApiToken]:
    """The listed tokens and the file's; a file token already listed (the settings validated
    again) is not added twice."""
    seen = {(t.name, t.token.get_secret_value()) for t in listed}
    return [*listed, *(t for t in read if (t.name, t.token.get_secret_value()) not in seen)]


def _refuse_ambiguous(tokens: list[ApiToken]) -> None:
    """Each name stands for one holder and each token for one name: the timeline says who wrote."""
    names: set[str] = set()
    holders: dict[str, str] = {}
    for token in tokens:
        if token.name in names:
            raise ValueError(f"tokens: two tokens are named {token.name!r}: give each holder a name of its own")
        secret = token.token.get_secret_value()
        if secret in holders:
            raise ValueError(f"tokens: {holders[secret]!r} and {token.name!r} are the same token: "
                             "give each holder a token of its own")
        names.add(token.name)
        holders[secret] = token.name


class SchedulerSettings(Section):
    verify_every: Duration = timedelta(seconds=15)    # how often the key metric is checked after a rollback
    reminders_every: Duration = timedelta(seconds=30)  # how often unacknowledged incidents are looked at
    resolve_every: Duration = timedelta(seconds=30)    # how often incidents.clear_for is applied
    sweep_every: Duration = timedelta(seconds=15)      # how often follow-up work a crash left is finished
    # The sweep's transactions at a time (50 investigations each): a restart's backlog of thousands
    # is done in seconds.
    sweep_workers: int = Field(default=4, ge=1, le=32)
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
