"""With `logging.format: json` every line a real `backout serve` writes is JSON with level,
time and logger: Backout's events and the standard library's records (uvicorn) alike."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import TOKEN, payload_bytes
from tests.integration.processes import BackoutServer

pytestmark = pytest.mark.integration


def test_every_line_is_json_with_level_time_and_logger(backout: BackoutServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert httpx.post(f"{backout.url}/webhooks/alertmanager", content=payload_bytes("01"), headers=headers,
                      timeout=10).status_code == 200
    assert httpx.post(f"{backout.url}/webhooks/alertmanager", content=b"{", headers=headers,
                      timeout=10).status_code == 400
    assert httpx.get(f"{backout.url}/nowhere", timeout=10).status_code == 404
    backout.stop()
    lines = [line for line in backout.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"event", "level", "timestamp", "logger"} <= set(record), record
    loggers = {record["logger"] for record in records}
    assert "uvicorn.error" in loggers  # the server's own start and stop lines
    assert any(record["event"] == "serve.starting" and record["storage"].startswith("sqlite:")
               for record in records)
    assert any(record["event"] == "webhook.ingested" for record in records)
