"""Review risk end to end, with real git under the fake GitHub and the fake GitLab served over
HTTP: a pull (merge) request that touches what caused an incident gets one `backout/risk` check
per head and one comment, edited in place however many pushes follow; a clean one gets nothing;
a playbook's block_on fails the check; wrong signatures and tokens are refused; rate limits and
lost answers cost waits, never a second comment; a head queued before a crash is assessed by the
sweep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.config import load_settings
from bot.domain.ports import OpenRequests
from bot.domain.review_checks import MARKER
from bot.entrypoints.scheduler import polled_for_review
from bot.entrypoints.serving import serve_in_thread
from bot.services import reviews
from tests.fakes.forge_hooks import deliver_github, deliver_gitlab, github_pull, gitlab_merge_request
from tests.gitrepos import git
from tests.integration.review_world import (
    CRD,
    DEPLOY,
    GH_PROJECT,
    GL_PROJECT,
    TOKEN,
    Dropped,
    World,
    bad_change_on_gitops,
    made_world,
    note_posts,
    pull,
    request_head,
    risk_statuses,
    risky_merge_request,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with made_world(tmp_path) as made:
        yield made


def test_a_wrong_signature_or_token_is_refused_and_nothing_is_assessed(world: World) -> None:
    """401 before parsing: a forged delivery queues no review and posts nothing."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    payload = github_pull(project=GH_PROJECT, number=1, action="opened", head="feature", head_sha=sha)
    merge_request = gitlab_merge_request(project=GL_PROJECT, iid=1, action="open", source="feature", sha=sha)
    with serve_in_thread(app.http) as base_url:
        assert deliver_github(base_url, "pull_request", payload, secret="not-the-secret").status_code == 401
        assert deliver_gitlab(base_url, "Merge Request Hook", merge_request, token="not-the-token").status_code == 401
    assert world.github.comments == []
    assert world.github.statuses == {}
    assert world.gitlab.notes == []
    assert app.ctx.reviews is not None
    assert app.ctx.reviews.queue.due(now=app.ctx.clock()) == []


def test_a_flagged_pull_request_gets_one_check_per_head_and_one_comment_however_many_pushes(world: World) -> None:
    """Opened, then five pushes: one comment (created once, edited), one backout/risk status per head."""
    app = world.app()
    bad = bad_change_on_gitops(world)
    world.incident(app, bad)
    heads = [request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})]
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=heads[0]) == 202
        for push in range(5):
            heads.append(request_head(world.gitops, "refs/pull/1/head",
                                      {"apps/checkout/deploy.yaml": DEPLOY.format(tag=f"1.3.{push}")}))
            assert pull(world, base_url, action="synchronize", sha=heads[-1]) == 202
        assert pull(world, base_url, action="synchronize", sha=heads[-1]) == 202  # a redelivery: nothing more
    [comment] = world.github.comments
    assert MARKER in comment["body"]
    assert heads[-1][:7] in comment["body"]
    assert "[INC-1](https://backout.example.com/incidents/INC-1)" in comment["body"]
    assert "image" in comment["body"]
    assert "HighErrorRate" not in comment["body"]  # no alert text
    assert world.github.calls[("POST", "/repos/acme/gitops/issues/:n/comments")] == 1
    for head in heads:
        [status] = risk_statuses(world.github, head)
        assert status["state"] == "success"
        assert status["description"].startswith("Touches what caused INC-1")
        assert status["target_url"] == "https://backout.example.com/incidents/INC-1"


def test_a_clean_pull_request_gets_nothing(world: World) -> None:
    """A change elsewhere (not the file, not its directory) gets no check and no comment."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/2/head", {"apps/other/app.yaml": "a: 2\n"})
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha, number=2) == 202
    assert world.github.comments == []
    assert world.github.statuses == {}
    assert world.github.writes() == 0


def test_a_head_that_no_longer_touches_it_is_told_so_and_its_check_set_clean(world: World) -> None:
    """Flagged, then a push that takes the change out: the same comment says so, the new head's check is clean."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    first = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=first) == 202
        second = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1"),
                                                                 "apps/other/app.yaml": "a: 3\n"})
        assert pull(world, base_url, action="synchronize", sha=second) == 202
    [comment] = world.github.comments
    assert "No change in this request touched files whose changes caused incidents" in comment["body"]
    [status] = risk_statuses(world.github, second)
    assert (status["state"], status["description"]) == ("success", "Touches nothing whose changes caused incidents")


def test_block_on_crd_fails_the_check_of_a_crd_change(world: World) -> None:
    """A playbook's review.block_on [crd] and a change adding a CRD where the culprit was: status failure."""
    world.block_on = ["crd"]
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/3/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2"),
                                                          "apps/checkout/crd.yaml": CRD.format(name="widgets")})
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha, number=3) == 202
    [status] = risk_statuses(world.github, sha)
    assert status["state"] == "failure"
    assert status["description"].startswith("Blocked (crd): Touches what caused INC-1")
    assert len(status["description"]) <= 140
    [comment] = world.github.comments
    assert "Blocked by the playbook's rule: crd." in comment["body"]


def test_gitlab_merge_requests_get_a_status_and_one_note_the_same_way(world: World) -> None:
    """Open, then three pushes (update with oldrev): one note, a status per head; block_on crd fails it."""
    world.block_on = ["crd"]
    app = world.app()
    git("fetch", "--quiet", "origin", cwd=world.platform.work)
    bad = world.platform.commit("checkout: 5 replicas", {"checkout/values.yaml": "replicas: 5\n"})
    world.incident(app, bad)
    ref = "refs/merge-requests/4/head"
    world.gitlab.open_by_someone(4, "feature")
    heads = [request_head(world.platform, ref, {"checkout/values.yaml": "replicas: 6\n"})]
    with serve_in_thread(app.http) as base_url:
        def deliver(action: str, sha: str, oldrev: str | None = None) -> int:
            payload = gitlab_merge_request(project=GL_PROJECT, iid=4, action=action, source="feature", sha=sha,
                                           oldrev=oldrev)
            return deliver_gitlab(base_url, "Merge Request Hook", payload, token=TOKEN).status_code

        assert deliver("open", heads[0]) == 202
        for push in range(3):
            heads.append(request_head(world.platform, ref, {"checkout/values.yaml": f"replicas: {7 + push}\n"}))
            assert deliver("update", heads[-1], oldrev=heads[-2]) == 202
        heads.append(request_head(world.platform, ref, {"checkout/crd.yaml": CRD.format(name="gadgets")}))
        assert deliver("update", heads[-1], oldrev=heads[-2]) == 202
    [note] = world.gitlab.notes
    assert MARKER in note["body"]
    assert "INC-1" in note["body"]
    assert note_posts(world.gitlab) == 1
    states = [[s["status"] for s in world.gitlab.statuses[head] if s["name"] == "backout/risk"] for head in heads]
    assert states == [["success"]] * 4 + [["failed"]]


def test_rate_limits_are_waited_out_and_a_lost_answer_makes_no_second_comment(world: World) -> None:
    """429 with Retry-After on the status, a secondary rate limit (403) on the comment list, a 502
    after the comment was made: the same one comment and status in the end."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    world.github.fail("POST", r"/statuses/", 429, headers={"Retry-After": "1"})
    secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    world.github.fail("GET", r"/issues/1/comments$", 403, headers={"Retry-After": "1"}, message=secondary)
    world.github.fail("POST", r"/issues/1/comments$", 502, after_write=True)
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
    assert len(world.github.comments) == 1
    assert len(risk_statuses(world.github, sha)) == 1
    assert world.github.calls[("POST", "/repos/acme/gitops/statuses/:sha")] == 2  # the 429, then the status
    assert world.github.calls[("POST", "/repos/acme/gitops/issues/:n/comments")] == 1  # the lost answer's write


def test_gitlab_429_is_waited_out(world: World) -> None:
    """GitLab's 429 with Retry-After on the note: waited, then one note."""
    app = world.app()
    sha = risky_merge_request(world, app, 5)
    world.gitlab.fail("POST", r"/notes$", 429, headers={"Retry-After": "1"})
    payload = gitlab_merge_request(project=GL_PROJECT, iid=5, action="open", source="feature", sha=sha)
    with serve_in_thread(app.http) as base_url:
        assert deliver_gitlab(base_url, "Merge Request Hook", payload, token=TOKEN).status_code == 202
    assert len(world.gitlab.notes) == 1
    assert note_posts(world.gitlab) == 2


def test_a_head_queued_before_a_crash_is_assessed_by_the_sweep(world: World) -> None:
    """The webhook answered, the process died before the work ran: the next sweep posts it, once."""
    crashed = world.app(executor=Dropped())
    world.incident(crashed, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    with serve_in_thread(crashed.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
    assert world.github.comments == []
    restarted = world.app()
    assert restarted.ctx.reviews is not None
    assert reviews.sweep(restarted.ctx.reviews, clock=restarted.ctx.clock) == 1
    assert reviews.sweep(restarted.ctx.reviews, clock=restarted.ctx.clock) == 0
    assert len(world.github.comments) == 1
    assert len(risk_statuses(world.github, sha)) == 1


def test_the_cli_prints_the_assessment_and_posts_only_when_asked(world: World) -> None:
    """`backout risk gitops 1`: the incidents and flags, nothing on the forge; --post: the check and the comment."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    config = str(world.tmp / "config.yaml")
    printed = CliRunner().invoke(cli, ["risk", "gitops", "1", "--json", "--config", config])
    assert printed.exit_code == 0, printed.output
    shown = json.loads(printed.stdout)
    assert (shown["flagged"], shown["head_sha"], shown["incidents"], shown["posted"]) == (True, sha, [1], False)
    assert world.github.writes() == 0
    posted = CliRunner().invoke(cli, ["risk", "gitops", "1", "--post", "--config", config])
    assert posted.exit_code == 0, posted.output
    assert "INC-1" in posted.stdout
    assert len(world.github.comments) == 1
    assert len(risk_statuses(world.github, sha)) == 1
    unknown = CliRunner().invoke(cli, ["risk", "nope", "1", "--config", config])
    assert unknown.exit_code == 2
    assert "known: gitops, platform" in unknown.output


def test_without_a_webhook_open_requests_are_polled_within_the_rate_limit(world: World) -> None:
    """Listing open requests queues each new head once; a second poll with nothing new costs a 304 on GitHub."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")})
    world.github.open_by_someone(1, "feature", sha)
    git("fetch", "--quiet", "origin", cwd=world.platform.work)
    mr_sha = request_head(world.platform, "refs/merge-requests/2/head", {"other/values.yaml": "replicas: 2\n"})
    world.gitlab.open_by_someone(2, "feature", sha=mr_sha)
    work = app.ctx.reviews
    assert work is not None
    assert isinstance(app.ctx.forge, OpenRequests)
    repos = {"gitops": "main", "platform": "main"}
    assert reviews.poll(work, app.ctx.forge, repos=repos, now=app.ctx.clock()) == 2
    assert reviews.poll(work, app.ctx.forge, repos=repos, now=app.ctx.clock()) == 0
    assert len(world.github.comments) == 1
    assert len(risk_statuses(world.github, sha)) == 1
    assert world.gitlab.notes == []  # clean: nothing touched what caused INC-1
    assert world.github.calls[("GET", "/repos/acme/gitops/pulls")] == 2
    assert world.github.rate_remaining == 5000 - world.github.reads() - world.github.writes() + 1  # the 304 was free


def test_only_repositories_whose_forge_has_no_webhook_secret_are_polled(world: World) -> None:
    settings = load_settings(world.tmp / "config.yaml")
    assert polled_for_review(settings) == {}
    unhooked = settings.model_copy(update={"github": settings.github.model_copy(update={"webhook_secret": None})})
    assert polled_for_review(unhooked) == {"gitops": "main"}


def test_a_request_that_reverts_the_cause_is_not_held_against_it(world: World) -> None:
    """Its commit says "This reverts commit <culprit>": the culprit's own undoing gets nothing."""
    app = world.app()
    bad = bad_change_on_gitops(world)
    world.incident(app, bad)
    git("checkout", "--quiet", "-B", "feature", "origin/main", cwd=world.gitops.work)
    git("revert", "--no-edit", bad, cwd=world.gitops.work)
    git("push", "--quiet", "--force", "origin", "HEAD:refs/pull/6/head", cwd=world.gitops.work)
    sha = git("rev-parse", "HEAD", cwd=world.gitops.work)
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha, number=6) == 202
    assert world.github.comments == []
    assert world.github.statuses == {}
