"""Every command line error is one line on stderr, never a traceback, with the README's exit code:
2 for usage and configuration, 1 for the rest. `backout` runs in a fresh process, as a person runs
it: the interpreter prints an escaped exception's traceback there, where CliRunner would keep it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli.errors import RootGroup
from bot.config import Settings
from bot.services.ingest import ingest_delivery
from tests.conftest import Clock, delivery

USAGE, FAILED = 2, 1


@pytest.fixture
def folder(tmp_path: Path, make_settings: Callable[..., Settings], clock: Clock) -> Path:
    """A folder with the default database (`backout.db`) holding INC-1, and no config nor playbooks folder."""
    settings = make_settings()
    assert settings.storage.url.endswith(f"{tmp_path}/backout.db")
    built = bootstrap.build(settings, clock=clock)
    ingest_delivery(store=built.ctx.store, delivery=delivery("01"), playbooks=built.ctx.playbooks,
                    policy=settings.incidents, now=clock())
    built.close()
    return tmp_path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def backout(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BACKOUT_")}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env={**clean, **env, "NO_COLOR": "1"},
                          capture_output=True, text=True, timeout=60, check=False)


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.endswith("\n"), done.stderr
    assert done.returncode == code, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


@pytest.mark.parametrize(("args", "words"), [
    (["export", "1", "--format", "png", "-o", "chart.png"], ["/playbooks: playbooks_dir: is not a folder"]),
    (["export", "1", "--format", "html"], ["playbooks", "not a folder"]),
    (["plan", "1"], ["playbooks", "not a folder"]),
    (["ack", "1"], ["playbooks", "not a folder"]),
], ids=["export-png", "export-html", "plan", "ack"])
def test_no_playbooks_folder_is_a_configuration_error(folder: Path, args: list[str], words: list[str]) -> None:
    """Commands that read the playbooks, run where there is no playbooks folder: exit 2, naming it."""
    assert_one_line(backout(*args, cwd=folder), USAGE, "configuration error: ", *words)


def test_usage_and_config_errors_exit_2_on_one_line(folder: Path) -> None:
    """A missing config file, a bad --format, a malformed id, a --server that is not a URL."""
    assert_one_line(backout("-c", "missing.yaml", "incidents", "list", cwd=folder), USAGE, "missing.yaml")
    assert_one_line(backout("export", "1", "--format", "pdf", cwd=folder), USAGE, "'pdf'", "--format", "--help")
    assert_one_line(backout("incidents", "show", "seven", cwd=folder), USAGE, "not an incident id")
    assert_one_line(backout("--server", "not-a-url", "incidents", "list", cwd=folder), USAGE, "not a URL")
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    assert_one_line(backout("incidents", "list", cwd=elsewhere), USAGE, "no database at")


def test_failures_exit_1_on_one_line(folder: Path, closed_port: int) -> None:
    """An unknown incident, an unreachable database or server, a demo that cannot write its folder."""
    assert_one_line(backout("export", "99", cwd=folder), FAILED, "INC-99 does not exist")
    postgres = f"postgresql://backout@127.0.0.1:{closed_port}/backout"
    assert_one_line(backout("incidents", "list", cwd=folder, BACKOUT_STORAGE__URL=postgres), FAILED,
                    str(closed_port))
    assert_one_line(backout("--server", f"http://127.0.0.1:{closed_port}", "incidents", "list", cwd=folder),
                    FAILED, "cannot reach")
    (folder / "taken").write_text("a file where the demo wants its folder\n")
    assert_one_line(backout("demo", "--out", "taken", cwd=folder), FAILED, "taken")


def test_an_unexpected_error_is_one_line_too_and_backout_debug_shows_its_traceback() -> None:
    """A bug's exception (no Backout error, no OSError) names its type on one line, exit 1;
    with BACKOUT_DEBUG=1 it propagates with its traceback."""
    broken = typer.Typer(cls=RootGroup)

    @broken.command()
    def crash() -> None:
        raise KeyError("the missing key")

    @broken.command()
    def other() -> None:
        """A second command, so `crash` stays a subcommand."""

    runner = CliRunner()
    done = runner.invoke(broken, ["crash"], env={"BACKOUT_DEBUG": ""})
    assert done.exit_code == 1
    assert done.stderr == "error: unexpected KeyError: 'the missing key' (a bug: BACKOUT_DEBUG=1 shows where; " \
                          "please report it)\n"
    debugged = runner.invoke(broken, ["crash"], env={"BACKOUT_DEBUG": "1"})
    assert isinstance(debugged.exception, KeyError)
