"""The base of every settings section: unknown keys refused, `X_file` read into the secret `X`."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

# False while loading settings for a command that uses no secret: an unreadable `*_file` is
# then left unset instead of refused (read commands run where the secrets are not mounted).
SECRETS_NEEDED: ContextVar[bool] = ContextVar("secrets_needed", default=True)
# Sections whose secret files are not needed by this config (Slack when chat.kind is not slack,
# GitHub when no repository is on GitHub): a file they name that is missing is no error.
UNUSED_SECTIONS: ContextVar[frozenset[str]] = ContextVar("unused_sections", default=frozenset())


class Section(BaseModel):
    """A settings section: unknown keys are refused; `X_file` fills the secret `X`."""

    model_config = ConfigDict(extra="forbid")
    # Each secret read from a file, byte for byte, where stripping changed it: a peer that signs
    # with the file as stored (Flux with a Secret made `--from-file`) keeps its trailing newline.
    _as_stored: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @field_validator("*", mode="after")
    @classmethod
    def _secret_file_readable(cls, value: Any, info: ValidationInfo) -> Any:
        """A `*_file` that cannot be read is an error at its own key (and line)."""
        if not (info.field_name or "").endswith("_file") or not isinstance(value, Path):
            return value
        if not SECRETS_NEEDED.get() or cls.__name__ in UNUSED_SECTIONS.get():
            return value
        try:
            text = value.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        if not text.strip():
            raise ValueError(f"{value} is empty")
        return value

    @model_validator(mode="after")
    def _read_secret_files(self) -> Section:
        for name in type(self).model_fields:
            if not name.endswith("_file") or name.removesuffix("_file") not in type(self).model_fields:
                continue
            path = getattr(self, name)
            target = name.removesuffix("_file")
            if path is None:
                continue
            if getattr(self, target) is not None:
                raise ValueError(f"set either {target} or {name}, not both")
            try:  # readable unless not needed here: _secret_file_readable said so at the key
                stored = Path(path).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if secret := stored.strip():
                setattr(self, target, SecretStr(secret))
                if stored != secret:
                    self._as_stored[target] = SecretStr(stored)
        return self

    def secret_forms(self, name: str) -> list[str]:
        """The secret `name` as Backout uses it (stripped) and, when it came from a file that held
        more (a trailing newline), as stored: empty when it is unset."""
        value = getattr(self, name)
        if not isinstance(value, SecretStr):
            return []
        stored = self._as_stored.get(name)
        return [value.get_secret_value(), *([stored.get_secret_value()] if stored is not None else [])]
