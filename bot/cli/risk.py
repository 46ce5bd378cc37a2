"""`backout risk REPO NUMBER [--post]`: review risk of one open pull (merge) request, as its head
is now: printed, or with --post shown on the forge as a webhook would have it (the `backout/risk`
check and the one comment, found again by its marker)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import EXIT_USAGE, ConfigOption, JsonOption, app, echo_json, fail, settings_or_exit, target_of


@app.command("risk", cls=PlainCommand)
def risk(
    ctx: typer.Context,
    repo: Annotated[str, typer.Argument(metavar="REPO", help="a repository of the config (forge github or gitlab)")],
    number: Annotated[int, typer.Argument(metavar="NUMBER", help="the pull request (merge request) number")],
    base: Annotated[str | None, typer.Option(metavar="BRANCH", help="the branch it merges into "
                                                                      "(default: the repository's branch)")] = None,
    post: Annotated[bool, typer.Option("--post", help="set the check and the comment on the forge")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Does this request touch what caused incidents? The incidents, what their changes did, this
    change's revert-safety flags; nothing is posted without --post."""
    from bot import bootstrap
    from bot.domain.review_checks import ReviewItem
    from bot.services.reviews import review

    target = target_of(ctx, config)
    if target.server:
        fail("error: `backout risk` reads the mirrors and the database: run it where Backout runs, without --server",
             EXIT_USAGE)
    settings = settings_or_exit(target.config, secrets=True)
    found = next((r for r in settings.repos if r.name == repo), None)
    if found is None or found.forge == "local":
        known = ", ".join(r.name for r in settings.repos if r.forge != "local") or "none"
        fail(f"error: {repo!r} is not a repository on a forge in the config (known: {known})", EXIT_USAGE)
    bootstrap.configure_logging(settings.logging)  # to stderr: stdout is the answer
    built = bootstrap.build(settings, upgrade_sqlite=False)
    try:
        work = bootstrap.review_work(built.ctx)
        if work is None:
            fail("error: review risk needs the SQL storage and the git mirrors", EXIT_USAGE)
        item = ReviewItem(repo=repo, number=number, head_sha="", base=base or found.branch, forge=found.forge)
        outcome = review(work, item, now=built.ctx.clock(), post=post)
    finally:
        built.close()
    shown = _shown(outcome.risk, outcome.check, posted=post, now=built.ctx.clock())
    if as_json:
        echo_json(shown)
        return
    typer.echo(shown["summary"] if shown["summary"] else "The request's head could not be read.")


def _shown(risk: Any, check: Any, *, posted: bool, now: Any) -> dict[str, Any]:
    from bot.domain.review_risk import summary

    if risk is None:
        return {"flagged": False, "summary": "", "check": None, "posted": False}
    return {"flagged": risk.flagged, "head_sha": risk.change.head_sha, "block": list(risk.block),
            "incidents": sorted({m.cause.incident_id for m in risk.matches}), "flags": list(risk.change.flags),
            "summary": summary(risk, now=now), "check": check.state.value if check else None,
            "posted": posted and check is not None}
