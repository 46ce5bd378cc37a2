"""`backout good` and `backout restore` as an on-call engineer runs them, on the local database and
against a running Backout (`--server`): the same answers either way, the plan shown and confirmed,
the branch pushed once, and a confirmation for a revision that is no longer the good one refused."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gitrepos import git
from tests.integration.flows import open_incident, write_config
from tests.integration.processes import READ_TOKEN, BackoutServer
from tests.integration.test_cli_server import backout
from tests.integration.test_restore_flow import World

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[World, Path]:
    """The restore world with INC-1 open and investigated, its config (no forge) at `config.yaml`."""
    world = World(tmp_path)
    config = write_config(tmp_path, world.remote, repo={}, reviewers=[], api={"tokens": [READ_TOKEN]})
    open_incident(config, world.remote).close()
    return world, config


def test_good_and_restore_on_the_local_database(seeded: tuple[World, Path], tmp_path: Path) -> None:
    """`good checkout` names the good revision and why; `restore INC-1` shows the commits it undoes,
    asks, pushes the branch and says what to do next; run again it is already done."""
    world, config = seeded
    shown = backout("--config", str(config), "good", "checkout", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"checkout in gitops: last known good {world.good[:7]} checkout: 4 replicas" in shown.stdout
    assert "plus the sync delay" in shown.stdout
    answer = json.loads(backout("--config", str(config), "good", "checkout", "--json", cwd=tmp_path).stdout)
    assert answer["repos"][0]["good"]["sha"] == world.good
    declined = backout("--config", str(config), "restore", "INC-1", cwd=tmp_path, stdin="n\n")
    assert declined.returncode == 1
    assert f"{world.bump[:7]} checkout: bump to 1.1" in declined.stdout
    assert "database-migration" in declined.stdout
    assert world.remote.branches() == ["main"]
    done = backout("--config", str(config), "restore", "INC-1", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    branch = f"backout/INC-1/restore-{world.good[:7]}"
    assert f"restore branch {branch} pushed" in done.stdout
    assert f"next: open a pull request from {branch} on gitops" in done.stdout
    assert world.ls_tree(branch, "apps/checkout/") == world.ls_tree(world.good, "apps/checkout/")
    again = backout("--config", str(config), "restore", "INC-1", "--yes", cwd=tmp_path)
    assert "already done: pushed" in again.stdout


def test_good_and_restore_through_the_server_answer_as_the_api(seeded: tuple[World, Path], tmp_path: Path) -> None:
    """With --server: `good --json` and `restore --dry-run --json` print the API's answers; the
    restore lands on the timeline with the person; a stale confirmation is a 409 saying why."""
    world, config = seeded
    server = BackoutServer(tmp_path / "server", yaml.safe_load(config.read_text())).start()
    try:
        (tmp_path / "token").write_text(READ_TOKEN + "\n")
        remote = ("--server", server.url, "--token-file", str(tmp_path / "token"))
        good = backout(*remote, "good", "checkout", "--json", cwd=tmp_path)
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout) == server.api("/api/services/checkout/good")
        planned = backout(*remote, "restore", "INC-1", "--dry-run", "--json", cwd=tmp_path)
        assert json.loads(planned.stdout) == server.api("/api/incidents/1/restore")
        stale = httpx.post(f"{server.url}/api/incidents/1/restore", json={"good": world.bump}, timeout=30,
                           headers={"Authorization": f"Bearer {READ_TOKEN}"})
        assert stale.status_code == 409
        assert f"the last known good is now {world.good[:7]}" in stale.text
        done = backout(*remote, "restore", "INC-1", "--yes", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert git("rev-parse", f"backout/INC-1/restore-{world.good[:7]}^", cwd=world.remote.bare) == world.sidecar
        timeline = server.api("/api/incidents/1/timeline")["timeline"]
        started = next(e for e in timeline if e["kind"] == "action.started")
        assert " on behalf of cli:" in started["who"]  # the token's name, acting for the person
        assert started["data"]["kind"] == "restore"
        unknown = backout(*remote, "good", "nosuch", cwd=tmp_path)
        assert unknown.returncode != 0
        assert "no playbook for service 'nosuch'" in unknown.stderr
    finally:
        server.stop()
