"""PagerDuty settings: the Events API v2 integration key (pages and change events), a REST API key
(who is on call), the webhook (v3) signing secret, and the API addresses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from bot.config.section import Section
from bot.domain.durations import Duration


class PagerDutySettings(Section):
    routing_key: SecretStr | None = None  # an Events API v2 integration key: pages and change events
    routing_key_file: Path | None = None
    api_token: SecretStr | None = None  # a REST API key (read-only is enough): the on-call lookup
    api_token_file: Path | None = None
    webhook_secret: SecretStr | None = None  # a webhook (v3) subscription's signing secret
    webhook_secret_file: Path | None = None
    # PagerDuty's own addresses; EU accounts, air-gapped proxies and tests set them (https only).
    events_url: str = Field(default="https://events.pagerduty.com", pattern=r"^https://[^/]+$")
    api_url: str = Field(default="https://api.pagerduty.com", pattern=r"^https://[^/]+$")
    ca_file: Path | None = None  # a CA bundle for a proxy's certificate (default: the system's)
    timeout: Duration = timedelta(seconds=10)  # each call
    deliver_every: Duration = timedelta(seconds=5)  # how often the outbox is sent

    @property
    def configured(self) -> bool:
        return any((self.routing_key, self.api_token))
