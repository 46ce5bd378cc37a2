"""`backout replay`: post recorded Alertmanager payloads to a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import EXIT_FAILED, ConfigOption, app, fail, server_url, settings_or_exit, target_of


@app.command(cls=PlainCommand)
def replay(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Alertmanager payload files, in order")],
    url: Annotated[str | None, typer.Option(metavar="URL", hidden=True, callback=server_url,
                                            help="the same as the global --server")] = None,
    config: ConfigOption = None,
) -> None:
    """Post Alertmanager payload files to a running server (--server, else the config's), as
    Alertmanager would."""
    import httpx

    from bot.demo.replay import post_payloads

    settings = settings_or_exit(target_of(ctx, config).config)
    server = url or target_of(ctx, config).server
    base = server.rstrip("/") if server else f"http://{settings.server.host}:{settings.server.port}"
    try:
        payloads = [(path.name, path.read_bytes()) for path in files]
    except OSError as exc:
        fail(f"{exc.filename}: cannot read: {exc.strerror}")
    failed = 0
    try:
        for posted in post_payloads(base_url=base, settings=settings.alertmanager, payloads=payloads):
            failed += posted.status >= 300
            typer.echo(f"{posted.name}: {posted.status} {posted.body}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {base}: {exc}")
    if failed:
        raise typer.Exit(EXIT_FAILED)


