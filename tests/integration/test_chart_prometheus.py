"""The chart against the real Prometheus: the key query's range over the incident, as the
metric line, with the events marked on the same time axis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.export.chart import figure, render_png
from bot.adapters.prometheus import PrometheusQuery
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.chart import chart_data
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from tests.fakes.store import InMemoryStore
from tests.integration.processes import Exporter, Prometheus, wait_until

pytestmark = pytest.mark.integration


def test_the_metric_line_comes_from_prometheus(tmp_path: Path) -> None:
    exporter = Exporter().start()
    exporter.text = "checkout_error_ratio 0.01\n"
    prometheus = Prometheus(tmp_path / "prometheus", target_port=exporter.port).start()
    query = PrometheusQuery(prometheus.url)
    try:
        wait_until(lambda: query.value("checkout_error_ratio") == 0.01, timeout=30, what="the first scrape")
        time.sleep(3)
        exporter.text = "checkout_error_ratio 0.2\n"
        wait_until(lambda: query.value("checkout_error_ratio") == 0.2, timeout=30, what="the error ratio up")
        started = datetime.now(UTC)
        time.sleep(3)
        playbook = Playbook.model_validate({"name": "checkout", "service": "checkout",
                                            "match": {"service": "checkout"}, "key_query": "checkout_error_ratio"})
        store = InMemoryStore()
        alert = ReceivedAlert(fingerprint="f", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
        ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                        playbooks=[playbook], policy=IncidentPolicy(), now=started)
        view = get_incident(store=store, incident_id=1)
        data = chart_data(view, playbooks=[playbook], metrics=query, now=datetime.now(UTC))
        values = {round(v, 2) for _, v in data.series}
        assert {0.01, 0.2} <= values, data.series
        assert data.start <= started - timedelta(seconds=1)
        [axes] = figure(data).axes
        [line] = [line for line in axes.get_lines() if line.get_gid() == "metric"]
        assert max(line.get_ydata()) == pytest.approx(0.2)
        assert render_png(data).startswith(b"\x89PNG")
    finally:
        prometheus.stop()
        exporter.stop()
