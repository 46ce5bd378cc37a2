"""Image bumps to the code that changed: a suspect that moves an image tag lists the application
commits between the two tags (Git tags, or a CI build record), in the API, the CLI text and the
export. Real Git repositories."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.export.html import render_markdown
from bot.config import load_settings
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.services.export import build_export
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from bot.services.notify import incident_lines
from tests.conftest import Clock
from tests.fakes.git import InlineExecutor
from tests.gitrepos import Remote, git

pytestmark = pytest.mark.integration
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: checkout}}\nspec:\n  template:\n"
          "    spec:\n      containers:\n      - name: checkout\n        image: registry.example.com/checkout:{tag}\n")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[bootstrap.App, Remote, Remote, dict[str, str]]]:
    app_repo = Remote(tmp_path / "checkout-app")
    shas = {"base": app_repo.commit("checkout 1.4.0", {"main.go": "package main // 1.4\n"})}
    git("tag", "v1.4.0", cwd=app_repo.work)
    shas["fix"] = app_repo.commit("cart: cache totals", {"cart.go": "package cart\n" + "// cached\n" * 20})
    shas["docs"] = app_repo.commit("docs: cart cache", {"docs/cart.md": "cache\n"})
    shas["retry"] = app_repo.commit("payments: retry twice", {"pay.go": "package pay // retry\n"})
    git("tag", "v1.5.0", cwd=app_repo.work)
    shas["later"] = app_repo.commit("after the release", {"main.go": "package main // 1.6\n"})
    git("push", "--quiet", "origin", "--tags", cwd=app_repo.work)

    gitops = Remote(tmp_path / "gitops")
    gitops.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.4.0")})
    shas["bump"] = gitops.commit("checkout 1.5.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.5.0")})
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}, {"repo": "checkout-app", "role": "app"}],
        "actions": {"on_open": "off"}}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"}, "api": {"auth": "none"},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(gitops.bare)}, {"name": "checkout-app", "url": str(app_repo.bare)}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "30d"},
    }))
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier(), clock=Clock(gitops.clock),
                          work_executor=InlineExecutor())
    yield app, gitops, app_repo, shas
    app.close()


def open_and_rank(app: bootstrap.App, at: object) -> None:
    alert = ReceivedAlert(fingerprint="f1", starts_at=at, ends_at=None, status=AlertStatus.FIRING,  # type: ignore[arg-type]
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ctx = app.ctx
    ingest_delivery(store=ctx.store, playbooks=ctx.playbooks, now=at, policy=ctx.settings.incidents,  # type: ignore[arg-type]
                    delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)))
    investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks, incident_id=1,
                now=at, import_window=timedelta(days=30))  # type: ignore[arg-type]


def test_an_image_bump_lists_the_application_commits_between_the_tags(
    world: tuple[bootstrap.App, Remote, Remote, dict[str, str]],
) -> None:
    """v1.4.0..v1.5.0: three commits, code first and larger first, docs last; the commit after
    the release is not among them. The GitOps change stays the suspect to revert."""
    app, gitops, _, shas = world
    open_and_rank(app, gitops.clock + timedelta(minutes=5))
    with TestClient(app.http) as client:
        body = client.get("/api/incidents/INC-1/suspects").json()
    top = body["suspects"][0]
    assert top["sha"] == shas["bump"]
    assert [c["sha"] for c in top["code"]] == [shas["fix"], shas["retry"], shas["docs"]]
    assert top["code"][2]["effective"] is False
    assert top["code_note"] == "checkout-app: 3 commits between 1.4.0 (tag v1.4.0) and 1.5.0 (tag v1.5.0)"
    view = get_incident(store=app.ctx.store, incident_id=1)
    text = "\n".join(incident_lines(view))
    assert f"{shas['fix'][:7]} cart: cache totals" in text
    markdown = render_markdown(build_export(view, generated_at=gitops.clock))
    assert "code behind the image bump" in markdown
    assert f"`{shas['retry'][:12]}` payments: retry twice" in markdown


def test_without_tags_a_build_record_maps_the_image_to_its_commit(
    world: tuple[bootstrap.App, Remote, Remote, dict[str, str]], tmp_path: Path,
) -> None:
    """Tags 2.0.0 and 2.1.0 exist in no repository; CI posted which commits built them."""
    app, gitops, _, shas = world
    gitops.commit("checkout 2.0.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0.0")}, minutes=1)
    bump = gitops.commit("checkout 2.1.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.1.0")}, minutes=1)
    with TestClient(app.http) as client:
        for tag, sha in (("2.0.0", shas["base"]), ("2.1.0", shas["fix"])):
            answer = client.post("/webhooks/build", json={"image": "registry.example.com/checkout", "tag": tag,
                                                          "repo": "checkout-app", "sha": sha})
            assert answer.status_code == 202
        open_and_rank(app, gitops.clock + timedelta(minutes=2))
        top = client.get("/api/incidents/INC-1/suspects").json()["suspects"][0]
    assert top["sha"] == bump
    assert [c["sha"] for c in top["code"]] == [shas["fix"]]
    assert "(build record)" in top["code_note"]


def test_an_image_that_shares_the_applications_tags_lists_none_of_its_commits(
    world: tuple[bootstrap.App, Remote, Remote, dict[str, str]],
) -> None:
    """redis moves 1.4.0 -> 1.5.0, the tags checkout-app has: the redis bump names no checkout
    commit and says which repository would; the checkout bump still lists its own."""
    app, gitops, _, shas = world
    redis = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: redis}}\nspec:\n  template:\n    spec:\n" \
            "      containers:\n      - name: redis\n        image: redis:{tag}\n"
    gitops.commit("redis 1.4.0", {"apps/checkout/redis.yaml": redis.format(tag="1.4.0")}, minutes=1)
    bump = gitops.commit("redis 1.5.0", {"apps/checkout/redis.yaml": redis.format(tag="1.5.0")}, minutes=1)
    open_and_rank(app, gitops.clock + timedelta(minutes=2))
    with TestClient(app.http) as client:
        suspects = {s["sha"]: s for s in client.get("/api/incidents/INC-1/suspects").json()["suspects"]}
    assert suspects[bump]["code"] == []
    assert "no application repository that builds redis" in suspects[bump]["code_note"]
    assert [c["sha"] for c in suspects[shas["bump"]]["code"]] == [shas["fix"], shas["retry"], shas["docs"]]
