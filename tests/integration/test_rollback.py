"""Rollback end to end on real git and SQLite, through the CLI, including a crash after the push."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.gitrepos import Remote, git

pytestmark = pytest.mark.integration

DEPLOY = "image: registry.example.com/checkout:{tag}\n"
PLAYBOOK = {
    "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
    "suspects": {"lookback": "6h", "sync_delay": "1m", "min_confidence": 0.5},
    "actions": {"on_open": "propose"},
}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Remote, str]:
    """A GitOps remote with a bad bump, a config, and INC-1 opened and ranked against it."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"), "README.md": "x\n"})
    bad = remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
    remote.commit("docs", {"README.md": "y\n"}, minutes=2)
    config = configured(tmp_path, remote, PLAYBOOK)
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    started = remote.clock + timedelta(minutes=3)
    alert_fires(app, started)
    ranking = investigate(store=app.ctx.store, git=app.ctx.git, notifier=app.ctx.notifier,
                          playbooks=app.ctx.playbooks, incident_id=1, now=started,
                          import_window=timedelta(days=90))
    app.close()
    assert ranking.top is not None
    assert ranking.top.sha == bad
    return config, remote, bad


def configured(tmp_path: Path, remote: Remote, playbook: dict[str, Any]) -> Path:
    """The playbook and a config over `remote` (SQLite and mirrors in `tmp_path`)."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump(playbook))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), "branch": "main"}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "90d"},
    }))
    return config


def alert_fires(app: bootstrap.App, started: datetime) -> None:
    """HighErrorRate on checkout from `started`: INC-1 opens."""
    alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                           alerts=(alert,)),
                    playbooks=app.ctx.playbooks, policy=IncidentPolicy(), now=started)


def cli(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", *args, "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=config.parent, env={k: v for k, v in os.environ.items()
                                                    if not k.startswith("BACKOUT_")})


def actions(config: Path) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(f"sqlite:///{config.parent / 'backout.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, state, branch FROM actions ORDER BY id")).all()
    engine.dispose()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_rollback_pushes_a_revert_of_the_top_suspect(setup: tuple[Path, Remote, str]) -> None:
    """`backout rollback INC-1 --yes` reverts the top suspect on its branch, once."""
    config, remote, bad = setup
    done = cli(config, "rollback", "INC-1", "--yes")
    output = done.communicate(timeout=60)[0]
    assert done.returncode == 0, output
    branch = f"backout/INC-1/revert-{bad[:7]}"
    assert f"revert branch {branch} pushed" in output
    assert remote.branches() == [branch, "main"]
    assert actions(config) == [("revert", "pushed", branch)]
    again = cli(config, "rollback", "INC-1", "--yes")
    assert "already done" in again.communicate(timeout=60)[0]
    assert actions(config) == [("revert", "pushed", branch)]


def test_rollback_without_yes_asks_and_a_no_pushes_nothing(setup: tuple[Path, Remote, str]) -> None:
    """Without --yes the commit and its reasons are shown and nothing happens on 'n'."""
    config, remote, _bad = setup
    proc = subprocess.run([sys.executable, "-m", "bot", "rollback", "1", "--config", str(config)],
                          input="n\n", capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "checkout: bump to 1.1" in proc.stdout
    assert "touched the service's paths" in proc.stdout
    assert "nothing was pushed" in proc.stdout + proc.stderr
    assert remote.branches() == ["main"]


def test_a_crash_between_push_and_record_is_adopted_on_retry(
    setup: tuple[Path, Remote, str], tmp_path: Path
) -> None:
    """SIGKILL right after the remote accepted the branch: the retry adopts it; one branch, one action."""
    config, remote, bad = setup
    pid_file = tmp_path / "backout.pid"
    hook = remote.bare / "hooks" / "post-receive"
    # The remote kills the rollback process once the branch is stored, before Backout records it.
    hook.write_text(f"#!/bin/sh\n[ -f {pid_file} ] && kill -9 $(cat {pid_file})\nexit 0\n")
    hook.chmod(0o755)
    proc = cli(config, "rollback", "INC-1", "--yes")
    pid_file.write_text(str(proc.pid))
    proc.communicate(timeout=60)
    assert proc.returncode == -9
    branch = f"backout/INC-1/revert-{bad[:7]}"
    assert remote.branches() == [branch, "main"]
    assert actions(config) == [("revert", "started", branch)]
    pushed = git("rev-parse", branch, cwd=remote.bare)

    pid_file.unlink()
    retry = cli(config, "rollback", "INC-1", "--yes")
    output = retry.communicate(timeout=60)[0]
    assert retry.returncode == 0, output
    assert "found already pushed (adopted)" in output
    assert remote.branches() == [branch, "main"]
    assert git("rev-parse", branch, cwd=remote.bare) == pushed
    assert actions(config) == [("revert", "pushed", branch)]


def test_with_the_git_host_down_the_revert_waits_and_is_pushed_when_it_answers(
    setup: tuple[Path, Remote, str],
) -> None:
    """The remote is cut: the rollback prepares the revert on the mirror, says it will push when
    the host answers, and the retry job pushes it once the remote is back; nothing is recorded
    while the host stays down."""
    from bot.services.act import choose_commit, push_waiting, rollback
    from bot.services.incidents import get_timeline

    config, remote, bad = setup
    away = remote.bare.with_name("remote.away")
    remote.bare.rename(away)  # the Git host is gone
    notes = RecordingNotifier()
    app = bootstrap.build(load_settings(config), notifier=notes)
    ctx = app.ctx
    try:
        change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=1, sha=None)
        now = datetime.now(UTC)
        result = rollback(store=ctx.store, git=ctx.git, notifier=notes, incident_id=1, change=change,
                          actor=Actor.USER, actor_id="U1", now=now)
        assert result.action.state.value == "waiting"
        assert "pushed when it answers" in result.message
        waiting = [e for e in get_timeline(store=ctx.store, incident_id=1) if e.kind == "revert.waiting"]
        assert len(waiting) == 1
        assert "does not answer" in waiting[0].text
        assert any("Git host unreachable" in " ".join(n.lines) for n in notes.notices)
        events = len(get_timeline(store=ctx.store, incident_id=1))
        assert push_waiting(store=ctx.store, git=ctx.git, notifier=notes, playbooks=ctx.playbooks, now=now) == 0
        assert len(get_timeline(store=ctx.store, incident_id=1)) == events, "a retry while down records nothing"

        away.rename(remote.bare)  # the host answers again
        assert push_waiting(store=ctx.store, git=ctx.git, notifier=notes, playbooks=ctx.playbooks, now=now) == 1
        branch = f"backout/INC-1/revert-{bad[:7]}"
        assert remote.branches() == [branch, "main"]
        assert actions(config) == [("revert", "pushed", branch)]
        kinds = [e.kind for e in get_timeline(store=ctx.store, incident_id=1)]
        assert kinds.count("revert.pushed") == 1
    finally:
        app.close()
