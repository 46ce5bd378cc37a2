"""`backout freeze` and `backout unfreeze`: pause a service's GitOps automation in Git for an
incident, and take the pause out again, each as a pull request Backout never merges."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import ConfigOption, JsonOption, app, backend, echo_json, fail, operator

TargetArgument = Annotated[str | None, typer.Argument(
    metavar="INC-n|SERVICE", help="incident id (7 or INC-7), or a service: its newest active incident")]


@app.command(cls=PlainCommand)
def freeze(
    ctx: typer.Context,
    target: TargetArgument = None,
    reconcile_disabled: Annotated[bool, typer.Option(
        "--reconcile-disabled", help="also add Flux's kustomize.toolkit.fluxcd.io/reconcile: disabled to the "
                                     "service's Kustomizations and HelmReleases: it blocks every later change to "
                                     "them, a revert's included")] = False,
    list_all: Annotated[bool, typer.Option("--list", help="list every freeze, its expiry and its unfreeze")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause image automation and automated sync for the service's objects only, on the branch
    `backout/INC-n/freeze` with its pull request per GitOps repository: Flux image setter markers
    taken off the service's lines, its own ImageRepository suspended, Argo CD's automated sync
    and argocd-image-updater (annotations, 0.x) paused on its Application. Each change carries
    the incident, who, when and the playbook's expiry (freeze.expires_after). Running it again
    adopts what is there. Once the fix is verified Backout opens the unfreeze by itself."""
    with backend(ctx, config, secrets=not list_all) as chosen:
        if list_all:
            result = chosen.freezes()
        elif target is None:
            fail("error: name the incident (INC-7) or the service to freeze, or pass --list")
        else:
            result = chosen.freeze(target, by=operator(), reconcile_disabled=reconcile_disabled)
    if as_json:
        echo_json(result)
    elif list_all:
        _print_rows(result)
    else:
        _print_result(result)


@app.command(cls=PlainCommand)
def unfreeze(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="INC-n|SERVICE", help="incident id, or a service")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take out exactly what the incident's freezes added, on `backout/INC-n/unfreeze` with its
    pull request per repository; lines changed since the freeze are named and left alone."""
    with backend(ctx, config, secrets=True) as chosen:
        result = chosen.unfreeze(target, by=operator())
    if as_json:
        echo_json(result)
    else:
        _print_result(result)


def _print_result(result: dict[str, Any]) -> None:
    for action in result["actions"]:
        where = action.get("url") or f"branch {action['branch']} (open its pull request by hand)"
        typer.echo(f"{action['kind']} of {action['repo']}: {action['state']}, {where}")
    for note in result["notes"]:
        typer.echo(f"not done: {note}")


def _print_rows(result: dict[str, Any]) -> None:
    rows = result["freezes"]
    if not rows:
        typer.echo("no freezes")
    for row in rows:
        expiry = f"expires {row['expires_at']}" if row["expires_at"] else "no expiry"
        flag = " EXPIRED" if row["expired"] else ""
        undo = f", unfreeze {row['unfreeze']}" if row["unfreeze"] else ""
        typer.echo(f"{row['incident_ref']} {row['repo']}: {row['state']}, {expiry}{flag}{undo}"
                   f"{' ' + row['url'] if row['url'] else ''}")
