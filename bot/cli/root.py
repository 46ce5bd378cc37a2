"""The `backout` command line: the root command, its global options and what every command shares.

Every incident command works either on the configured database or, with `--server URL`, on a
running Backout through its HTTP API (as `amtool --alertmanager.url` and `kubectl --server` do).
Modules are imported inside the commands that need them: `backout --help` and the read commands
start in a fraction of a second. Exit codes: 0 done, 1 failed, 2 usage or config, 3 the revert
conflicted and the incident branch was pushed instead. Every error is one line on stderr: the root
group (`bot.cli.errors.RootGroup`) turns whatever a command raises into its line and code.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol

import typer

from bot.cli.errors import EXIT_FAILED as EXIT_FAILED  # the commands take the exit codes from here
from bot.cli.errors import EXIT_USAGE as EXIT_USAGE
from bot.cli.errors import RootGroup, flat

if TYPE_CHECKING:
    from bot.config import Settings

EXIT_CONFLICTED = 3

app = typer.Typer(help="Backout: what changed, and how to back it out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, cls=RootGroup)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="FILE", help="config file (else BACKOUT_CONFIG, else ./config.yaml)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
IdArgument = Annotated[str, typer.Argument(help="incident id: 7 or INC-7")]


@dataclass
class Target:
    """Where the incident commands act: a running server, or the configured database."""

    config: Path | None = None
    server: str | None = None
    token: str | None = None
    token_file: Path | None = None


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        typer.echo(f"backout {version('backout')}")
        raise typer.Exit()


def server_url(value: str | None) -> str | None:
    """--server must be a URL: a usage error (exit 2) rather than a failed request."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is not a URL: give one like http://backout.example:8080")
    return value


@app.callback()
def options(
    ctx: typer.Context,
    config: ConfigOption = None,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="BACKOUT_URL", metavar="URL", callback=server_url,
        help="a running Backout's URL: act through its API instead of the database")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="BACKOUT_TOKEN", metavar="TOKEN", help="API token for --server")] = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", envvar="BACKOUT_TOKEN_FILE", metavar="FILE",
        help="file whose first line is the API token")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Options before the subcommand apply to it: `backout -c config.yaml incidents list`."""
    ctx.obj = Target(config=config, server=server, token=token, token_file=token_file)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(flat(message), err=True)
    raise typer.Exit(code)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def target_of(ctx: typer.Context, config: Path | None) -> Target:
    found = ctx.find_root().obj if ctx.find_root().obj is not None else Target()
    assert isinstance(found, Target)
    return Target(config=config or found.config, server=found.server, token=found.token,
                  token_file=found.token_file)


def settings_or_exit(config: Path | None, *, secrets: bool = True) -> Settings:
    """The settings; a ConfigError ends the command at the root group (exit 2, one line)."""
    from bot.config import load_settings

    return load_settings(config, secrets=secrets)


class Backend(Protocol):
    """What the incident commands call: `bot.cli.remote.BackoutClient` or `bot.cli.local.LocalBackend`."""

    def list_incidents(self, *, status: str | None, limit: int) -> dict[str, Any]: ...
    def incident(self, ref: str) -> dict[str, Any]: ...
    def suspects(self, ref: str) -> dict[str, Any]: ...
    def plan(self, ref: str) -> dict[str, Any]: ...
    def acknowledge(self, ref: str, *, by: str) -> dict[str, Any]: ...
    def resolve(self, ref: str, *, by: str, note: str) -> dict[str, Any]: ...
    def reopen(self, ref: str, *, by: str, note: str) -> dict[str, Any]: ...
    def note(self, ref: str, *, by: str, text: str) -> dict[str, Any]: ...
    def update(self, ref: str, *, by: str, text: str) -> dict[str, Any]: ...
    def role(self, ref: str, *, by: str, role: str, user: str) -> dict[str, Any]: ...
    def severity(self, ref: str, *, by: str, level: str) -> dict[str, Any]: ...
    def rollback_plan(self, ref: str, *, commit: str | None) -> dict[str, Any]: ...
    def rollback(self, ref: str, *, commit: str, by: str, force: bool = False) -> dict[str, Any]: ...
    def hold(self, ref: str, *, by: str) -> dict[str, Any]: ...
    def branch(self, ref: str, *, by: str, ready: bool) -> dict[str, Any]: ...
    def verdict(self, ref: str, *, verdict: str, sha: str | None, by: str) -> dict[str, Any]: ...
    def good(self, service: str, *, repo: str | None) -> dict[str, Any]: ...
    def restore_plan(self, ref: str, *, include: Sequence[str], repo: str | None) -> dict[str, Any]: ...
    def restore(self, ref: str, *, good: str, include: Sequence[str], repo: str | None, by: str) -> dict[str, Any]: ...
    def freeze(self, target: str, *, by: str, reconcile_disabled: bool) -> dict[str, Any]: ...
    def unfreeze(self, target: str, *, by: str) -> dict[str, Any]: ...
    def freezes(self) -> dict[str, Any]: ...
    def accuracy(self, *, since: str) -> dict[str, Any]: ...
    def report(self, *, since: str, service: str | None) -> dict[str, Any]: ...
    def drift(self, *, since: str, service: str | None) -> dict[str, Any]: ...
    def sync_drift(self, ref: str, *, by: str) -> dict[str, Any]: ...
    def export(self, ref: str, *, format: str) -> str | bytes: ...
    def close(self) -> None: ...


@contextmanager
def backend(ctx: typer.Context, config: Path | None, *, secrets: bool = False) -> Iterator[Backend]:
    """The server's API with --server, else the configured database. `secrets`: the command
    acts (Git, the forge, chat), so the config's secret files must be readable. Errors end the
    command at the root group; a missing database is a usage error (exit 2)."""
    target = target_of(ctx, config)
    if target.server:
        from bot.cli.remote import BackoutClient, read_token

        chosen: Backend = BackoutClient(target.server, token=read_token(target.token, target.token_file))
    else:
        from bot.cli.local import LocalBackend, NoDatabase

        try:
            chosen = LocalBackend(settings_or_exit(target.config, secrets=secrets))
        except NoDatabase as exc:
            fail(f"error: {exc}", EXIT_USAGE)
    try:
        yield chosen
    finally:
        chosen.close()


def incident_ref(text: str) -> str:
    """`INC-7` from `7` or `INC-7`; a usage error otherwise."""
    from bot.domain.errors import BackoutError
    from bot.domain.models import format_incident_ref, parse_incident_ref

    try:
        return format_incident_ref(parse_incident_ref(text))
    except BackoutError as exc:
        fail(f"error: {exc}", EXIT_USAGE)



def main() -> None:
    app()
