"""Guarded automatic recovery (`actions.merge: confident`) on the fake GitHub and GitLab, with real
git underneath: the veto window announced, then one merge when every condition holds, and none
when one does not (held, not confident, a safety flag, the forge's verdict); a forge down during
the merge, a restart during the window and a crash after the merge call each end in one merge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.actions import ActionState
from bot.domain.automerge import ineligible, window_state
from bot.domain.chat import Command
from bot.domain.models import Actor, IncidentStatus
from bot.domain.playbooks import ActionPolicy, MergeMode
from bot.domain.ports import Merging
from bot.domain.timeline import EventKind
from bot.entrypoints.scheduler import start_scheduler
from bot.services.automerge import follow_automatic_merges, hold
from bot.services.card import incident_message
from bot.services.chat import ChatCommands
from bot.services.incidents import change_status, get_incident
from bot.services.report import team_report
from bot.services.restore import plan_restore, restore
from bot.services.watching import verify_rollbacks
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.metrics import FakeMetrics
from tests.gitrepos import Remote, git
from tests.integration.flows import open_incident, roll_back, write_config

pytestmark = pytest.mark.integration
DEPLOY = "image: registry.example.com/checkout:{tag}\n"
OWNER, STRANGER = "U0OWNER", "U0STRANGER"
WAIT = timedelta(minutes=5)


@dataclass
class World:
    config: Path
    remote: Remote
    fake: Any  # FakeGitHub | FakeGitLab
    bad: str
    forge: str

    def set_mergeable(self, state: str) -> None:
        if self.forge == "github":
            self.fake.set_mergeable(1, state)
        else:
            self.fake.set_merge_status(1, state)

    def merge_path(self) -> str:
        return r"/pulls/1/merge$" if self.forge == "github" else r"/merge_requests/1/merge$"


def make_world(tmp_path: Path, forge: str, *, files: dict[str, str] | None = None,
               playbook: dict[str, Any] | None = None, after: float = 10) -> Iterator[World]:
    """A remote whose bad change came `after` minutes after the first commit, on the fake `forge`."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0")})
    bad = remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1"),
                                                  **(files or {})}, minutes=after)
    with ExitStack() as stack:
        if forge == "github":
            fake: Any = stack.enter_context(FakeGitHub(remote.bare).serving())
            repo = {"forge": "github", "github_repo": "acme/gitops"}
            sections: dict[str, Any] = {"github": {"api_url": fake.base_url, "token": "ghs_fake", "throttle": False,
                                                   "max_wait": "2s"}}
        else:
            fake = stack.enter_context(FakeGitLab(remote.bare).serving())
            repo = {"forge": "gitlab", "gitlab_project": "acme/platform/gitops"}
            sections = {"gitlab": {"url": fake.base_url, "token": "glpat-fake", "max_wait": "2s"}}
        config = write_config(tmp_path, remote, repo=repo, reviewers=[], **sections)
        path = tmp_path / "playbooks" / "checkout.yaml"
        data = yaml.safe_load(path.read_text())
        data["actions"].update({"merge": "confident", "merge_after": "5m"})
        data["owners"] = {"slack_users": [OWNER]}
        path.write_text(yaml.safe_dump(data | (playbook or {})))
        yield World(config, remote, fake, bad, forge)


Make = Callable[..., World]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    """`make(forge, files=..., playbook=...)`: a world served until the test ends."""
    with ExitStack() as stack:
        yield lambda forge, **kwargs: stack.enter_context(contextmanager(make_world)(tmp_path, forge, **kwargs))


@pytest.fixture(params=["github", "gitlab"])
def world(make: Make, request: pytest.FixtureRequest) -> World:
    return make(request.param)


def run(app: bootstrap.App, at: datetime) -> int:
    """One run of the scheduled job at `at`."""
    ctx = app.ctx
    merging = ctx.forge if isinstance(ctx.forge, Merging) else None
    return follow_automatic_merges(store=ctx.store, forge=ctx.forge, merging=merging, notifier=ctx.notifier,
                                   playbooks=ctx.playbooks, now=at)


def events(app: bootstrap.App, kind: EventKind) -> list[Any]:
    return [e for e in get_incident(store=app.ctx.store, incident_id=1).timeline if e.kind == kind.value]


def opened(world: World) -> tuple[bootstrap.App, datetime]:
    """INC-1 with its revert pull request open and the veto window announced; the announcement's time."""
    app = open_incident(world.config, world.remote)
    assert roll_back(app).action.state.value == "pr_open"
    start = app.ctx.clock()
    assert run(app, start) == 1
    return app, start


def never_merged(app: bootstrap.App, world: World, start: datetime, reason: str) -> None:
    """No veto window: declined with `reason`, and no merge however long it waits."""
    assert not events(app, EventKind.AUTOMERGE_ANNOUNCED)
    [declined] = events(app, EventKind.AUTOMERGE_DECLINED)
    assert reason in declined.text
    assert run(app, start + WAIT) == 0
    assert world.fake.merges == 0
    app.close()


def test_merges_once_after_the_window_when_every_condition_holds(world: World) -> None:
    """Announced with when and how to hold; nothing before the window ends; then one real merge,
    on the timeline with the rule, counted by the report; later runs change nothing."""
    app, start = opened(world)
    [announced] = events(app, EventKind.AUTOMERGE_ANNOUNCED)
    assert f"at {start + WAIT:%H:%M} UTC" in announced.text
    assert "Hold" in announced.text
    assert "backout hold INC-1" in announced.text
    assert run(app, start + WAIT - timedelta(seconds=1)) == 0
    assert world.fake.merges == 0
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 1
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "merged"
    assert view.incident.status is IncidentStatus.MITIGATING
    [merged] = events(app, EventKind.PR_MERGED)
    assert merged.data["automatic"] is True
    assert "actions.merge confident" in merged.data["rule"]
    assert "5m veto window" in merged.data["rule"]
    assert "Merged by Backout by itself" in merged.text
    # the watched branch now holds the revert: the service's file is back to the good content
    assert git("show", "main:apps/checkout/deploy.yaml", cwd=world.remote.bare) + "\n" == DEPLOY.format(tag="1.0")
    assert run(app, start + WAIT * 2) == 0
    assert world.fake.merges == 1
    report = team_report(store=app.ctx.store, since=start - timedelta(days=30), now=start + WAIT)
    assert report["reverts"]["merged_by_backout"] == 1
    app.close()


def test_a_hold_by_someone_who_may_roll_back_stops_it(world: World) -> None:
    """A stranger's Hold is refused with the reason (and changes nothing); an owner's stops the merge."""
    app, start = opened(world)
    ctx = app.ctx
    commands = ChatCommands(store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier,
                            playbooks=ctx.playbooks, clock=lambda: start + timedelta(minutes=1))
    refused = commands.run(Command("hold", "INC-1"), user=STRANGER, groups=lambda _: set())
    assert refused.text.startswith("You may not hold INC-1: only the playbook's owners")
    assert OWNER in refused.text
    assert window_state(get_incident(store=ctx.store, incident_id=1).actions[0]) == "waiting"
    held = commands.run(Command("hold", "INC-1"), user=OWNER, groups=lambda _: set())
    assert held.text == "INC-1: held; Backout will not merge pull request #1 by itself." if world.forge == "github" \
        else held.text == "INC-1: held; Backout will not merge merge request !1 by itself."
    assert run(app, start + WAIT * 3) == 0
    assert world.fake.merges == 0
    [event] = events(app, EventKind.AUTOMERGE_HELD)
    assert event.actor_id == OWNER
    again = commands.run(Command("hold", "INC-1"), user=OWNER, groups=lambda _: set())
    assert again.text == f"INC-1: already held by {OWNER}"
    app.close()


@pytest.mark.parametrize(("forge", "state"), [
    ("github", "dirty"), ("github", "blocked"), ("github", "unstable"),
    ("gitlab", "conflict"), ("gitlab", "not_approved"), ("gitlab", "ci_still_running")])
def test_no_merge_unless_the_forge_says_it_can_merge_as_is(make: Make, forge: str, state: str) -> None:
    """GitHub's mergeable_state (clean) or GitLab's detailed_merge_status (mergeable), re-read when
    due: anything else, and Backout leaves it to people, for good."""
    world = make(forge)
    app, start = opened(world)
    world.set_mergeable(state)
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 0
    [declined] = events(app, EventKind.AUTOMERGE_DECLINED)
    field = "mergeable_state" if forge == "github" else "detailed_merge_status"
    assert f"the forge says {field} {state}" in declined.text
    assert "does nothing more by itself" in declined.text
    world.set_mergeable("clean" if forge == "github" else "mergeable")
    assert run(app, start + WAIT * 2) == 0
    assert world.fake.merges == 0
    app.close()


def test_no_window_for_a_change_with_a_safety_flag(make: Make) -> None:
    """A database migration in the reverted change: declined at once, with the flag named."""
    world = make("github", files={"apps/checkout/migrations/002.sql": "CREATE INDEX x;\n"})
    app, start = opened(world)
    never_merged(app, world, start, "revert-safety flags: database-migration")


def test_no_window_when_the_suspect_is_not_confident(make: Make) -> None:
    """An evidence floor the suspect does not reach: a person's revert is never merged by Backout."""
    world = make("gitlab", playbook={"suspects": {"min_confidence": 0.99}})
    app = open_incident(world.config, world.remote)
    assert not get_incident(store=app.ctx.store, incident_id=1).ranking.confident
    roll_back(app, sha=world.bad)
    start = app.ctx.clock()
    assert run(app, start) == 1
    never_merged(app, world, start, "the suspect is not confident")


def test_forge_down_during_the_merge_is_retried_and_merges_once(world: World) -> None:
    """The merge's answer lost (502 after the merge): found merged, not merged again. The forge down
    through every retry: said once, and the next run merges."""
    app, start = opened(world)
    world.fake.fail("PUT", world.merge_path(), 502, after_write=True)
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 1
    assert get_incident(store=app.ctx.store, incident_id=1).actions[0].state.value == "merged"
    assert len(events(app, EventKind.PR_MERGED)) == 1
    app.close()


def test_forge_down_through_the_retries_merges_at_a_later_run(world: World) -> None:
    """503 on every merge call of a run: the window stays, the timeline says it once; next run merges."""
    app, start = opened(world)
    world.fake.fail("PUT", world.merge_path(), 503, times=100)
    assert run(app, start + WAIT) == 0
    assert world.fake.merges == 0
    assert len(events(app, EventKind.AUTOMERGE_RETRY)) == 1
    world.fake.faults.clear()
    assert run(app, start + WAIT + timedelta(seconds=15)) == 1
    assert world.fake.merges == 1
    assert run(app, start + WAIT + timedelta(seconds=30)) == 0
    assert world.fake.merges == 1
    app.close()


def test_a_restart_during_the_window_merges_once_after_it(world: World) -> None:
    """The due time is stored: a new process (the same database) merges when due, once."""
    app, start = opened(world)
    app.close()
    again = bootstrap.build(load_settings(world.config), notifier=RecordingNotifier())
    assert run(again, start + WAIT - timedelta(seconds=1)) == 0
    assert run(again, start + WAIT) == 1
    assert run(again, start + WAIT) == 0
    assert world.fake.merges == 1
    again.close()


def test_a_crash_after_the_merge_call_is_recorded_not_repeated(world: World) -> None:
    """The merge went through but the process died before recording it: the next run finds it merged
    and records it with the rule; the pull request follower leaves it to that run."""
    app, start = opened(world)
    ctx = app.ctx
    [action] = get_incident(store=ctx.store, incident_id=1).actions
    merging = action.model_copy(update={"detail": {**action.detail, "auto_merge": {
        **action.detail["auto_merge"], "state": "merging"}}})
    ctx.store.run(lambda tx: tx.actions.save(merging))
    sha = world.fake.pulls[1]["head"]["sha"] if world.forge == "github" else world.fake.merge_requests[1]["sha"]
    world.fake._merge(1, {"sha": sha})  # what the lost merge call did
    from bot.services.pull_requests import follow_pull_requests
    assert follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=start) == 0
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 1
    [merged] = events(app, EventKind.PR_MERGED)
    assert merged.data["automatic"] is True
    app.close()


def test_hold_through_the_api(world: World) -> None:
    """POST /api/incidents/INC-1/hold: 409 while no merge waits; then held, and again changes nothing."""
    config = yaml.safe_load(world.config.read_text())
    world.config.write_text(yaml.safe_dump(config | {"api": {"auth": "none"}}))
    app = open_incident(world.config, world.remote)
    roll_back(app)
    with TestClient(app.http) as client:
        early = client.post("/api/incidents/INC-1/hold")
        assert run(app, app.ctx.clock()) == 1
        first = client.post("/api/incidents/INC-1/hold", json={"by": "alice"})
        second = client.post("/api/incidents/INC-1/hold")
    assert early.status_code == 409
    assert "no automatic merge waiting" in early.json()["detail"]
    assert first.status_code == 200
    assert first.json()["changed"] is True
    assert second.json()["changed"] is False
    assert run(app, app.ctx.clock() + WAIT * 2) == 0
    assert world.fake.merges == 0
    app.close()


def test_the_default_playbook_never_merges(make: Make) -> None:
    """Off unless a playbook opts in: no window, no merge, however long the pull request waits."""
    assert ActionPolicy().merge is MergeMode.OFF
    world = make("github", playbook={"actions": {"on_open": "off"}})
    app = open_incident(world.config, world.remote)
    roll_back(app)
    start = app.ctx.clock()
    assert run(app, start) == 0
    assert run(app, start + timedelta(days=1)) == 0
    assert world.fake.merges == 0
    assert not events(app, EventKind.AUTOMERGE_ANNOUNCED)
    app.close()


class HoldWhileReading:
    """The forge's merge state read while someone presses Hold: the race the row lock settles."""

    def __init__(self, inner: Merging, press: Callable[[], object]) -> None:
        self.inner, self.press = inner, press

    def merge_state(self, repo: str, number: int) -> Any:
        self.press()
        return self.inner.merge_state(repo, number)

    def merge(self, repo: str, number: int, *, sha: str, message: str) -> Any:
        return self.inner.merge(repo, number, sha=sha, message=message)


def test_a_hold_pressed_while_the_merge_is_being_decided_wins(world: World) -> None:
    """Hold lands between the job's read of the window and its merge call: no merge."""
    app, start = opened(world)
    ctx = app.ctx
    assert isinstance(ctx.forge, Merging)
    press = partial(hold, store=ctx.store, notifier=ctx.notifier, incident_id=1, actor=Actor.USER,
                    actor_id=OWNER, now=start + WAIT)
    assert follow_automatic_merges(store=ctx.store, forge=ctx.forge, merging=HoldWhileReading(ctx.forge, press),
                                   notifier=ctx.notifier, playbooks=ctx.playbooks, now=start + WAIT) == 0
    assert world.fake.merges == 0
    assert window_state(get_incident(store=ctx.store, incident_id=1).actions[0]) == "held"
    app.close()


def test_the_card_and_the_pull_request_say_it_while_the_window_is_open(world: World) -> None:
    """The card offers Hold during the window (and no more once held); the pull request's comment
    says when Backout merges, then that it was held (edited, not a second comment)."""
    app, start = opened(world)
    ctx = app.ctx
    payload = incident_message(store=ctx.store, incident_id=1, playbooks=ctx.playbooks).payload
    assert payload["hold"] is True
    comments = world.fake.comments if world.forge == "github" else world.fake.notes
    [comment] = comments
    assert f"by itself at {start + WAIT:%H:%M} UTC" in comment["body"]
    hold(store=ctx.store, notifier=ctx.notifier, incident_id=1, actor=Actor.USER, actor_id=OWNER, now=start)
    assert incident_message(store=ctx.store, incident_id=1, playbooks=ctx.playbooks).payload["hold"] is False
    run(app, start + timedelta(seconds=15))
    [comment] = comments
    assert comment["body"].startswith(f"Held by {OWNER}: Backout will not merge this")
    app.close()


def test_when_the_metric_does_not_recover_backout_says_so_and_stops(make: Make) -> None:
    """After its own merge, verification runs as after a person's; not recovered in time: said, and
    nothing more is done by itself (no window for another pull request of the incident)."""
    query = 'sum(rate(errors{service="checkout"}[5m]))'
    world = make("github", playbook={"key_query": query, "verify": {"below": 1, "within": "10m"}})
    app, start = opened(world)
    run(app, start + WAIT)
    metrics = FakeMetrics()
    metrics.values[query] = 5.0
    ctx = app.ctx
    verify_rollbacks(store=ctx.store, metrics=metrics, notifier=ctx.notifier, playbooks=ctx.playbooks,
                     now=start + WAIT)
    verify_rollbacks(store=ctx.store, metrics=metrics, notifier=ctx.notifier, playbooks=ctx.playbooks,
                     now=start + WAIT + timedelta(minutes=11))
    [failed] = events(app, EventKind.VERIFY_FAILED)
    assert "Backout merged it by itself and does nothing more by itself" in failed.text
    [action] = get_incident(store=ctx.store, incident_id=1).actions
    merged_before = action.model_copy(update={"id": None, "commit_sha": "f" * 40, "state": ActionState.PR_OPEN,
                                              "detail": {"pr_number": 1}})
    assert ineligible(merged_before, get_incident(store=ctx.store, incident_id=1).ranking, merged_before=True) \
        == "Backout already merged one pull request of this incident by itself; the next step is for people"
    app.close()


def test_a_restore_is_merged_under_the_same_rule(make: Make) -> None:
    """Backout's own restore to last known good (the confident suspect among what it undoes, no
    flag): announced, then merged once when due; the watched branch holds the good content."""
    world = make("gitlab", after=600)
    app = open_incident(world.config, world.remote)
    ctx = app.ctx
    plan = plan_restore(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks, incident_id=1, now=ctx.clock())
    made = restore(store=ctx.store, git=ctx.git, notifier=ctx.notifier, plan=plan, actor=Actor.USER, actor_id="U1",
                   now=ctx.clock(), forge=ctx.forge)
    assert (made.action.kind.value, made.action.state.value) == ("restore", "pr_open")
    start = ctx.clock()
    assert run(app, start) == 1
    [announced] = events(app, EventKind.AUTOMERGE_ANNOUNCED)
    assert f"the restore to last known good {plan.good.short}" in announced.text
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 1
    assert git("show", "main:apps/checkout/deploy.yaml", cwd=world.remote.bare) + "\n" == DEPLOY.format(tag="1.0")
    [merged] = events(app, EventKind.PR_MERGED)
    assert (merged.data["action"], merged.data["automatic"]) == ("restore", True)
    app.close()


def test_a_merge_refused_by_branch_protection_says_which_rule(world: World) -> None:
    """The forge refuses the merge call (a protection rule it did not report as blocked): not
    merged, the forge's words (the rule) on the timeline, nothing more by itself."""
    app, start = opened(world)
    world.fake.fail("PUT", world.merge_path(), 405, message='Required status check "ci/e2e" is expected.')
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 0
    [declined] = events(app, EventKind.AUTOMERGE_DECLINED)
    assert 'the forge refused the merge' in declined.text
    assert 'Required status check "ci/e2e" is expected.' in declined.text
    assert run(app, start + WAIT * 2) == 0
    app.close()


def test_an_incident_resolved_during_the_window_is_not_merged(world: World) -> None:
    """Resolved before the window ends: when due, Backout says so and leaves the pull request alone."""
    app, start = opened(world)
    change_status(store=app.ctx.store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id=OWNER, now=start + timedelta(minutes=1))
    assert run(app, start + WAIT) == 1
    assert world.fake.merges == 0
    [declined] = events(app, EventKind.AUTOMERGE_DECLINED)
    assert "the incident is no longer active when it was due" in declined.text
    app.close()


@pytest.mark.parametrize(("playbook", "scheduled"), [(None, True), ({"actions": {"on_open": "off"}}, False)])
def test_the_job_runs_only_where_a_playbook_opts_in(make: Make, playbook: dict[str, Any] | None,
                                                    scheduled: bool) -> None:
    """`automatic_merges` every 15 s (leader only, late runs kept) when a playbook says
    `actions.merge: confident`; no such job otherwise."""
    world = make("github", playbook=playbook)
    app = bootstrap.build(load_settings(world.config), notifier=RecordingNotifier())
    scheduler = start_scheduler(app.ctx)
    try:
        job = scheduler.get_job("automatic_merges")
        assert (job is not None) is scheduled
        if job is not None:
            assert (job.trigger.interval, job.coalesce, job.misfire_grace_time) == (timedelta(seconds=15), True, 60)
    finally:
        scheduler.shutdown(wait=True)
        app.close()
