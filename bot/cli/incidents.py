"""Reading and acting on incidents: `incidents list|show`, `suspects`, `plan`, `ack`, `resolve`,
`reopen`, `note`, `update`, `role`, `severity` and `verdict`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from bot.cli.help import PlainCommand, PlainGroup
from bot.cli.root import (
    EXIT_USAGE,
    ConfigOption,
    IdArgument,
    JsonOption,
    app,
    backend,
    echo_json,
    fail,
    incident_ref,
    operator,
)


class Status(StrEnum):  # the incident statuses, without importing the domain for --help
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    MITIGATED = "mitigated"
    VERIFIED = "verified"
    RESOLVED = "resolved"
    CLOSED = "closed"



incidents_app = typer.Typer(help="List and show incidents.", no_args_is_help=True, cls=PlainGroup)

app.add_typer(incidents_app, name="incidents")

# ---- reading ----

@incidents_app.command("list", cls=PlainCommand)
def incidents_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    status: Annotated[Status | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="at most this many (1 to 1000)")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List incidents, newest first."""
    from bot.cli.render import colour_on, incident_table

    with backend(ctx, config) as chosen:
        found = chosen.list_incidents(status=status.value if status else None, limit=limit)
    if as_json:
        echo_json(found)
    else:
        typer.echo(incident_table(found["incidents"], colour=colour_on()))


@incidents_app.command("show", cls=PlainCommand)
def incidents_show(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None,
                   as_json: JsonOption = False) -> None:
    """Show one incident: alerts, suspects, actions and timeline."""
    from bot.cli.render import colour_on, incident_text

    with backend(ctx, config) as chosen:
        view = chosen.incident(incident_ref(incident))
    if as_json:
        echo_json(view)
    else:
        typer.echo(incident_text(view, colour=colour_on()))


@app.command(cls=PlainCommand)
def suspects(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None,
             as_json: JsonOption = False) -> None:
    """Show the ranked suspects of an incident, with the reasons."""
    from bot.cli.render import suspect_lines, suspects_heading
    from bot.domain.text import safe

    with backend(ctx, config) as chosen:
        if as_json:
            echo_json(chosen.suspects(incident_ref(incident)))
            return
        view = chosen.incident(incident_ref(incident))
    typer.echo("\n".join([f"{view['ref']} {safe(view['title'])}", f"{suspects_heading(view['suspects'])}:",
                           *(f"  {line}" for line in suspect_lines(view["suspects"]))]))


@app.command(cls=PlainCommand)
def plan(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None,
         as_json: JsonOption = False) -> None:
    """Show the rollback plan: with no confident suspect, the plausible changes to roll back one at a
    time, the most recent first, each verified before the next."""
    from bot.cli.render import plan_lines

    with backend(ctx, config) as chosen:
        found = chosen.plan(incident_ref(incident))
    if as_json:
        echo_json(found)
    else:
        typer.echo("\n".join(plan_lines(found)))



# ---- acting ----

def _said(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(result)
    else:
        typer.echo(result["message"])


@app.command(cls=PlainCommand)
def ack(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Acknowledge an incident: someone is on it."""
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.acknowledge(incident_ref(incident), by=operator()), as_json)


@app.command(cls=PlainCommand)
def resolve(
    ctx: typer.Context,
    incident: IdArgument,
    config: ConfigOption = None,
    note: Annotated[str, typer.Option(metavar="TEXT", help="why it is resolved")] = "",
    as_json: JsonOption = False,
) -> None:
    """Resolve an incident, with an optional note."""
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.resolve(incident_ref(incident), by=operator(), note=note), as_json)


@app.command(cls=PlainCommand)
def reopen(
    ctx: typer.Context,
    incident: IdArgument,
    config: ConfigOption = None,
    note: Annotated[str, typer.Option(metavar="TEXT", help="why it is reopened")] = "",
    as_json: JsonOption = False,
) -> None:
    """Reopen a resolved incident (its earlier ranking stays on the timeline)."""
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.reopen(incident_ref(incident), by=operator(), note=note), as_json)


@app.command(cls=PlainCommand)
def note(ctx: typer.Context, incident: IdArgument,
         text: Annotated[str, typer.Argument(help="the note, for the timeline")],
         config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Add a note to an incident's timeline."""
    if not text.strip():
        fail("error: a note needs some text", EXIT_USAGE)
    with backend(ctx, config, secrets=True) as chosen:
        added = chosen.note(incident_ref(incident), by=operator(), text=text)
    if as_json:
        echo_json(added)
    else:
        typer.echo(f"noted on {incident_ref(incident)}")


@app.command(cls=PlainCommand)
def update(ctx: typer.Context, incident: IdArgument,
           text: Annotated[str, typer.Argument(help="the status update")],
           config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Post a status update: on the timeline and in the incident's channel."""
    if not text.strip():
        fail("error: an update needs some text", EXIT_USAGE)
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.update(incident_ref(incident), by=operator(), text=text), as_json)


@app.command(cls=PlainCommand)
def role(ctx: typer.Context, incident: IdArgument,
         name: Annotated[str, typer.Argument(metavar="ROLE", help="lead, or a role the playbook's room.roles lists")],
         user: Annotated[str, typer.Argument(metavar="USER", help="who takes it (a Slack user id, U0123ABCD)")],
         config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Give a role of an incident to someone; `role ID lead USER` hands the lead over."""
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.role(incident_ref(incident), by=operator(), role=name, user=user), as_json)


@app.command(cls=PlainCommand)
def severity(ctx: typer.Context, incident: IdArgument,
             level: Annotated[str, typer.Argument(metavar="LEVEL", help="info, warning, error or critical")],
             config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Raise or lower an incident's severity."""
    with backend(ctx, config, secrets=True) as chosen:
        _said(chosen.severity(incident_ref(incident), by=operator(), level=level), as_json)


@app.command(cls=PlainCommand)
def verdict(
    ctx: typer.Context,
    incident: IdArgument,
    commit: Annotated[str, typer.Argument(help="the change that caused it (a sha prefix, or drift-<n>), or 'none'")],
    not_it: Annotated[bool, typer.Option("--not", help="rule this change out instead")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Say what caused an incident: a change (`SHA`), not this change (`SHA --not`), or `none`."""
    if commit.lower() == "none":
        if not_it:
            fail("error: --not needs a commit, not 'none'", EXIT_USAGE)
        kind, sha = "no_change", None
    else:
        kind, sha = ("not_culprit" if not_it else "culprit"), commit
    ref = incident_ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        found = chosen.verdict(ref, verdict=kind, sha=sha, by=operator())
    if as_json:
        echo_json(found)
    else:
        typer.echo(f"{ref}: {found['kind']}" + (f" {found['sha'][:12]} on {found['repo']}" if found.get("sha") else ""))


