"""`backout rollback`: revert a suspect on a branch of its own, after showing the diff being undone;
`backout hold`: stop the automatic merge of one (docs/automerge.md)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import (
    EXIT_CONFLICTED,
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


@app.command(cls=PlainCommand)
def hold(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Stop the automatic merge Backout announced for this incident (a playbook's `actions.merge:
    confident`): it will not merge; people review and merge by hand. Exit 1 when none is waiting."""
    with backend(ctx, config, secrets=True) as chosen:
        result = chosen.hold(incident_ref(incident), by=operator())
    if as_json:
        echo_json(result)
    else:
        typer.echo(result["message"])


@app.command(cls=PlainCommand)
def rollback(
    ctx: typer.Context,
    incident: IdArgument,
    commit: Annotated[str | None, typer.Option(metavar="SHA",
                                               help="the commit to revert (default: the best suspect)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be reverted and stop: nothing is "
                                                "pushed or recorded")] = False,
    force: Annotated[bool, typer.Option("--force", help="roll back a change the ranking excluded (reverted, ruled out, "
                                             "below the evidence floor); the timeline says it was forced")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revert a commit on a new branch `backout/INC-n/revert-<sha7>`, push it and, on a forge,
    open its pull request (never merged by Backout). Shows what will be reverted and asks first.
    A change the ranking excluded is refused (exit 1, saying why) unless --force is given.
    Exit 3 when the revert conflicted and the incident branch was pushed instead. --dry-run
    shows the plan (with --json, the API's `GET .../rollback` answer) and stops."""
    from bot.cli.render import plan_text
    from bot.domain.text import safe

    ref = incident_ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        plan = chosen.rollback_plan(ref, commit=commit)
        for warning in plan.get("refresh_warnings", []):
            typer.echo(f"warning: {safe(warning, 500)}", err=True)
        typer.echo(plan_text(plan), err=as_json)
        if plan.get("excluded") and not force:
            fail(f"error: {plan['short']} is not a rollback target: {safe(plan['excluded'], 500)}; add --force to "
                 "roll it back anyway")
        if not confirmed(plan, what="revert", dry_run=dry_run, yes=yes, as_json=as_json):
            return
        result = chosen.rollback(ref, commit=plan["sha"], by=operator(), force=force)
    if as_json:
        echo_json(result)
    else:
        typer.echo(result["message"])
        action = result["incident_branch"] if result["conflicted"] else result["action"]
        if action and action.get("state") == "pushed" and not action.get("url"):
            typer.echo(f"next: open a pull request from {action['branch']} on {action['repo']} and have it "
                       "reviewed; your GitOps controller applies the revert once it is merged")
    if result["conflicted"]:
        raise typer.Exit(EXIT_CONFLICTED)




@app.command(cls=PlainCommand)
def good(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="the service (or its playbook's name)")],
    repo: Annotated[str | None, typer.Option(metavar="NAME", help="one of its GitOps repositories only")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the service's last known good revision in each of its GitOps repositories and why it
    counts: applied and healthy (from controller events, else commit time plus sync_delay), in
    place for the playbook's good_after with no incident open, and its key metric recovered where
    a verification ran. Nothing is changed."""
    from bot.cli.render import good_text

    with backend(ctx, config) as chosen:
        answer = chosen.good(service, repo=repo)
    if as_json:
        echo_json(answer)
    else:
        typer.echo(good_text(answer))


@app.command(cls=PlainCommand)
def restore(
    ctx: typer.Context,
    incident: IdArgument,
    include: Annotated[list[str] | None, typer.Option(
        "--include", metavar="PATH", help="a shared path of the playbook to restore too (repeatable); shared paths "
                                          "are left as they are at head otherwise")] = None,
    repo: Annotated[str | None, typer.Option(metavar="NAME", help="the GitOps repository (default: the "
                                                                   "playbook's first)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be restored and stop")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore the incident's service to its last known good revision: one commit on a new branch
    `backout/INC-n/restore-<sha7>` that puts the service's own paths back to their content then,
    pushed and, on a forge, opened as a pull request (never merged by Backout). Shows the good
    revision, why it counts and every commit it undoes, and asks first."""
    from bot.cli.render import restore_text
    from bot.domain.text import safe

    ref = incident_ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        plan = chosen.restore_plan(ref, include=include or [], repo=repo)
        for warning in plan.get("refresh_warnings", []):
            typer.echo(f"warning: {safe(warning, 500)}", err=True)
        typer.echo(restore_text(plan), err=as_json)
        if not confirmed(plan, what="restore", dry_run=dry_run, yes=yes, as_json=as_json):
            return
        result = chosen.restore(ref, good=plan["good"], include=include or [], repo=repo, by=operator())
    if as_json:
        echo_json(result)
        return
    typer.echo(result["message"])
    action = result["action"]
    if action and action.get("state") == "pushed" and not action.get("url"):
        typer.echo(f"next: open a pull request from {action['branch']} on {action['repo']} and have it reviewed; "
                   "your GitOps controller applies the restore once it is merged")


def confirmed(plan: dict[str, Any], *, what: str, dry_run: bool, yes: bool, as_json: bool) -> bool:
    """After the plan is shown: False for a dry run (the plan printed with --json), else ask
    unless --yes; a "no" ends the command with nothing pushed."""
    if dry_run:
        if as_json:
            echo_json({key: value for key, value in plan.items() if key != "refresh_warnings"})
        else:
            typer.echo("dry run: nothing was pushed")
        return False
    if not yes:
        if not sys.stdin.isatty() and not as_json:
            typer.echo("(no terminal to confirm on: pass --yes to push without asking)", err=True)
        if not typer.confirm(f"Push this {what} branch?", default=False, err=as_json):
            fail(f"{'rollback' if what == 'revert' else what} cancelled: nothing was pushed")
    return True


@app.command(cls=PlainCommand)
def branch(
    ctx: typer.Context,
    incident: IdArgument,
    ready: Annotated[bool, typer.Option("--ready", help="mark the incident branch's draft pull requests ready for "
                                                         "review and ask the playbook's reviewers")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cut the incident branch `backout/INC-n/incident` in every repository of the playbook, from
    the watched branch with the confident suspect's revert applied where it applies cleanly (else
    from its head, the conflict said), and open a draft pull request back on a forge. Run again:
    the branches and pull requests are adopted, never made twice. Commits pushed to it appear on
    the timeline; its merge is the mitigation. --ready marks the drafts ready for review."""
    ref = incident_ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        result = chosen.branch(ref, by=operator(), ready=ready)
    if as_json:
        echo_json(result)
    else:
        typer.echo(result["message"])
