"""Argo CD's source hydrator: the hydrated branch's commits carry `hydrator.metadata` naming the dry
commit; the suspect shown and reverted is the dry source commit, the hydrated one named beside it.
Real Git: one repository, the dry `main` and the hydrated `environments/prod` watched as two."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.services.act import choose_commit, rollback
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.gitrepos import Remote, git

pytestmark = pytest.mark.integration
VALUES = "replicas: 2\nimage:\n  repository: registry.example.com/checkout\n  tag: {tag}\n"
RENDERED = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: checkout}}\nspec:\n  replicas: 2\n"
            "  template:\n    spec:\n      containers:\n      - name: checkout\n"
            "        image: registry.example.com/checkout:{tag}\n")


def hydrate(remote: Remote, dry: str, tag: str, *, first: bool = False) -> str:
    """What Argo CD's commit server does: render the dry commit onto the hydrated branch."""
    work = remote.work
    git("checkout", "--quiet", *(["--orphan"] if first else []), "environments/prod", cwd=work)
    if first:
        git("rm", "-rf", "--quiet", ".", cwd=work)
    (work / "apps" / "checkout").mkdir(parents=True, exist_ok=True)
    (work / "apps" / "checkout" / "manifest.yaml").write_text(RENDERED.format(tag=tag))
    (work / "apps" / "checkout" / "hydrator.metadata").write_text(json.dumps(
        {"repoURL": "https://git.example.com/acme/gitops.git", "drySha": dry, "commands": ["helm template ."]}))
    git("add", "-A", cwd=work)
    remote.clock += timedelta(minutes=1)
    git("commit", "--quiet", "-m", f"[Argo CD Bot] hydrate {dry}", cwd=work, when=remote.clock)
    git("push", "--quiet", "origin", "HEAD:refs/heads/environments/prod", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "--quiet", "main", cwd=work)
    return sha


def test_the_dry_commit_is_the_suspect_and_the_revert(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "gitops")
    init = remote.commit("init", {"apps/checkout/values.yaml": VALUES.format(tag="1.4.0")})
    hydrate(remote, init, "1.4.0", first=True)
    bad = remote.commit("checkout 1.5.0", {"apps/checkout/values.yaml": VALUES.format(tag="1.5.0")})
    hydrated = hydrate(remote, bad, "1.5.0")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"}, "actions": {"on_open": "off"},
        "repos": [{"repo": "gitops-prod", "paths": ["apps/checkout/**"]},
                  {"repo": "gitops", "paths": ["apps/checkout/**"]}]}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"}, "alertmanager": {"auth": "none"},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), "branch": "main"},
                  {"name": "gitops-prod", "url": str(remote.bare), "branch": "environments/prod"}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "30d"},
    }))
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    ctx = app.ctx
    started = remote.clock + timedelta(minutes=4)
    alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=ctx.store, playbooks=ctx.playbooks, now=started, policy=ctx.settings.incidents,
                    delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)))
    ranking = investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                          incident_id=1, now=started, import_window=timedelta(days=30))
    top = ranking.top
    assert top is not None
    assert (top.repo, top.sha, top.hydrated) == ("gitops", bad, f"gitops-prod@{hydrated}")
    assert any("rendered by Argo CD's source hydrator" in reason for reason in top.reasons)
    assert [s.sha for s in ranking.suspects].count(bad) == 1

    change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=1, sha=None)
    result = rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=1, change=change,
                      actor=Actor.USER, actor_id="U1", now=started)
    app.close()
    assert result.action.branch == f"backout/INC-1/revert-{bad[:7]}"
    reverted = git("show", f"{result.action.branch}:apps/checkout/values.yaml", cwd=remote.bare)
    assert "tag: 1.4.0" in reverted
