"""The test PostgreSQL does not outlive the tests: SIGTERM to pytest (an interrupted `make test`,
a CI job cancelled) stops the server the fixture started and removes its data folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_binary
from tests.integration.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TINY = '''
import json, time
from pathlib import Path

from tests.integration.conftest import postgres  # noqa: F401  (the fixture under test)


def test_waits_to_be_interrupted(postgres):
    Path({marker!r}).write_text(json.dumps({{"workdir": str(postgres.workdir), "port": postgres.port}}))
    time.sleep(120)
'''


def processes_naming(text: str) -> list[int]:
    """Ids of the running processes whose command line names `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue  # it ended while we looked
    return found


def test_sigterm_to_pytest_stops_the_postgresql_it_started(tmp_path: Path) -> None:
    """pytest runs a test that uses the fixture; SIGTERM once the server is up: pytest exits, and
    no postgres process and no data folder is left behind."""
    pg_ctl = need_binary("pg_ctl")
    need_binary("initdb")
    marker = tmp_path / "started.json"
    tiny = tmp_path / "test_tiny.py"
    tiny.write_text(TINY.format(marker=str(marker)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKOUT_", "PYTEST_"))}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(tiny), "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    workdir: Path | None = None
    try:
        wait_until(marker.exists, timeout=120, what="the fixture's PostgreSQL to start")
        workdir = Path(json.loads(marker.read_text())["workdir"])
        assert processes_naming(str(workdir)), "the server runs while the test does"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
        assert proc.returncode != 0, output
        assert processes_naming(str(workdir)) == [], f"postgres left running:\n{output}"
        assert not workdir.exists(), f"data folder left behind:\n{output}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if workdir is not None and (workdir / "pgdata" / "postmaster.pid").exists():  # what a failure left
            command = [pg_ctl, "-D", str(workdir / "pgdata"), "-m", "immediate", "stop"]
            subprocess.run(["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command,
                           capture_output=True, timeout=60, check=False)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
