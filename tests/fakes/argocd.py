"""Argo CD notifications, as far as Backout's templates need: render a template's webhook body
over an Application, the way argocd-notifications evaluates `{{toJson .app.<path>}}`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "notifications.yaml"
_FIELD = re.compile(r"\{\{\s*(toJson\s+)?\.([A-Za-z0-9_.]+)\s*\}\}")


def template_body(name: str) -> str:
    """The webhook body of `template.<name>` in the shipped ConfigMap."""
    config = yaml.safe_load(TEMPLATES.read_text())
    template = yaml.safe_load(config["data"][f"template.{name}"])
    return str(template["webhook"]["backout"]["body"])


def render(body: str, app: dict[str, Any]) -> str:
    """Go template field access over `{"app": app}`: a missing key is `<no value>` (or `null`
    through toJson), as text/template prints it."""
    scope = {"app": app}

    def value(match: re.Match[str]) -> str:
        found: Any = scope
        for part in match.group(2).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if match.group(1):
            return json.dumps(found)
        return "<no value>" if found is None else str(found)

    unknown = re.sub(_FIELD, "", body)
    if "{{" in unknown:
        raise AssertionError(f"the template uses more than field access: {unknown}")
    return _FIELD.sub(value, body)
