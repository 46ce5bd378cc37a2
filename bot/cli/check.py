"""`backout check`: validate the config and every playbook, and with --online reach each outside part."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import EXIT_FAILED, EXIT_USAGE, ConfigOption, JsonOption, app, echo_json, target_of


@app.command(cls=PlainCommand)
def check(
    ctx: typer.Context,
    config: ConfigOption = None,
    online: Annotated[bool, typer.Option(
        "--online", help="also reach each repository, Prometheus, Slack and GitHub, and say what each answered")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate the config and every playbook; exit 2 naming file, key, line and reason. With
    --online, exit 1 when an outside part does not answer as it should."""
    from bot.config import (
        ConfigError,
        config_warnings,
        find_config_file,
        load_playbooks,
        playbook_warnings,
        serve_problems,
    )

    path = target_of(ctx, config).config
    found = find_config_file(path)
    label = str(found or "(defaults)")
    try:
        from bot.config import load_settings

        settings = load_settings(path)
    except ConfigError as exc:
        _checked(as_json, label, problems=[str(p) for p in exc.problems])
    problems = serve_problems(settings, file=label)
    try:
        playbooks = load_playbooks(settings.playbooks_dir, known_repos=[repo.name for repo in settings.repos])
    except ConfigError as exc:
        problems.extend(exc.problems)
        playbooks = []
    warnings = [str(w) for w in [*config_warnings(settings, file=label), *playbook_warnings(settings, playbooks,
                                                                                          file=label)]]
    if found is None:  # an empty folder checks the defaults: say so rather than report them as this team's
        warnings.insert(0, f"no config file found: no --config, no BACKOUT_CONFIG, no config.yaml in {Path.cwd()}; "
                           "checked the defaults")
    reached: list[dict[str, Any]] | None = None
    if online and not problems:
        from bot.cli.online import check_online

        reached = [{"what": f.what, "ok": f.ok, "detail": f.detail} for f in check_online(settings, playbooks)]
    _checked(as_json, label, problems=[str(p) for p in problems], warnings=warnings,
             summary=f"{label}, {_count(len(settings.repos), 'repository', 'repositories')}, "
                     f"{_count(len(playbooks), 'playbook', 'playbooks')} in "
                     f"{settings.playbooks_dir}: {', '.join(p.name for p in playbooks) or 'none'}",
             playbooks=[p.name for p in playbooks], online=reached)


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _checked(as_json: bool, label: str, *, problems: Sequence[str], warnings: Sequence[str] = (),
             summary: str = "", playbooks: Sequence[str] = (), online: list[dict[str, Any]] | None = None) -> NoReturn:
    unreachable = [found for found in online or [] if not found["ok"]]
    if as_json:
        echo_json({"ok": not problems and not unreachable, "config": label, "problems": problems,
                   "warnings": list(warnings), "playbooks": list(playbooks), "online": online})
    else:
        for line in warnings:  # first: "no config file found" explains the problems that follow
            typer.echo(f"warning: {line}", err=True)
        for line in problems:
            typer.echo(line, err=True)
        if not problems:
            typer.echo(f"ok: {summary}")
        for found in online or []:
            typer.echo(f"{'ok' if found['ok'] else 'FAILED':<6} {found['what']}: {found['detail']}")
    raise typer.Exit(EXIT_USAGE if problems else EXIT_FAILED if unreachable else 0)


