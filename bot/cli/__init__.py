"""The `backout` command line, the front door for people and scripts.

`root` holds the Typer app, the global options (`-c`, `--server`, `--token`) and what every
command shares; the commands are grouped by what they act on: `incidents` (list, show, suspects,
plan, ack, resolve, reopen, note, verdict), `rollback`, `freeze` (freeze, unfreeze), `export`
(export and report), `serve` (serve, health, db upgrade), `check` (with `online`), `replay`
and `demo`. Beside them: the two backends the incident commands drive, `local` (the configured
database, through the services) and `remote` (a running Backout's HTTP API), `render` (terminal
text), `server` (what `serve` starts) and `help` (plain help text).

May import anything below it (`bot.demo`, `bootstrap`, `entrypoints`, `adapters`, `services`,
`domain`, `config`), but only inside the command that needs it: importing `bot.cli` loads no
server, database, forge or chat library, so `backout --help` starts at once.
"""

from bot.cli import check, demo, drift, export, freeze, incidents, replay, risk, rollback, serve  # noqa: F401 (each registers its commands)
from bot.cli.root import app, main

__all__ = ["app", "main"]
