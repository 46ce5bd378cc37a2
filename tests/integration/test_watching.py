"""The whole watch loop against the real Prometheus: a probe opens the incident, the suspect is
ranked, the revert is made, and the recovery (the time to mitigate) lands on the timeline."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import Remote, git
from tests.integration.processes import BackoutServer, Exporter, Prometheus, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    server = Exporter().start()
    server.text = "checkout_error_ratio 0.01\n"
    yield server
    server.stop()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: Exporter) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus", target_port=exporter.port).start()
    yield server
    server.stop()


def kinds(server: BackoutServer, ref: str = "INC-1") -> list[str]:
    return [e["kind"] for e in server.api(f"/api/incidents/{ref}/timeline")["timeline"]]


def test_probe_rollback_and_recovery(tmp_path: Path, exporter: Exporter, prometheus: Prometheus) -> None:
    """Error ratio up: incident (source probe), suspect, revert branch. The revert merged: mitigated.
    Down: recovered, verified, then resolved; the times to mitigate and verify in the export."""
    remote = Remote(tmp_path / "gitops", start=datetime.now(UTC) - timedelta(minutes=5))
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: checkout:1\n"}, minutes=-600)
    bad = remote.commit("checkout: bump to 2", {"apps/checkout/deploy.yaml": "image: checkout:2\n"}, minutes=590)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "suspects": {"lookback": "7d", "sync_delay": "0s", "min_confidence": 0.3},
        "actions": {"on_open": "open_pr"},
        "key_query": "checkout_error_ratio",
        "probes": [{"name": "error-ratio", "query": "checkout_error_ratio", "above": 0.05, "for": "2s",
                    "every": "1s"}],
        "verify": {"stay": "3s", "within": "2m"},
    }))
    config: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"},
        "playbooks_dir": str(playbooks),
        "repos": [{"name": "gitops", "url": str(remote.bare)}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "30d", "refresh_every": "1s"},
        "prometheus": {"url": prometheus.url},
        "incidents": {"clear_for": "8s"},
        "scheduler": {"verify_every": "1s", "resolve_every": "1s"},
        "logging": {"format": "json"},
    }
    server = BackoutServer(tmp_path / "backout", config).start()
    try:
        wait_until(lambda: "checkout_error_ratio" in prometheus_query(prometheus), timeout=30,
                   what="prometheus to scrape the exporter")
        exporter.text = "checkout_error_ratio 0.3\n"
        wait_until(lambda: server.api("/api/incidents")["incidents"], timeout=30, what="the probe to open it")
        incident = server.api("/api/incidents/INC-1")
        assert incident["alerts"][0]["source"] == "probe"
        assert incident["service"] == "checkout"
        wait_until(lambda: "revert.pushed" in kinds(server), timeout=30, what="the revert branch")
        suspects = server.api("/api/incidents/INC-1/suspects")
        assert suspects["suspects"][0]["sha"] == bad
        assert f"backout/INC-1/revert-{bad[:7]}" in remote.branches()

        # Someone merges the revert (a fast-forward of main): without controller events and with
        # sync_delay 0s, the incident is mitigated once the refresh sees the revert on main.
        git("update-ref", "refs/heads/main", f"refs/heads/backout/INC-1/revert-{bad[:7]}", cwd=remote.bare)
        wait_until(lambda: server.api("/api/incidents/INC-1")["status"] == "mitigated", timeout=30,
                   what="the revert applied")
        exporter.text = "checkout_error_ratio 0.0\n"
        wait_until(lambda: "verify.recovered" in kinds(server), timeout=40, what="the recovery")
        wait_until(lambda: "incident.verified" in kinds(server), timeout=20, what="verified")
        wait_until(lambda: server.api("/api/incidents/INC-1")["status"] == "resolved", timeout=30,
                   what="the resolution after clear_for")
        view = server.api("/api/incidents/INC-1")
        assert view["mitigated_at"] <= view["verified_at"] <= view["resolved_at"]
        durations = server.api("/api/incidents/INC-1/export")["durations_seconds"]
        assert 0 < durations["to_mitigate"] <= durations["to_verify"]
        metrics = __import__("httpx").get(f"{server.url}/metrics", timeout=5).text
        assert 'backout_job_runs_total{job="probe:checkout/error-ratio",outcome="ok"}' in metrics
    finally:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, "SIGTERM: a clean shutdown"


def prometheus_query(prometheus: Prometheus) -> str:
    import httpx

    return httpx.get(f"{prometheus.url}/api/v1/query", params={"query": "checkout_error_ratio"}, timeout=2).text
