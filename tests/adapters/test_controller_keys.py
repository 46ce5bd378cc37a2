"""Flux's generic-hmac key as a file: Flux signs with its Secret's `token` exactly as stored, so a
key file that ends in a newline must verify as stored as well as stripped."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import Settings

KEY = "flux-hmac-key-0123"
BODY = json.dumps({"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
                   "severity": "info", "timestamp": "2026-11-21T22:21:00Z", "message": "ok",
                   "reason": "Progressing", "reportingController": "kustomize-controller"}).encode()


def signed(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-Signature": "sha256=" + hmac.new(key.encode(), BODY, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize("stored", [KEY + "\n", KEY + "\r\n", KEY])
def test_a_key_file_verifies_signatures_made_with_the_key_as_stored_and_stripped(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], tmp_path: Path, stored: str,
) -> None:
    """`kubectl create secret --from-file` keeps the file's newline and Flux signs with it: both
    that key and the stripped one verify; any other key is still refused."""
    key_file = tmp_path / "flux-hmac-key"
    key_file.write_bytes(stored.encode())
    app = build(make_settings(flux={"hmac_key_file": str(key_file)}))
    with TestClient(app.http) as client:
        for key in {stored, KEY}:
            answer = client.post("/webhooks/flux", content=BODY, headers=signed(key))
            assert answer.status_code in (200, 202), (repr(key), answer.text)  # 200: the same event again
        assert client.post("/webhooks/flux", content=BODY, headers=signed(KEY + " ")).status_code == 401
        assert client.post("/webhooks/flux", content=BODY, headers=signed("other")).status_code == 401
