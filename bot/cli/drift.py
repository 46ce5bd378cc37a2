"""`backout drift [--service S] [--since 7d]`: out-of-band changes the GitOps controllers reported;
`backout drift sync drift-12`: sync one from Git through Argo CD's API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot.cli.help import PlainCommand, PlainGroup
from bot.cli.root import EXIT_USAGE, ConfigOption, JsonOption, app, backend, echo_json, fail, operator

drift_app = typer.Typer(help="Changes made outside Git that Flux or Argo CD saw (`backout drift`), and their sync.",
                        invoke_without_command=True, cls=PlainGroup)
app.add_typer(drift_app, name="drift")


@drift_app.callback()
def drift(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option(metavar="NAME", help="one service only")] = None,
    since: Annotated[str, typer.Option(metavar="DURATION", help="how far back (default 7d)")] = "7d",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Changes made outside Git (a kubectl edit, a scaled deployment) that Flux or Argo CD saw, newest
    first: what moved, when, and whether the controller put it back."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.domain.durations import parse_duration

    try:
        parse_duration(since)
    except ValueError as exc:
        fail(f"error: --since: {exc}", EXIT_USAGE)
    with backend(ctx, config) as chosen:
        found = chosen.drift(since=since, service=service)
    if as_json:
        echo_json(found)
        return
    typer.echo("\n".join(drift_lines(found)))


@drift_app.command("sync", cls=PlainCommand)
def drift_sync(
    ctx: typer.Context,
    drift_ref: Annotated[str, typer.Argument(metavar="DRIFT", help="drift-12, as `backout drift` lists it")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sync a drift's Argo CD Application from Git through Argo CD's API (argocd.api_url); for a Flux
    object, or without the API, it says the command to run instead."""
    with backend(ctx, config, secrets=True) as chosen:
        found = chosen.sync_drift(drift_ref, by=operator())
    if as_json:
        echo_json(found)
        return
    from bot.domain.text import safe

    typer.echo(safe(found["detail"]))


def drift_lines(found: dict[str, Any]) -> list[str]:
    """One line per drift, then how to sync it back when nothing did."""
    from bot.domain.text import safe

    entries = found.get("drift", [])
    if not entries:
        scope = f" to {safe(found['service'])}" if found.get("service") else ""
        return [f"No out-of-band change{scope} reported since {found['since'][:16].replace('T', ' ')} UTC."]
    lines = []
    for entry in entries:
        at = entry["detected_at"][:16].replace("T", " ")
        lines.append(f"{entry['id']}  {at} UTC  {safe(entry['description'])}  [{safe(entry['source'])}]")
        if entry.get("sync"):
            lines.append(f"    sync from Git: {safe(entry['sync'])}")
    return lines
