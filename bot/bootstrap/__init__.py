"""The composition root: the only place that reads settings to build adapters and wire them.

`app` holds `build(settings, **overrides)`, which wires every adapter into one `AppContext` and
accepts a fake for any part (tests build the whole app in one line), and the database set-up;
`forges` builds Git, GitHub and GitLab from the settings, `slack` the Slack app and notifier,
`logs` the structured logging. Paging will be built here too, behind its port.

May import everything below it: `entrypoints`, `adapters`, `services`, `domain` and `config`.
Only the command line (`bot.cli`) and the demo (`bot.demo`) import it.
"""

from bot.bootstrap.app import (
    App,
    build,
    describe_storage,
    elect_leader,
    record_in_process,
    review_work,
    start_replica,
    upgrade_database,
    utc_now,
)
from bot.bootstrap.forges import build_forge, build_git
from bot.bootstrap.logs import configure_logging
from bot.bootstrap.slack import build_slack, socket_mode

__all__ = [
    "App",
    "build",
    "build_forge",
    "build_git",
    "build_slack",
    "configure_logging",
    "describe_storage",
    "elect_leader",
    "record_in_process",
    "review_work",
    "socket_mode",
    "start_replica",
    "upgrade_database",
    "utc_now",
]
