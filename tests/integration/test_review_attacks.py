"""Review risk attacked as a hostile or unlucky user would, over real HTTP with the fake forges and
real git: requests against a branch Backout does not watch, late events of closed requests, a
force-push back to an earlier head, a comment a person deleted or edited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from bot.domain.review_checks import MARKER
from bot.entrypoints.serving import serve_in_thread
from bot.services import reviews
from tests.fakes.forge_hooks import deliver_github, deliver_gitlab, github_pull, gitlab_merge_request, signed
from tests.gitrepos import git
from tests.integration.review_world import (
    DEPLOY,
    GH_PROJECT,
    GL_PROJECT,
    SECRET,
    TOKEN,
    Dropped,
    World,
    bad_change_on_gitops,
    made_world,
    pull,
    request_head,
    risky_merge_request,
)

pytestmark = pytest.mark.integration
RISKY = {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with made_world(tmp_path) as made:
        yield made


def test_a_request_against_a_branch_backout_does_not_watch_is_not_assessed(world: World) -> None:
    """Base `release-1` (the watched branch is main): not queued, nothing posted, whatever it touches."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    git("push", "--quiet", "origin", "HEAD:refs/heads/release-1", cwd=world.gitops.work)
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    payload = github_pull(project=GH_PROJECT, number=1, action="opened", head="feature", head_sha=sha,
                          base="release-1")
    with serve_in_thread(app.http) as base_url:
        assert deliver_github(base_url, "pull_request", payload, secret=SECRET).status_code == 202
    assert world.github.comments == []
    assert world.github.statuses == {}
    assert app.ctx.reviews is not None
    assert app.ctx.reviews.queue.posted("gitops", 1).comment_id is None
    assert app.ctx.reviews.queue.due(now=app.ctx.clock()) == []


def test_a_late_synchronize_of_a_closed_request_posts_nothing(world: World) -> None:
    """A synchronize delivered (or redelivered) after the pull request was closed: its state says closed."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    payload = github_pull(project=GH_PROJECT, number=1, action="synchronize", head="feature", head_sha=sha)
    payload["pull_request"]["state"] = "closed"
    merge_request = gitlab_merge_request(project=GL_PROJECT, iid=2, action="update", source="feature", sha=sha,
                                         oldrev="0" * 40)
    merge_request["object_attributes"]["state"] = "merged"
    with serve_in_thread(app.http) as base_url:
        deliver_github(base_url, "pull_request", payload, secret=SECRET)
        deliver_gitlab(base_url, "Merge Request Hook", merge_request, token=TOKEN)
    assert world.github.comments == []
    assert world.github.statuses == {}
    assert world.gitlab.notes == []


def test_a_head_queued_then_closed_before_it_ran_is_dropped(world: World) -> None:
    """Queued, the process died, then the request was closed: the sweep posts nothing on it."""
    crashed = world.app(executor=Dropped())
    world.incident(crashed, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    with serve_in_thread(crashed.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
        assert pull(world, base_url, action="closed", sha=sha) == 202
    restarted = world.app()
    assert restarted.ctx.reviews is not None
    assert reviews.sweep(restarted.ctx.reviews, clock=restarted.ctx.clock) == 0
    assert world.github.comments == []
    assert world.github.statuses == {}


def test_a_force_push_back_to_an_earlier_head_brings_the_comment_back_to_it(world: World) -> None:
    """Head A (risky), head B (clean), then force-pushed back to A: A is assessed again and the comment names it."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    first = request_head(world.gitops, "refs/pull/1/head", RISKY)
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=first) == 202
        git("checkout", "--quiet", "-B", "other", "origin/main", cwd=world.gitops.work)
        second = request_head(world.gitops, "refs/pull/1/head", {"apps/other/app.yaml": "a: 2\n"}, branch="other")
        assert pull(world, base_url, action="synchronize", sha=second) == 202
        [comment] = world.github.comments
        assert "No change in this request touched" in comment["body"]
        git("push", "--quiet", "--force", "origin", f"{first}:refs/pull/1/head", cwd=world.gitops.work)
        assert pull(world, base_url, action="synchronize", sha=first) == 202
        assert pull(world, base_url, action="synchronize", sha=first) == 202  # a redelivery: nothing more
    [comment] = world.github.comments
    assert f"for {first[:7]}" in comment["body"]
    assert "touches files whose changes caused incidents" in comment["body"]
    assert world.github.calls[("PATCH", "/repos/acme/gitops/issues/comments/:n")] == 2


def test_a_comment_a_person_deleted_is_made_again_on_the_next_flagged_head(world: World) -> None:
    """The stored comment id answers 404: the next flagged head makes one new comment, not a failure."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    first = request_head(world.gitops, "refs/pull/1/head", RISKY)
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=first) == 202
        world.github.comments.clear()  # deleted by a person
        second = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2")})
        assert pull(world, base_url, action="synchronize", sha=second) == 202
        third = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="3")})
        assert pull(world, base_url, action="synchronize", sha=third) == 202
    [comment] = world.github.comments
    assert MARKER in comment["body"]
    assert f"for {third[:7]}" in comment["body"]
    assert app.ctx.reviews is not None
    assert app.ctx.reviews.queue.due(now=app.ctx.clock() + reviews.LEASE * 100) == []


def test_a_comment_a_person_edited_is_set_back_in_place(world: World) -> None:
    """A person rewrote Backout's comment (marker gone): the next head edits the same comment, no second one."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    first = request_head(world.gitops, "refs/pull/1/head", RISKY)
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=first) == 202
        world.github.comments[0]["body"] = "lgtm @everyone"
        second = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2")})
        assert pull(world, base_url, action="synchronize", sha=second) == 202
    [comment] = world.github.comments
    assert MARKER in comment["body"]
    assert f"for {second[:7]}" in comment["body"]


def test_a_gitlab_note_a_person_deleted_is_made_again_and_a_fork_is_read_from_the_target(world: World) -> None:
    """A merge request from a fork (source_project_id another project): its head is read from the target's
    refs/merge-requests/N/head; the note a person deleted is made again on the next head, once."""
    app = world.app()
    git("fetch", "--quiet", "origin", cwd=world.platform.work)
    world.incident(app, world.platform.commit("checkout: 5 replicas", {"checkout/values.yaml": "replicas: 5\n"}))
    ref = "refs/merge-requests/7/head"
    world.gitlab.open_by_someone(7, "main")
    heads = [request_head(world.platform, ref, {"checkout/values.yaml": "replicas: 6\n"}, branch="main")]
    with serve_in_thread(app.http) as base_url:
        def deliver(action: str, oldrev: str | None = None) -> int:
            payload = gitlab_merge_request(project=GL_PROJECT, iid=7, action=action, source="main", sha=heads[-1],
                                           oldrev=oldrev)
            payload["object_attributes"]["source_project_id"] = 4242  # the fork
            return deliver_gitlab(base_url, "Merge Request Hook", payload, token=TOKEN).status_code

        assert deliver("open") == 202
        world.gitlab.notes.clear()  # deleted by a person
        heads.append(request_head(world.platform, ref, {"checkout/values.yaml": "replicas: 7\n"}, branch="main"))
        assert deliver("update", oldrev=heads[-2]) == 202
    [note] = world.gitlab.notes
    assert MARKER in note["body"]
    assert f"for {heads[-1][:7]}" in note["body"]


def test_metrics_show_the_review_heads_not_assessed_yet(world: World) -> None:
    """backout_outbox_pending{queue="review_checks"}: a head queued and not run is 1; assessed, 0."""
    crashed = world.app(executor=Dropped())
    world.incident(crashed, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    with serve_in_thread(crashed.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
        assert 'backout_outbox_pending{queue="review_checks"} 1.0' in httpx.get(f"{base_url}/metrics").text
        assert crashed.ctx.reviews is not None
        assert reviews.sweep(crashed.ctx.reviews, clock=crashed.ctx.clock) == 1
        assert 'backout_outbox_pending{queue="review_checks"} 0.0' in httpx.get(f"{base_url}/metrics").text


def test_hostile_file_names_stay_inside_code_spans(world: World) -> None:
    """A real file named with backticks, a newline, Markdown, HTML and an @mention: one code span, on one line."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    hostile = "apps/checkout/`` ` [x](evil.example) <img src=x>\n@acme-oncall ``.yaml"  # no "/": same directory
    sha = request_head(world.gitops, "refs/pull/1/head", {hostile: "kind: ConfigMap\n"})
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
    [comment] = world.github.comments
    [line] = [line for line in comment["body"].splitlines() if "evil" in line]
    spans = line.split("`")
    assert len(spans) % 2 == 1  # backticks pair up: nothing after the last one is left open
    assert all("evil" not in text and "@acme" not in text for text in spans[::2])  # outside code: none of it


def test_a_delivery_for_a_repository_backout_does_not_know_is_ignored(world: World) -> None:
    """Signed, but for evil/other: 200 ignored, nothing queued or posted."""
    app = world.app()
    payload = github_pull(project="evil/other", number=1, action="opened", head="feature", head_sha="a" * 40)
    with serve_in_thread(app.http) as base_url:
        answer = deliver_github(base_url, "pull_request", payload, secret=SECRET)
    assert (answer.status_code, answer.json()["status"]) == (200, "ignored")
    assert app.ctx.reviews is not None
    assert app.ctx.reviews.queue.backlog() == 0
    assert world.github.writes() == 0


def test_a_github_webhook_left_on_its_default_content_type_is_read(world: World) -> None:
    """GitHub's default content type is application/x-www-form-urlencoded (payload=<json>), signed as sent."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    body = urlencode({"payload": json.dumps(github_pull(project=GH_PROJECT, number=1, action="opened",
                                                        head="feature", head_sha=sha))}).encode()
    with serve_in_thread(app.http) as base_url:
        answer = httpx.post(f"{base_url}/webhooks/github", content=body, headers={
            "content-type": "application/x-www-form-urlencoded", "x-github-event": "pull_request",
            "x-hub-signature-256": signed(SECRET, body)})
    assert answer.status_code == 202, answer.text
    assert len(world.github.comments) == 1


def test_a_head_that_cannot_be_fetched_waits_in_the_queue_and_is_retried(world: World) -> None:
    """The Git host gone: the delivery is answered (the work runs after it), the head stays queued with
    its error and a backoff; back, the sweep after the backoff posts it, once."""
    pool = ThreadPoolExecutor(max_workers=1)
    app = world.app(executor=pool)
    world.incident(app, bad_change_on_gitops(world))
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    moved = world.gitops.bare.rename(world.gitops.bare.with_name("away.git"))
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=sha) == 202
    pool.shutdown(wait=True)
    work = app.ctx.reviews
    assert work is not None
    assert work.queue.backlog() == 1
    assert reviews.sweep(work, clock=app.ctx.clock) == 0  # backing off
    moved.rename(world.gitops.bare)
    assert reviews.sweep(work, clock=lambda: app.ctx.clock() + reviews.RETRY_AFTER * 2) == 1
    assert len(world.github.comments) == 1
    assert work.queue.backlog() == 0


def test_two_heads_assessed_at_once_make_one_comment(world: World) -> None:
    """Opened and pushed to at once (a bot's second commit), both heads run together on two workers
    (or two replicas) and the comment's search by marker would see none for both: one head of a
    request runs at a time, so one comment, describing the last head once the sweep ran the other."""
    pool = ThreadPoolExecutor(max_workers=2)
    app = world.app(executor=pool)
    world.incident(app, bad_change_on_gitops(world))
    first = request_head(world.gitops, "refs/pull/1/head", RISKY)
    world.github.fail("GET", r"/issues/1/comments$", 0, times=2, delay=1.0)  # both list before either posts
    with serve_in_thread(app.http) as base_url:
        assert pull(world, base_url, action="opened", sha=first) == 202
        second = request_head(world.gitops, "refs/pull/1/head", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2")})
        assert pull(world, base_url, action="synchronize", sha=second) == 202
        pool.shutdown(wait=True)
    assert len(world.github.comments) == 1
    assert app.ctx.reviews is not None
    reviews.sweep(app.ctx.reviews, clock=app.ctx.clock)  # the head that waited for the other's turn
    [comment] = world.github.comments
    assert f"for {second[:7]}" in comment["body"]


def test_a_request_retargeted_to_the_watched_branch_is_assessed(world: World) -> None:
    """Opened into release-1 (not assessed), then its base edited to main (GitHub `edited` with
    changes.base): assessed without a push."""
    app = world.app()
    world.incident(app, bad_change_on_gitops(world))
    git("push", "--quiet", "origin", "HEAD:refs/heads/release-1", cwd=world.gitops.work)
    sha = request_head(world.gitops, "refs/pull/1/head", RISKY)
    opened = github_pull(project=GH_PROJECT, number=1, action="opened", head="feature", head_sha=sha, base="release-1")
    edited = github_pull(project=GH_PROJECT, number=1, action="edited", head="feature", head_sha=sha)
    edited["changes"] = {"base": {"ref": {"from": "release-1"}, "sha": {"from": "0" * 40}}}
    with serve_in_thread(app.http) as base_url:
        assert deliver_github(base_url, "pull_request", opened, secret=SECRET).status_code == 202
        assert world.github.comments == []
        assert deliver_github(base_url, "pull_request", edited, secret=SECRET).status_code == 202
    assert len(world.github.comments) == 1


def test_a_merge_request_retargeted_to_the_watched_branch_is_assessed(world: World) -> None:
    """GitLab: an update without new commits whose changes name target_branch: assessed."""
    app = world.app()
    sha = risky_merge_request(world, app, 3)
    retargeted = gitlab_merge_request(project=GL_PROJECT, iid=3, action="update", source="feature", sha=sha)
    retargeted["changes"] = {"target_branch": {"previous": "release-1", "current": "main"}}
    with serve_in_thread(app.http) as base_url:
        assert deliver_gitlab(base_url, "Merge Request Hook", retargeted, token=TOKEN).status_code == 202
    assert len(world.gitlab.notes) == 1
