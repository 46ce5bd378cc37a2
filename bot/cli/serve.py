"""Running Backout: `serve`, `health` (the container health check) and `db upgrade`."""

from __future__ import annotations

from pathlib import Path

import typer

from bot.cli.help import PlainCommand, PlainGroup
from bot.cli.root import ConfigOption, app, fail, settings_or_exit, target_of

db_app = typer.Typer(help="Database schema.", no_args_is_help=True, cls=PlainGroup)
app.add_typer(db_app, name="db")


@app.command(cls=PlainCommand)
def serve(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Run the HTTP server (webhooks, API, metrics), the scheduler and, in Socket Mode, Slack."""
    from bot.cli.server import run_server

    raise typer.Exit(run_server(target_of(ctx, config).config, echo=lambda text: typer.echo(text, err=True)))



def _server_base(ctx: typer.Context, config: Path | None) -> str:
    """--server, else the configured server on this machine (a wildcard bind is asked on loopback)."""
    target = target_of(ctx, config)
    if target.server:
        return target.server.rstrip("/")
    settings = settings_or_exit(target.config, secrets=False)
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::", "") else settings.server.host  # noqa: S104
    return f"http://{host}:{settings.server.port}"


@app.command(cls=PlainCommand)
def health(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Ask the server's /healthz (the container health check): the local one from the config, or
    --server's. Exit 0 if it answers ok."""
    import urllib.request

    url = f"{_server_base(ctx, config)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 (--server is checked to be http(s))
            ok = answer.status == 200
    except OSError as exc:
        fail(f"{url}: {exc}")
    if not ok:
        fail(f"{url}: not ok")
    typer.echo(f"{url}: ok")



@db_app.command("upgrade", cls=PlainCommand)
def db_upgrade(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Create the database or migrate it to the newest schema."""
    from bot import bootstrap
    from bot.domain.errors import BackoutError

    settings = settings_or_exit(target_of(ctx, config).config, secrets=False)
    try:
        revision = bootstrap.upgrade_database(settings)
    except BackoutError as exc:
        fail(f"error: {exc}")
    typer.echo(f"{bootstrap.describe_storage(settings)}: schema at {revision}")


