"""The onset without a key query: the alert's activeAt, else startsAt less its rule's `for`, a
probe's first bad sample; the earliest known wins, and the timeline says which source gave it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.changes import Change, Effect, FileChange
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Alert, AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.domain.timeline import EventKind
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident
from bot.services.onset import OnsetSource, alerts_onset, onset_of
from tests.fakes.metrics import FakeMetrics, FakePrometheus
from tests.fakes.store import InMemoryStore

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GENERATOR = "http://prometheus:9090/graph?g0.expr=error_ratio+%3E+0.05"
PLAYBOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}]})


def alert(name: str = "HighErrorRate", *, starts_at: datetime = START, generator_url: str = GENERATOR,
          source: str = "alertmanager", fingerprint: str = "f1") -> Alert:
    return Alert(fingerprint=fingerprint, starts_at=starts_at, ends_at=None, status=AlertStatus.FIRING,
                 labels={"alertname": name, "service": "checkout"}, annotations={}, generator_url=generator_url,
                 source=source, incident_id=1, received_at=starts_at)


def test_the_alerts_active_at_is_the_onset() -> None:
    """Prometheus still has the alert: its activeAt (when the condition became true) is the onset."""
    prometheus = FakePrometheus()
    prometheus.active["HighErrorRate"] = START - timedelta(minutes=5)
    found = alerts_onset(states=prometheus, alerts=[alert()])
    assert found.at == START - timedelta(minutes=5)
    assert found.source is OnsetSource.ACTIVE_AT
    assert "activeAt" in found.note
    assert "11:55:00" in found.note


def test_a_gone_alert_counts_from_its_start_less_the_rules_for() -> None:
    """Prometheus no longer has the alert: startsAt less the rule's `for`, said as such."""
    prometheus = FakePrometheus()
    prometheus.rules["HighErrorRate"] = timedelta(minutes=10)
    found = alerts_onset(states=prometheus, alerts=[alert()])
    assert found.at == START - timedelta(minutes=10)
    assert found.source is OnsetSource.RULE_FOR
    assert "less its rule's for 10m" in found.note


def test_prometheus_down_counts_from_the_start_and_says_so() -> None:
    """No answer: no onset (timing counts from the alert's start), the reason line says why, and the
    next alert is not asked about."""
    prometheus = FakePrometheus()
    prometheus.down = True
    found = alerts_onset(states=prometheus, alerts=[alert(), alert("Latency", fingerprint="f2")])
    assert found.at is None
    assert found.source is OnsetSource.START
    assert found.note == "Onset: Prometheus did not answer; timing counts from the alert's start."
    assert prometheus.asked == ["HighErrorRate"]


def test_an_alert_from_a_prometheus_not_configured_is_not_looked_up() -> None:
    """Another Prometheus or a ruler (its generatorURL host) is asked only where configured."""
    prometheus = FakePrometheus()
    prometheus.active["HighErrorRate"] = START - timedelta(minutes=5)
    found = alerts_onset(states=prometheus, alerts=[alert(generator_url="http://ruler.example:9090/graph")])
    assert found.at is None
    assert prometheus.asked == []
    assert "comes from ruler.example:9090, which Backout does not ask (prometheus.generators)" in found.note
    none = alerts_onset(states=prometheus, alerts=[alert(generator_url="")])
    assert "names no Prometheus (no generatorURL)" in none.note


def test_neither_the_alert_nor_its_rule_known_says_so() -> None:
    """Prometheus answers but has neither: timing counts from the start, with that reason."""
    found = alerts_onset(states=FakePrometheus(), alerts=[alert()])
    assert found.at is None
    assert "no longer has HighErrorRate nor its rule" in found.note


def test_a_probes_first_bad_sample_is_its_onset_without_asking() -> None:
    """A probe incident: the probe's alert starts at its first bad sample, the onset."""
    first_bad = START - timedelta(minutes=3)
    found = alerts_onset(states=None, alerts=[alert("checkout-errors", starts_at=first_bad, source="probe",
                                                     generator_url="")])
    assert found.at == first_bad
    assert found.source is OnsetSource.PROBE
    assert "first bad sample" in found.note


def test_the_earliest_alert_onset_wins() -> None:
    """Two alerts in the incident: the problem had begun by the earlier activeAt."""
    prometheus = FakePrometheus()
    prometheus.active.update({"HighErrorRate": START - timedelta(minutes=2),
                              "Latency": START - timedelta(minutes=9)})
    found = alerts_onset(states=prometheus, alerts=[
        alert(), alert("Latency", starts_at=START + timedelta(minutes=1), fingerprint="f2")])
    assert found.at == START - timedelta(minutes=9)


def test_the_key_metric_and_the_alert_combine_earliest_first() -> None:
    """The key metric's change point and the alert's activeAt: the earlier of the two is the onset."""
    book = PLAYBOOK.model_copy(update={"key_query": "error_ratio"})
    prometheus = FakePrometheus()
    step = timedelta(seconds=15)
    shift = START - timedelta(minutes=20)
    prometheus.history["error_ratio"] = [
        (START - timedelta(hours=1) + k * step, 0.2 if START - timedelta(hours=1) + k * step >= shift else 0.01)
        for k in range(250)]
    prometheus.active["HighErrorRate"] = START - timedelta(minutes=5)
    found = onset_of(metrics=prometheus, playbook=book, alerts=[alert()], started_at=START,
                     lookback=timedelta(hours=6))
    assert found.source is OnsetSource.KEY_METRIC
    assert found.at is not None
    assert abs((found.at - shift).total_seconds()) <= 15
    prometheus.active["HighErrorRate"] = START - timedelta(minutes=30)
    earlier = onset_of(metrics=prometheus, playbook=book, alerts=[alert()], started_at=START,
                       lookback=timedelta(hours=6))
    assert earlier.source is OnsetSource.ACTIVE_AT
    assert earlier.at == START - timedelta(minutes=30)


def test_a_metrics_query_without_alert_states_looks_up_no_alert() -> None:
    """A MetricsQuery that is not also AlertStates: no alert onset and nothing to say."""
    found = onset_of(metrics=FakeMetrics(), playbook=PLAYBOOK, alerts=[alert()], started_at=START,
                     lookback=timedelta(hours=6))
    assert found.at is None
    assert found.note == ""


def test_ranking_counts_from_active_at_and_the_timeline_says_so_once() -> None:
    """Without a key query the ranking keeps activeAt as its onset: a change applied after it (and
    before the alert fired) is ruled out; the source is on the timeline once, however often ranked."""
    store = InMemoryStore()
    active = START - timedelta(minutes=10)
    before = Change(repo="gitops", sha="a" * 40, parents=(), author="Dev <d@example.com>",
                    committed_at=active - timedelta(minutes=20), subject="checkout: bump image",
                    files=(FileChange(path="apps/checkout/deploy.yaml", status="M", effects=(Effect.IMAGE,)),))
    after = before.model_copy(update={"sha": "b" * 40, "subject": "checkout: more replicas",
                                      "committed_at": active + timedelta(minutes=4)})
    store.run(lambda tx: tx.changes.add_many([before, after]))
    received = ReceivedAlert(fingerprint="f1", starts_at=START, ends_at=None, status=AlertStatus.FIRING,
                             labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={},
                             generator_url=GENERATOR)
    ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(received,)),
                    playbooks=[PLAYBOOK], policy=IncidentPolicy(), now=START)
    prometheus = FakePrometheus()
    prometheus.active["HighErrorRate"] = active
    ranking = rank_incident(store=store, playbooks=[PLAYBOOK], incident_id=1, now=START, metrics=prometheus)
    assert ranking.onset_at == active
    late = next(s for s in ranking.suspects if s.sha == after.sha)
    assert ranking.excluded(late) is not None
    assert ranking.best is not None
    assert ranking.best.sha == before.sha
    rank_incident(store=store, playbooks=[PLAYBOOK], incident_id=1, now=START, metrics=prometheus)
    lines = store.run(lambda tx: [e for e in tx.timeline.for_incident(1) if e.kind == EventKind.ONSET_FOUND])
    assert [e.data["source"] for e in lines] == ["active_at"]
    assert "HighErrorRate became true" in lines[0].text
