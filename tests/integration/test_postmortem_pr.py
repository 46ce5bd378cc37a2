"""The review in Git: a resolved incident's draft and chart proposed to a real repository, as a
pull request on the fake GitHub (once, however often the job runs), or as a pushed branch where
there is no forge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.storage.store import SqlStore
from bot.config import load_settings
from bot.domain.models import Alert, AlertStatus, Delivery, ReceivedAlert
from bot.domain.ports import Transaction
from bot.entrypoints.scheduler import postmortem_job
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote, git

pytestmark = pytest.mark.integration


def gitops(tmp_path: Path) -> Remote:
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"README.md": "x\n"})
    return remote


def kinds(app: bootstrap.App) -> list[str]:
    """INC-1's timeline, as event kinds."""
    return [e.kind for e in get_incident(store=app.ctx.store, incident_id=1).timeline]


def world(tmp_path: Path, clock: Clock, github: FakeGitHub | None, remote: Remote) -> bootstrap.App:
    repo: dict[str, Any] = {"name": "gitops", "url": str(remote.bare)}
    config: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, "alertmanager": {"auth": "none"},
        "server": {"public_url": "https://backout.example.com"},
        "playbooks_dir": str(PLAYBOOKS), "git": {"mirror_dir": str(tmp_path / "m")},
        "repos": [repo], "export": {"postmortem": {"repo": "gitops", "path": "docs/postmortems"}},
    }
    if github is not None:
        repo |= {"forge": "github", "github_repo": "acme/gitops"}
        config["github"] = {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    app = bootstrap.build(load_settings(tmp_path / "c.yaml"), notifier=RecordingNotifier(), clock=clock)
    for prefix in ("01", "02", "04"):  # fires, then resolves
        ingest_delivery(store=app.ctx.store, delivery=delivery(prefix), playbooks=app.ctx.playbooks,
                        policy=app.ctx.settings.incidents, now=clock())
    assert get_incident(store=app.ctx.store, incident_id=1).incident.status.value == "resolved"
    return app


def test_a_resolved_incident_gets_one_postmortem_pull_request(tmp_path: Path, clock: Clock) -> None:
    remote = gitops(tmp_path)
    with FakeGitHub(remote.bare).serving() as github:
        app = world(tmp_path, clock, github, remote)
        try:
            postmortem_job(app.ctx)
            postmortem_job(app.ctx)  # again: nothing new
            branch = "backout/postmortem/INC-1"
            assert branch in remote.branches()
            files = git("ls-tree", "-r", "--name-only", branch, cwd=remote.bare).splitlines()
            day = get_incident(store=app.ctx.store, incident_id=1).incident.started_at.strftime("%Y-%m-%d")
            assert {f"docs/postmortems/{day}-INC-1.md", f"docs/postmortems/{day}-INC-1.png"} <= set(files)
            draft = git("show", f"{branch}:docs/postmortems/{day}-INC-1.md", cwd=remote.bare)
            assert draft.startswith("# INC-1")
            assert f"]({day}-INC-1.png)" in draft, "the draft shows the chart committed beside it"
            assert "(<https://backout.example.com/incidents/INC-1>)" in draft, "the page, for signed-in browsers"
            assert "?t=" not in draft, "a draft in Git outlives any signed token"
            assert len(github.pulls) == 1
            [pull] = github.pulls.values()
            assert pull["head"]["ref"] == branch
            assert pull["title"].startswith("Post-mortem: INC-1")
            assert kinds(app).count("postmortem.pushed") == 1
            assert kinds(app).count("pr.opened") == 1
        finally:
            app.close()


def test_without_a_forge_the_draft_is_a_pushed_branch(tmp_path: Path, clock: Clock) -> None:
    remote = gitops(tmp_path)
    app = world(tmp_path, clock, None, remote)
    try:
        postmortem_job(app.ctx)
        postmortem_job(app.ctx)
        assert "backout/postmortem/INC-1" in remote.branches()
        [action] = [a for a in get_incident(store=app.ctx.store, incident_id=1).actions if a.kind == "postmortem"]
        assert action.state.value == "pushed"
        assert kinds(app).count("postmortem.pushed") == 1
    finally:
        app.close()


def test_a_pull_request_that_cannot_open_is_said_once_and_retried(tmp_path: Path, clock: Clock) -> None:
    remote = gitops(tmp_path)
    with FakeGitHub(remote.bare).serving() as github:
        app = world(tmp_path, clock, github, remote)
        try:
            github.fail("POST", r"/pulls$", 422, times=2, message="Validation Failed")
            postmortem_job(app.ctx)
            postmortem_job(app.ctx)
            timeline = get_incident(store=app.ctx.store, incident_id=1).timeline
            failures = [e for e in timeline if e.kind == "action.failed"]
            assert len(failures) == 1, [e.text for e in failures]
            assert "tries again" in failures[0].text
            postmortem_job(app.ctx)  # GitHub answers again
            assert len(github.pulls) == 1
            assert kinds(app).count("postmortem.pushed") == 1
        finally:
            app.close()


def resolved_incident(app: bootstrap.App, clock: Clock, name: str) -> None:
    """An incident of its own (alert `name` on checkout) that fires and resolves."""
    firing = ReceivedAlert(fingerprint=f"fp{name}", starts_at=clock() - timedelta(minutes=5), ends_at=None,
                           status=AlertStatus.FIRING, annotations={},
                           labels={"alertname": name, "service": "checkout", "severity": "critical"})
    resolved = firing.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": clock()})
    for alert in (firing, resolved):
        ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key=name, status=alert.status, alerts=(alert,)),
                        playbooks=app.ctx.playbooks, policy=app.ctx.settings.incidents, now=clock())


def far_dates(app: bootstrap.App, incident_id: int) -> None:
    """Stored before such alerts were set aside: an incident that started in 9999, an alert of year 2."""
    def work(tx: Transaction) -> None:
        incident = tx.incidents.get(incident_id)
        assert incident is not None
        far = datetime(2, 1, 1, tzinfo=UTC)
        tx.incidents.save(incident.model_copy(update={"started_at": datetime(9999, 12, 31, tzinfo=UTC)}))
        tx.alerts.add_many([Alert(fingerprint="0ddba11", starts_at=far, ends_at=far, status=AlertStatus.RESOLVED,
                                  labels={"alertname": "$\\undefinedcmd$"}, annotations={}, incident_id=incident_id,
                                  received_at=incident.opened_at)])

    app.ctx.store.run(work)


def unreadable(app: bootstrap.App, incident_id: int) -> None:
    """A row no code path writes (a hand edit, a bug): the incident cannot even be read."""
    assert isinstance(app.ctx.store, SqlStore)
    with app.ctx.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alerts SET labels = '[1]' WHERE incident_id = :id"), {"id": incident_id})


@pytest.mark.parametrize("breaks", [far_dates, unreadable])
def test_one_broken_incident_never_stops_the_others_drafts(
        tmp_path: Path, clock: Clock, breaks: Callable[[bootstrap.App, int], None]) -> None:
    """Three resolved incidents, the newest (tried first) with bad data put straight into the store:
    the other two drafts are pushed whatever it is. Far dates still draft; an incident that cannot
    be read says why on its timeline, once, and is tried again at the next run."""
    remote = gitops(tmp_path)
    app = world(tmp_path, clock, None, remote)
    try:
        for name in ("Second", "Third"):
            resolved_incident(app, clock, name)
        breaks(app, 3)
        postmortem_job(app.ctx)
        postmortem_job(app.ctx)
        pushed = {"backout/postmortem/INC-1", "backout/postmortem/INC-2"}
        assert pushed <= set(remote.branches())
        if breaks is far_dates:
            assert "backout/postmortem/INC-3" in remote.branches()
            return
        assert "backout/postmortem/INC-3" not in remote.branches()
        with app.ctx.store.engine.connect() as conn:
            texts = conn.execute(sa.text("SELECT text FROM timeline_events WHERE incident_id = 3 AND kind = "
                                         "'action.failed'")).scalars().all()
        assert len(texts) == 1, texts
        assert "could not be proposed" in texts[0]
        assert "see the server log" in texts[0]
    finally:
        app.close()
