"""The whole app while its Git host does not answer (real git over loopback HTTP): incidents are
ranked from the mirror at once and again when the fetch lands, a Flux event for a revision still
being fetched is answered at once and recorded when it lands, /readyz and the timeline say since
when the host is silent, and the export's time to first suspect is the real one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.changes import AppliedSource
from bot.entrypoints.held_events import held_events_job
from bot.entrypoints.http_common import follow_up_work
from bot.entrypoints.scheduler import refresh_job
from bot.services.follow_ups import follow_up
from tests.adapters.held import served_gitops
from tests.adapters.test_controllers import DEPLOY, KEY, flux_body, open_alert, post_flux
from tests.conftest import Clock, need_binary
from tests.fakes.git import FakeGit, InlineExecutor
from tests.fakes.git_host import GitHost, wait_until
from tests.gitrepos import Remote


@dataclass
class Outage:
    host: GitHost
    remote: Remote
    app: bootstrap.App
    client: TestClient
    clock: Clock

    def suspects(self) -> list[str]:
        return [s["sha"] for s in self.client.get("/api/incidents/INC-1/suspects").json()["suspects"]]

    def timeline(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.get("/api/incidents/INC-1").json()["timeline"]
        return found

    def investigate_new_incident(self) -> None:
        """An alert opens INC-1 and its follow-up runs, as after the webhook's answer."""
        open_alert(self, self.clock.now)  # type: ignore[arg-type]
        follow_up(follow_up_work(self.app.ctx), opened=[1], resolved=[], now=self.clock.now)


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Callable[..., Outage]]:
    need_binary("git")
    made: list[tuple[GitHost, bootstrap.App, TestClient]] = []

    def make(**git: str) -> Outage:
        host, remote = served_gitops(tmp_path)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
            "alertmanager": {"auth": "none"}, "api": {"auth": "none"}, "flux": {"hmac_key": KEY},
            "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": host.url("gitops/remote.git"), "branch": "main"}],
            "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "30d", **git},
        }))
        clock = Clock(remote.clock + timedelta(minutes=5))
        app = bootstrap.build(load_settings(config), notifier=RecordingNotifier(), clock=clock,
                              work_executor=InlineExecutor())
        client = TestClient(app.http).__enter__()
        made.append((host, app, client))
        refresh_job(app.ctx)  # the mirror is warm, as the scheduler makes it at start
        return Outage(host, remote, app, client, clock)

    yield make
    for host, app, client in made:
        host.answer()
        client.__exit__(None, None, None)
        app.close()
        host.close()


def test_a_new_incident_is_ranked_from_the_mirror_and_again_when_the_fetch_lands(
        outage: Callable[..., Outage]) -> None:
    """The host holds the fetch: the incident is ranked at once from what the mirror has, the
    timeline says so, and the culprit the fetch brings is ranked when it lands."""
    world = outage(fetch_wait="0s", connect_timeout="60s", stall_timeout="60s")
    world.host.stall()
    culprit = world.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    world.clock.now = world.remote.clock + timedelta(minutes=2)
    world.investigate_new_incident()
    assert world.client.get("/api/incidents/INC-1/suspects").json()["status"] == "ranked"
    assert culprit not in world.suspects()
    assert world.app.ctx.git.fetches.in_flight("gitops")  # type: ignore[attr-defined]
    mirror = [e for e in world.timeline() if e["kind"] == "changes.from_mirror"]
    assert mirror
    assert "still running" in mirror[0]["text"]
    world.host.answer()
    wait_until(lambda: culprit in world.suspects(), "the culprit ranked after the fetch landed")
    assert world.suspects()[0] == culprit


def test_the_circuit_shows_on_readyz_and_the_timeline_and_closes_when_the_host_answers(
        outage: Callable[..., Outage]) -> None:
    """A stalled fetch opens the circuit: /readyz stays ready and says since when the host is
    silent, an incident's timeline too; the next fetch after the host answers closes it."""
    world = outage(fetch_wait="60s", stall_timeout="1s", retry_after="0s")
    world.host.stall()
    refresh_job(world.app.ctx)
    ready = world.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert "Git host 127.0.0.1:" in ready.json()["detail"]
    assert "not answering since" in ready.json()["detail"]
    assert "gitops" in ready.json()["git"]
    world.investigate_new_incident()
    said = " ".join(e["text"] for e in world.timeline() if e["kind"] == "changes.from_mirror")
    assert "not answering since" in said
    world.host.answer()
    refresh_job(world.app.ctx)
    ready = world.client.get("/readyz").json()
    assert ready["git"] == {}
    assert "not answering" not in ready["detail"]


def test_a_flux_event_for_a_revision_being_fetched_is_answered_at_once_and_recorded_when_it_lands(
        outage: Callable[..., Outage]) -> None:
    """Flux gives up after 15 s: the event is answered 202 while the host holds the fetch, and the
    revision gets Flux's applied time once the fetch brings it."""
    world = outage(fetch_wait="0s", connect_timeout="60s", stall_timeout="60s")
    world.host.stall()
    bump = world.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    at = world.remote.clock + timedelta(minutes=1)
    answer = post_flux(world, flux_body("kustomization-succeeded", sha=bump, at=at))  # type: ignore[arg-type]
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "fetching"
    assert f"revision {bump[:12]} is not in the mirror yet" in answer.json()["detail"]
    world.host.answer()

    def applied_by_flux() -> bool:
        found = world.app.ctx.store.run(lambda tx: tx.changes.get_many("gitops", [bump]))
        return bool(found) and found[0].applied_source is AppliedSource.FLUX

    wait_until(applied_by_flux, "the event recorded after the fetch landed")


def test_a_flux_event_while_the_host_is_known_down_is_held_and_recorded_when_it_answers(
        outage: Callable[..., Outage]) -> None:
    """The host's circuit is already open when Flux reports a revision the mirror lacks: the event
    is held (202 fetching) as when a fetch is running, not recorded at once as "not in the mirror",
    and the revision gets Flux's applied time once the host answers again."""
    world = outage(fetch_wait="60s", stall_timeout="1s", retry_after="0s")
    world.host.stall()
    refresh_job(world.app.ctx)
    assert "gitops" in world.app.ctx.git.outages()
    bump = world.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    at = world.remote.clock + timedelta(minutes=1)
    answer = post_flux(world, flux_body("kustomization-succeeded", sha=bump, at=at))  # type: ignore[arg-type]
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "fetching"
    world.host.answer()
    held_events_job(world.app.ctx)

    def applied_by_flux() -> bool:
        found = world.app.ctx.store.run(lambda tx: tx.changes.get_many("gitops", [bump]))
        return bool(found) and found[0].applied_source is AppliedSource.FLUX

    wait_until(applied_by_flux, "the held event recorded once the host answered")
    assert world.app.ctx.store.run(lambda tx: tx.held_events.count()) == 0


def test_the_export_dates_the_first_suspect_when_it_was_ranked(
        build: Callable[..., bootstrap.App], fake_git: FakeGit, clock: Clock) -> None:
    """A fetch that took 95 s before the ranking: the export's time to first suspect is 95 s, not
    the moment the investigation began."""
    app = build()
    fake_git.on_refresh = lambda: setattr(clock, "now", clock.now + timedelta(seconds=95))
    with TestClient(app.http) as client:
        world = Outage(host=None, remote=None, app=app, client=client, clock=clock)  # type: ignore[arg-type]
        world.investigate_new_incident()
        export = client.get("/api/incidents/INC-1/export?format=json").json()
    assert export["durations_seconds"]["to_first_suspect"] == 95
