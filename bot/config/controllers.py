"""GitOps controller settings: the credentials Flux and Argo CD notifications carry."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    SecretStr,
)

from bot.config.section import Section


class FluxSettings(Section):
    """The Flux webhook: a `generic-hmac` Provider's key, or a bearer token a `generic` one sends."""

    hmac_key: SecretStr | None = None
    hmac_key_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None


class ArgoCDSettings(Section):
    """The Argo CD webhook: the bearer token its notifications `webhook` service sends."""

    token: SecretStr | None = None
    token_file: Path | None = None
