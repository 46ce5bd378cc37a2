"""The rollback target on real git through the CLI: once the culprit's revert merged and the
incident is ranked again, it is no longer the answer; a change ruled out by a responder needs
--force, and the timeline says the rollback was forced and why."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.cli import app as cli
from bot.config import load_settings
from bot.services.changelog import refresh_changes
from bot.services.incidents import get_incident
from bot.services.investigate import investigate, rerank_open_incidents
from tests.gitrepos import Remote, git
from tests.integration.test_rollback import DEPLOY, PLAYBOOK, alert_fires, configured

pytestmark = pytest.mark.integration


@pytest.fixture
def reverted(tmp_path: Path) -> tuple[Path, Remote, str, str, str]:
    """INC-1 ranked with `bad` the confident answer; then the revert of `bad` merged and the
    incident ranked again. Returns (config, remote, old, bad, revert)."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"), "README.md": "x\n"})
    old = remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
    bad = remote.commit("checkout: bump to 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")},
                        minutes=120)
    config = configured(tmp_path, remote, {**PLAYBOOK, "actions": {"on_open": "off"}})
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    ctx, started = app.ctx, remote.clock + timedelta(minutes=3)
    alert_fires(app, started)
    first = investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks, incident_id=1,
                        now=started, import_window=timedelta(days=90))
    assert first.confident
    assert (first.best.sha if first.best else None) == bad
    remote.clock += timedelta(minutes=10)
    git("revert", "--no-edit", bad, cwd=remote.work, when=remote.clock)
    remote.push()
    revert = git("rev-parse", "HEAD", cwd=remote.work)
    later = remote.clock + timedelta(minutes=2)
    refresh_changes(store=ctx.store, git=ctx.git, repos=["gitops"], now=later, import_window=timedelta(days=90))
    rerank_open_incidents(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, repos=["gitops"],
                          now=later, git=ctx.git)
    app.close()
    return config, remote, old, bad, revert


def run(config: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, [*args, "--config", str(config)])
    return done.exit_code, done.output


def test_after_the_revert_merged_the_reverted_change_is_not_the_answer(
    reverted: tuple[Path, Remote, str, str, str],
) -> None:
    """Ranked again: the reverted culprit is listed with why it is no target, the older change
    is below the floor, so rollback without --commit refuses and names both reasons."""
    config, remote, old, bad, revert = reverted
    code, shown = run(config, "suspects", "INC-1")
    assert code == 0, shown
    assert f"{bad[:7]} checkout: bump to 1.2" in shown
    assert f"(not a rollback target: already reverted by {revert[:7]})" in shown
    assert ", best suspect" not in shown
    code, refused = run(config, "rollback", "INC-1", "--yes")
    assert code == 1
    assert "error: INC-1 has no rollback target: " in refused
    assert f"{bad[:7]} already reverted by {revert[:7]}" in refused
    assert re.search(rf"{old[:7]} scores 0\.\d\d, below the 0\.50 evidence floor", refused)
    assert remote.branches() == ["main"]


def test_naming_the_reverted_change_needs_force(reverted: tuple[Path, Remote, str, str, str]) -> None:
    """`--commit` of the reverted culprit: exit 1 with the reason and the hint to add --force."""
    config, remote, _old, bad, revert = reverted
    code, refused = run(config, "rollback", "INC-1", "--commit", bad[:7], "--yes")
    assert code == 1
    assert f"error: {bad[:7]} is not a rollback target: already reverted by {revert[:7]}; add --force" in refused
    assert remote.branches() == ["main"]


def test_a_ruled_out_change_is_refused_then_forced_and_the_timeline_says_so(
    reverted: tuple[Path, Remote, str, str, str],
) -> None:
    """`verdict --not` re-ranks at once; rolling that change back is refused without --force and
    goes ahead with it, recorded as forced with the verdict's who and when."""
    config, remote, old, _bad, _revert = reverted
    assert run(config, "verdict", "INC-1", old[:7], "--not")[0] == 0
    code, refused = run(config, "rollback", "INC-1", "--commit", old[:7], "--yes")
    assert code == 1
    assert f"{old[:7]} is not a rollback target: ruled out by cli:" in refused
    assert remote.branches() == ["main"]
    code, done = run(config, "rollback", "INC-1", "--commit", old[:7], "--yes", "--force")
    assert code == 0, done
    assert remote.branches() == [f"backout/INC-1/revert-{old[:7]}", "main"]
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier())
    try:
        timeline = get_incident(store=app.ctx.store, incident_id=1).timeline
    finally:
        app.close()
    [forced] = [e for e in timeline if e.kind == "rollback.forced"]
    assert f"forced the rollback of {old[:7]}, which was no rollback target: ruled out by cli:" in forced.text
