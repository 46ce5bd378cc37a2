"""Steps the forge flow tests share: an incident opened and investigated in-process, and the
rollback of its top suspect (or of a sha) as a responder would ask for it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.services.act import ActionResult, choose_commit, rollback
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.gitrepos import Remote


def write_config(root: Path, remote: Remote, *, repo: dict[str, Any], reviewers: list[str],
                 **sections: Any) -> Path:
    """The checkout playbook (on_open off, these reviewers) and a config with one repository
    `gitops` on `remote` (`repo` adds its forge keys) and the given sections; returns its path."""
    (root / "playbooks").mkdir()
    (root / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "actions": {"on_open": "off", "reviewers": reviewers},
    }))
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"public_url": "https://backout.example.com"},
        "storage": {"url": f"sqlite:///{root / 'backout.db'}"},
        "alertmanager": {"auth": "none"},
        "playbooks_dir": str(root / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), **repo}],
        "git": {"mirror_dir": str(root / "mirrors"), "import_window": "90d"},
        **sections,
    }))
    return config


def open_incident(config: Path, remote: Remote, *, summary: str = "5xx on checkout") -> bootstrap.App:
    """INC-1 for checkout, five minutes after the remote's last commit, investigated."""
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    started = remote.clock + timedelta(minutes=5)
    alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"},
                          annotations={"summary": summary})
    ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                           alerts=(alert,)),
                    playbooks=app.ctx.playbooks, policy=IncidentPolicy(), now=started)
    investigate(store=app.ctx.store, git=app.ctx.git, notifier=app.ctx.notifier, playbooks=app.ctx.playbooks,
                incident_id=1, now=started, import_window=timedelta(days=90), forge=app.ctx.forge,
                applied=app.ctx.applied, applied_window=app.ctx.settings.github.applied_window)
    return app


def roll_back(app: bootstrap.App, sha: str | None = None) -> ActionResult:
    """Roll INC-1 back to before its top suspect (or `sha`), with the playbook's reviewers."""
    ctx = app.ctx
    change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=1, sha=sha)
    return rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=1, change=change,
                    actor=Actor.USER, actor_id="U1", now=ctx.clock(), forge=ctx.forge,
                    reviewers=ctx.reviewers("checkout"), page_url=ctx.page_url(1))
