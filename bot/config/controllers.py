"""GitOps controller settings: the credentials Flux and Argo CD notifications carry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from bot.config.section import Section


class FluxSettings(Section):
    """The Flux webhook: a `generic-hmac` Provider's key, or a bearer token a `generic` one sends."""

    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None


class ArgoCDSettings(Section):
    """Argo CD: the bearer token its notifications `webhook` service sends (inbound, `token`), and
    its API with a token of Backout's (outbound: `api_url`, `api_token_file`) to read what drifted."""

    token: SecretStr | None = None
    token_file: Path | None = None
    api_url: str | None = Field(default=None, pattern=r"^https?://")  # the managed-resources diff of drift
    api_token: SecretStr | None = None  # an Argo CD account token with `applications, get` (and `sync`)
    api_token_file: Path | None = None
    api_timeout: timedelta = timedelta(seconds=10)
    ca_file: Path | None = None  # a private CA for api_url

    @property
    def api_configured(self) -> bool:
        return bool(self.api_url and self.api_token)
