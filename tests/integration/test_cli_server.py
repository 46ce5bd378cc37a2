"""The CLI against a running Backout (`--server URL --token-file F`), as an on-call engineer
uses it from a laptop: a real `backout serve` on SQLite and a real Git remote, the CLI run as
a process. Reads print what the local database would; actions land on the timeline with the
person; a rollback shows its plan, asks, pushes, and says what to do next; exit codes differ
for a conflicted revert, a refused token and an unreachable server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.gitrepos import Remote
from tests.integration.processes import READ_TOKEN, BackoutServer
from tests.integration.test_rollback import DEPLOY, PLAYBOOK

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path) -> tuple[BackoutServer, Remote, str, str]:
    """INC-1 ranked against a bad bump (then a second bump on the same line), served."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"), "README.md": "x\n"})
    bad = remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
    later = remote.commit("docs", {"README.md": "y\n"}, minutes=2)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump(PLAYBOOK))
    config = {
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), "branch": "main"}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "90d"},
        "api": {"tokens": [{"name": "laptop", "token": READ_TOKEN}]},
    }
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(config))
    app = bootstrap.build(load_settings(tmp_path / "seed.yaml"), notifier=RecordingNotifier())
    started = remote.clock + timedelta(minutes=3)
    alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                    playbooks=app.ctx.playbooks, policy=IncidentPolicy(), now=started)
    investigate(store=app.ctx.store, git=app.ctx.git, notifier=app.ctx.notifier, playbooks=app.ctx.playbooks,
                incident_id=1, now=started, import_window=timedelta(days=90))
    app.close()
    server = BackoutServer(tmp_path / "server", config).start()
    (tmp_path / "token").write_text(READ_TOKEN + "\n")
    yield server, remote, bad, later
    server.stop()


def backout(*args: str, cwd: Path, stdin: str = "",
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a person runs it, from a folder with no config and no database."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=60, check=False, env={**clean, **(env or {})})


def remote_json(server: BackoutServer, tmp_path: Path, *args: str) -> Any:
    done = backout("--server", server.url, "--token-file", str(tmp_path / "token"), *args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_reads_through_the_server_print_what_the_database_holds(world: tuple[BackoutServer, Remote, str, str],
                                                              tmp_path: Path) -> None:
    server, _remote, bad, _later = world
    listed = remote_json(server, tmp_path, "incidents", "list")
    assert [i["ref"] for i in listed["incidents"]] == ["INC-1"]
    assert listed == server.api("/api/incidents?limit=50")
    shown = backout("--server", server.url, "--token-file", str(tmp_path / "token"), "incidents", "show", "1",
                    cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Suspects (" in shown.stdout
    assert f"1. {bad[:7]} checkout: bump to 1.1" in shown.stdout
    ranking = remote_json(server, tmp_path, "suspects", "INC-1")
    assert ranking["suspects"][0]["sha"] == bad
    markdown = backout("--server", server.url, "--token-file", str(tmp_path / "token"), "export", "1",
                       cwd=tmp_path)
    assert markdown.stdout.startswith("# INC-1")


def test_the_token_comes_from_the_environment_and_a_wrong_one_is_refused(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    server, *_ = world
    done = backout("incidents", "list", cwd=tmp_path, env={"BACKOUT_URL": server.url, "BACKOUT_TOKEN": READ_TOKEN})
    assert done.returncode == 0, done.stderr
    assert "INC-1" in done.stdout
    refused = backout("--server", server.url, "--token", "wrong", "incidents", "list", cwd=tmp_path)
    assert refused.returncode == 1
    assert "error: the API token is not valid (give --token or --token-file" in refused.stderr
    missing = backout("--server", server.url, "incidents", "list", cwd=tmp_path)
    assert (missing.returncode, "401" in missing.stderr, "--token" in missing.stderr) == (1, False, True)
    away = backout("--server", "http://127.0.0.1:1", "incidents", "list", cwd=tmp_path)
    assert (away.returncode, "cannot reach http://127.0.0.1:1" in away.stderr) == (1, True)


def test_ack_note_resolve_through_the_server_are_on_the_timeline(world: tuple[BackoutServer, Remote, str, str],
                                                                tmp_path: Path) -> None:
    server, *_ = world
    acked = remote_json(server, tmp_path, "ack", "INC-1")
    assert (acked["status"], acked["changed"]) == ("acknowledged", True)
    assert remote_json(server, tmp_path, "ack", "INC-1")["changed"] is False
    note = remote_json(server, tmp_path, "note", "INC-1", "looking at the 1.1 bump")
    assert note["kind"] == "note"
    resolved = remote_json(server, tmp_path, "resolve", "INC-1", "--note", "reverted")
    assert resolved["status"] == "resolved"
    timeline = server.api("/api/incidents/1/timeline")["timeline"]
    mine = [e["kind"] for e in timeline
            if e["actor_id"] == "laptop" and e["who"].startswith("laptop on behalf of cli:")]
    assert mine == ["incident.acknowledged", "incident.role", "note",
                    "incident.resolved"], "the token's name, for the CLI's user"


def test_update_role_and_severity_through_the_server(world: tuple[BackoutServer, Remote, str, str],
                                                    tmp_path: Path) -> None:
    """The new verbs go through the API (`POST .../updates`, `.../roles`, `.../severity`)."""
    server, *_ = world
    assert "Status update posted" in remote_json(server, tmp_path, "update", "INC-1", "rolling back")["message"]
    assert "lead: U0BOB" in remote_json(server, tmp_path, "role", "INC-1", "lead", "U0BOB")["message"]
    assert remote_json(server, tmp_path, "severity", "INC-1", "warning")["changed"] is True
    assert server.api("/api/incidents/1")["roles"] == {"lead": "U0BOB"}


def test_a_rollback_through_the_server_shows_the_plan_asks_and_pushes(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    server, remote, bad, _later = world
    token = ("--server", server.url, "--token-file", str(tmp_path / "token"))
    declined = backout(*token, "rollback", "INC-1", cwd=tmp_path, stdin="n\n")
    assert declined.returncode == 1
    assert "nothing was pushed" in declined.stderr
    assert "apps/checkout/deploy.yaml" in declined.stdout  # the files
    assert "+image: registry.example.com/checkout:1.1" in declined.stdout  # the diff
    assert "touched the service's paths" in declined.stdout  # why
    assert remote.branches() == ["main"]
    done = backout(*token, "rollback", "INC-1", "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    branch = f"backout/INC-1/revert-{bad[:7]}"
    assert remote.branches() == [branch, "main"]
    assert f"next: open a pull request from {branch} on gitops" in done.stdout


def test_a_conflicted_rollback_exits_3_with_the_incident_branch(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    server, remote, bad, _later = world
    remote.commit("checkout: bump to 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}, minutes=1)
    done = backout("--server", server.url, "--token-file", str(tmp_path / "token"), "rollback", "INC-1",
                   "--commit", bad, "--yes", "--json", cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["conflicted"] is True
    assert result["incident_branch"]["branch"] in remote.branches()


def test_global_options_go_before_the_subcommand_and_a_read_never_makes_a_database(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    server, *_ = world
    config = server.config_path
    before = backout("-c", str(config), "incidents", "list", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert "INC-1" in before.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.yaml").write_text("storage: {url: 'sqlite:///backout.db'}\n")
    lost = backout("incidents", "list", cwd=elsewhere)
    assert lost.returncode == 2
    assert f"no database at {elsewhere / 'backout.db'}" in lost.stderr
    assert not (elsewhere / "backout.db").exists()


def test_a_ruled_out_change_through_the_server_needs_force(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    """`verdict --not` through the server re-ranks at once; rolling that change back exits 1 with
    the reason and the hint, and goes ahead with --force, which the timeline records."""
    server, remote, bad, _later = world
    token = ("--server", server.url, "--token-file", str(tmp_path / "token"))
    assert backout(*token, "verdict", "INC-1", bad[:7], "--not", cwd=tmp_path).returncode == 0
    refused = backout(*token, "rollback", "INC-1", "--commit", bad[:7], "--yes", cwd=tmp_path)
    assert refused.returncode == 1
    assert f"error: {bad[:7]} is not a rollback target: ruled out by laptop on behalf of cli:" in refused.stderr
    assert "add --force to roll it back anyway" in refused.stderr
    assert remote.branches() == ["main"]
    done = backout(*token, "rollback", "INC-1", "--commit", bad[:7], "--yes", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert remote.branches() == [f"backout/INC-1/revert-{bad[:7]}", "main"]
    timeline = server.api("/api/incidents/1/timeline")["timeline"]
    assert next(e["who"] for e in timeline if e["kind"] == "rollback.forced").startswith("laptop on behalf of cli:")


def test_a_dry_run_shows_the_change_being_undone_and_pushes_nothing(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    """`rollback --dry-run` prints the plan with the diff named as the change being undone, asks
    nothing and pushes nothing; with --json it is the API's plan; a missing incident reads as a sentence."""
    server, remote, bad, _later = world
    token = ("--server", server.url, "--token-file", str(tmp_path / "token"))
    shown = backout(*token, "rollback", "INC-1", "--dry-run", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "the change being undone (the revert applies the reverse of this diff):" in shown.stdout
    assert "+image: registry.example.com/checkout:1.1" in shown.stdout
    assert "dry run: nothing was pushed" in shown.stdout
    planned = backout(*token, "rollback", "INC-1", "--dry-run", "--json", cwd=tmp_path)
    assert json.loads(planned.stdout) == server.api("/api/incidents/1/rollback")
    assert json.loads(planned.stdout)["sha"] == bad
    assert remote.branches() == ["main"]
    missing = backout(*token, "incidents", "show", "INC-99", cwd=tmp_path)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: INC-99 does not exist")


def test_branch_through_the_server_cuts_the_incident_branch_once(
        world: tuple[BackoutServer, Remote, str, str], tmp_path: Path) -> None:
    """`backout branch INC-1` over the API: the incident branch on the playbook's repository; again: adopted."""
    server, remote, _bad, _later = world
    args = ("--server", server.url, "--token-file", str(tmp_path / "token"), "branch", "INC-1", "--json")
    done = backout(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [made] = json.loads(done.stdout)["branches"]
    assert (made["repo"], made["branch"], made["state"]) == ("gitops", "backout/INC-1/incident", "pushed")
    assert "backout/INC-1/incident" in remote.branches()
    again = backout(*args, cwd=tmp_path)
    assert json.loads(again.stdout)["branches"][0]["id"] == made["id"]
