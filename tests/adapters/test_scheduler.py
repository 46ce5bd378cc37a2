"""The change-log refresh job on real git: late changes re-rank open incidents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import GitSettings, RepoSettings, Settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.entrypoints.scheduler import refresh_job, start_scheduler
from bot.services.incidents import get_ranking
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.gitrepos import Remote

PLAYBOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "actions": {"on_open": "off"},
})


def test_a_late_change_re_ranks_the_open_incident(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """A change applied before the start but fetched after the incident opened is ranked in."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: c:1\n"}, minutes=-600)
    settings = make_settings(repos=[RepoSettings(name="gitops", url=str(remote.bare))],
                             git=GitSettings(mirror_dir=tmp_path / "mirrors",
                                             import_window=timedelta(days=60)))
    notes = RecordingNotifier()
    app = bootstrap.build(settings, playbooks=[PLAYBOOK], notifier=notes, clock=lambda: started)
    started = remote.clock + timedelta(hours=7)  # the first commit is outside the 6h window
    alert = ReceivedAlert(fingerprint="f", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                           alerts=(alert,)),
                    playbooks=[PLAYBOOK], policy=IncidentPolicy(), now=started)
    investigate(store=app.ctx.store, git=app.ctx.git, notifier=notes, playbooks=[PLAYBOOK], incident_id=1,
                now=started, import_window=timedelta(days=60))
    assert not get_ranking(store=app.ctx.store, incident_id=1).confident

    remote.commit("checkout: bump to 2 (#3)", {"apps/checkout/deploy.yaml": "image: c:2\n"},
                  minutes=7 * 60 - 10)  # committed before the start, fetched only now
    refresh_job(app.ctx)
    ranking = get_ranking(store=app.ctx.store, incident_id=1)
    assert ranking.confident
    assert ranking.suspects[0].subject == "checkout: bump to 2 (#3)"
    assert notes.notices[-1].kind == "suspects.changed"
    refreshed = app.ctx.metrics.registry.get_sample_value("backout_repo_last_refresh_timestamp_seconds",
                                                         {"repo": "gitops"})
    assert refreshed == started.timestamp()
    app.close()


def test_the_refresh_job_is_scheduled_so_late_runs_are_not_dropped(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """coalesce, one instance at a time, and a misfire grace of one interval (not 1 s)."""
    app = build(make_settings(git=GitSettings(refresh_every=timedelta(seconds=30))))
    scheduler = start_scheduler(app.ctx)
    try:
        job = scheduler.get_job("refresh_changes")
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 30)
        assert scheduler.get_job("reminders") is not None
        assert scheduler.get_job("rollback_plans") is not None  # without Prometheus too: alerts judge a step
    finally:
        scheduler.shutdown(wait=False)
