"""Reverts that stick: a revert of an image line that Flux image automation or argocd-image-updater
owns pins what it restores, in Git, and the pull request and the timeline say so. Real git, the
fake GitHub over HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.automation import automation_warnings, ignore_tag, strip_setters, tags_in
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.services.act import choose_commit, rollback
from bot.services.incidents import get_timeline
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote, git
from tests.layouts import ARGO_APP as APPLICATION

pytestmark = pytest.mark.integration
MARKER = '# {"$imagepolicy": "flux-system:checkout"}'
FLUX_DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\nspec:\n  template:\n"
               "    spec:\n      containers:\n      - name: checkout\n"
               "        image: registry.example.com/checkout:{tag} " + MARKER.replace("{", "{{").replace("}", "}}")
               + "\n")
WRITE_BACK = "kustomize:\n  images:\n  - registry.example.com/checkout:{tag}\n"


def make_world(tmp_path: Path, files: dict[str, str], bump: dict[str, str]) -> tuple[Path, Remote, str]:
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", files)
    bad = remote.commit("build: automatic update of checkout", bump)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "actions": {"on_open": "off"}}))
    return tmp_path / "config.yaml", remote, bad


def roll_back(tmp_path: Path, remote: Remote, fake: FakeGitHub) -> tuple[str, list[str], object]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops"}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "90d"},
        "github": {"api_url": fake.base_url, "token": "ghs_fake_token", "throttle": False, "max_wait": "2s"},
    }))
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    ctx = app.ctx
    started = remote.clock + timedelta(minutes=5)
    alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                    playbooks=ctx.playbooks, policy=IncidentPolicy(), now=started)
    ranking = investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                          incident_id=1, now=started, import_window=timedelta(days=90))
    change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=1, sha=None)
    result = rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=1, change=change,
                      actor=Actor.USER, actor_id="U1", now=started, forge=ctx.forge)
    timeline = [e.text for e in get_timeline(store=ctx.store, incident_id=1)]
    app.close()
    [pull] = fake.pulls.values()
    assert result.action.state.value == "pr_open"
    return str(pull["body"]), timeline, ranking


def test_a_revert_of_a_flux_automated_image_line_removes_the_marker(tmp_path: Path) -> None:
    """The restored line keeps the old tag without the setter marker, so ImageUpdateAutomation
    does not bump it again; the suspect's warning, the pull request and the timeline say so."""
    path = "apps/checkout/deploy.yaml"
    _, remote, bad = make_world(tmp_path, {path: FLUX_DEPLOY.format(tag="1.4.0")},
                                {path: FLUX_DEPLOY.format(tag="1.5.0")})
    with FakeGitHub(remote.bare).serving() as fake:
        body, timeline, ranking = roll_back(tmp_path, remote, fake)
    assert any("Flux ImageUpdateAutomation" in w for w in ranking.top.warnings)  # type: ignore[attr-defined]
    restored = git("show", f"backout/INC-1/revert-{bad[:7]}:{path}", cwd=remote.bare)
    assert "image: registry.example.com/checkout:1.4.0\n" in restored + "\n"
    assert "$imagepolicy" not in restored
    message = git("log", "-1", "--format=%B", f"backout/INC-1/revert-{bad[:7]}", cwd=remote.bare)
    assert "Pinned against image automation" in message
    assert "### Pinned against image automation" in body
    assert "flux-system:checkout" in body
    assert any("Pinned against image automation" in text for text in timeline)


def test_a_revert_of_an_image_updater_write_back_adds_the_tag_to_ignore_tags(tmp_path: Path) -> None:
    """argocd-image-updater wrote 1.5.0 back; the revert restores 1.4.0 and keeps the updater off
    1.5.0 through the Application's ignore-tags annotation."""
    back = "apps/checkout/.argocd-source-checkout.yaml"
    app_path = "apps/checkout/application.yaml"
    _, remote, bad = make_world(tmp_path, {back: WRITE_BACK.format(tag="1.4.0"), app_path: APPLICATION},
                                {back: WRITE_BACK.format(tag="1.5.0")})
    with FakeGitHub(remote.bare).serving() as fake:
        body, _, _ = roll_back(tmp_path, remote, fake)
    branch = f"backout/INC-1/revert-{bad[:7]}"
    assert "checkout:1.4.0" in git("show", f"{branch}:{back}", cwd=remote.bare)
    manifest = git("show", f"{branch}:{app_path}", cwd=remote.bare)
    assert 'argocd-image-updater.argoproj.io/app.ignore-tags: "1.5.0"' in manifest
    assert "ignore-tags" in body


def test_without_the_application_in_the_repository_it_warns_instead(tmp_path: Path) -> None:
    back = "apps/checkout/.argocd-source-checkout.yaml"
    _, remote, _ = make_world(tmp_path, {back: WRITE_BACK.format(tag="1.4.0")}, {back: WRITE_BACK.format(tag="1.5.0")})
    with FakeGitHub(remote.bare).serving() as fake:
        body, timeline, _ = roll_back(tmp_path, remote, fake)
    assert "not pinned" in body
    assert any("Not pinned" in text for text in timeline)


def test_pin_helpers() -> None:
    """The pure pieces: markers stripped only on the restored lines; ignore-tags appended once."""
    text = "a: 1 " + MARKER + "\nb: 2 " + MARKER + "\n"
    new, pins = strip_setters(text, [2], path="f.yaml")
    assert new == "a: 1 " + MARKER + "\nb: 2\n"
    assert [p.line for p in pins] == [2]
    once = ignore_tag(APPLICATION, app="checkout", alias="app", tag="1.5.0")
    assert once is not None
    twice = ignore_tag(once, app="checkout", alias="app", tag="1.6.0")
    assert twice is not None
    assert 'app.ignore-tags: "1.5.0,1.6.0"' in twice
    assert ignore_tag(APPLICATION, app="payments", alias="app", tag="1") is None
    assert tags_in(["  - registry.example.com/checkout:1.5.0", "    newTag: v2", "name: x"]) == [
        ("registry.example.com/checkout", "1.5.0"), (None, "v2")]
    assert automation_warnings(["x.yaml"], "-image: a:1\n+image: a:2\n") == ()
