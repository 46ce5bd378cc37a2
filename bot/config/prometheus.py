"""Prometheus settings: where probes and key metrics are queried."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from bot.config.section import Section
from bot.domain.durations import Duration

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?")

class PrometheusSettings(Section):
    url: str | None = Field(default=None, pattern=r"^https?://")
    timeout: Duration = timedelta(seconds=10)
    # The alert's onset: an alert is looked up (activeAt, its rule's `for`) in the Prometheus its
    # generatorURL names, only where Backout knows how to reach it. `url`'s own host needs no entry;
    # map the others (this Prometheus's --web.external-url, another Prometheus, a Thanos or Mimir
    # ruler) from their generatorURL host ("host" or "host:port") to the URL to ask.
    generators: dict[str, str] = {}  # noqa: RUF012 (pydantic copies defaults; ruff cannot see Section is a model)

    @field_validator("generators")
    @classmethod
    def _generators_are_hosts_and_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for host, url in value.items():
            if not _HOST.fullmatch(host):
                raise ValueError(f"{host!r}: a generatorURL host is host or host:port, no scheme or path")
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"{host}: {url!r} is not an http(s) URL")
        return {host.lower(): url.rstrip("/") for host, url in value.items()}

    @model_validator(mode="after")
    def _generators_need_url(self) -> PrometheusSettings:
        if self.generators and not self.url:
            raise ValueError("generators needs prometheus.url (the Prometheus Backout queries)")
        return self
