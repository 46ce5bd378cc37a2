"""Forge calls of a guarded automatic merge (`actions.merge: confident`), counted by the fakes.

For GitHub and GitLab, from one incident's revert pull request: the calls of the run that opens
the veto window (the announcement's comment), of each idle run during the window (the job runs
every 15 s: 20 runs in the default 5 minutes), and of the run that merges (the forge's verdict
read right before, the merge, the state read back). Target: no forge call while waiting, at most
3 to merge. Usage: python bench/automerge_calls.py
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import bootstrap
from bot.config import LoggingSettings
from tests.integration.flows import open_incident, roll_back
from tests.integration.test_automerge import WAIT, make_world, run

EVERY = timedelta(seconds=15)


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    for forge in ("github", "gitlab"):
        with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp, \
                contextmanager(make_world)(Path(tmp), forge) as world:
            app = open_incident(world.config, world.remote)
            roll_back(app)
            start = app.ctx.clock()
            fake = world.fake
            calls = partial(_calls, fake)
            before = calls()
            run(app, start)
            announce = calls() - before
            before = calls()
            idle_runs = int(WAIT / EVERY) - 1
            for n in range(1, idle_runs + 1):
                run(app, start + EVERY * n)
            idle = calls() - before
            before = calls()
            run(app, start + WAIT)
            merge = calls() - before
            print(f"{forge}: open the window {announce} calls; {idle_runs} idle runs {idle} calls; "
                  f"merge {merge} calls ({fake.merges} merge made)")
            app.close()


def _calls(fake: Any) -> int:
    return sum(fake.calls.values())


if __name__ == "__main__":
    main()
