"""`actions.plan: first_step` on real git and the fake GitHub: with no confident suspect, `open_pr`
opens the revert of the plan's first step; by default it opens nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.domain.plan import StepState
from bot.services.incidents import get_incident
from bot.services.plan import advance_plans, incident_plan
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote
from tests.integration.flows import open_incident, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, Remote, FakeGitHub, str, str]]:
    """Two changes to checkout a minute apart, the alert five minutes later: a tie, no confident suspect."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: registry.example.com/checkout:1.0\n",
                           "apps/checkout/config.yaml": "timeout: 5s\n"})
    earlier = remote.commit("checkout: timeout 2s", {"apps/checkout/config.yaml": "timeout: 2s\n"},
                            minutes=400)  # the first commit is outside the 6h lookback
    latest = remote.commit("checkout: bump to 1.1", {
        "apps/checkout/deploy.yaml": "image: registry.example.com/checkout:1.1\n"}, minutes=1)
    with FakeGitHub(remote.bare).serving() as fake:
        config = write_config(tmp_path, remote, repo={"forge": "github", "github_repo": "acme/gitops"},
                              reviewers=[], github={"api_url": fake.base_url, "token": "ghs_fake_token",
                                                    "throttle": False, "max_wait": "2s"})
        yield config, remote, fake, earlier, latest


def opt(config: Path, **actions: str) -> None:
    """The checkout playbook with `open_pr` and these `actions` keys."""
    path = config.parent / "playbooks" / "checkout.yaml"
    book = yaml.safe_load(path.read_text())
    book["actions"] = {"on_open": "open_pr", **actions}
    path.write_text(yaml.safe_dump(book))


def test_first_step_opens_the_pull_request_of_the_plans_first_step(
    world: tuple[Path, Remote, FakeGitHub, str, str],
) -> None:
    """Opted in: one pull request, reverting the most recent plausible change; the plan says reverting."""
    config, remote, fake, earlier, latest = world
    opt(config, plan="first_step")
    app = open_incident(config, remote)
    ctx = app.ctx
    assert not get_incident(store=ctx.store, incident_id=1).ranking.confident
    [pull] = fake.pulls.values()
    assert pull["head"]["ref"] == f"backout/INC-1/revert-{latest[:7]}"
    advance_plans(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock())
    plan = incident_plan(store=ctx.store, playbooks=ctx.playbooks, incident_id=1, now=ctx.clock())
    assert [(s.sha, s.state) for s in plan.steps] == [(latest, StepState.REVERTING), (earlier, StepState.PENDING)]
    app.close()


def test_by_default_only_a_confident_suspect_is_acted_on(world: tuple[Path, Remote, FakeGitHub, str, str]) -> None:
    """`actions.plan` unset (confident_only): a tie opens no pull request; the plan is only proposed."""
    config, remote, fake, _, latest = world
    opt(config)
    app = open_incident(config, remote)
    assert fake.pulls == {}
    advance_plans(store=app.ctx.store, notifier=app.ctx.notifier, playbooks=app.ctx.playbooks, now=app.ctx.clock())
    view = get_incident(store=app.ctx.store, incident_id=1)
    [proposed] = [e for e in view.timeline if e.kind == "plan.proposed"]
    assert f"--commit {latest[:7]}" in proposed.text
    assert view.actions == []
    app.close()
