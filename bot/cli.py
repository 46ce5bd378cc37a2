"""The `backout` command line.

Every incident command works either on the configured database or, with `--server URL`, on a
running Backout through its HTTP API (as `amtool --alertmanager.url` and `kubectl --server` do).
Modules are imported inside the commands that need them: `backout --help` and the read commands
start in a fraction of a second. Exit codes: 0 done, 1 failed, 2 usage or config, 3 the revert
conflicted and the incident branch was pushed instead.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol

import typer

from bot.cli_help import PlainCommand, PlainGroup

if TYPE_CHECKING:
    from bot.config import Settings

EXIT_FAILED, EXIT_USAGE, EXIT_CONFLICTED = 1, 2, 3


class Status(StrEnum):  # the incident statuses, without importing the domain for --help
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    MITIGATED = "mitigated"
    VERIFIED = "verified"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Format(StrEnum):  # bot.services.export.ExportFormat's values
    MARKDOWN = "markdown"
    JSON = "json"
    HTML = "html"
    PNG = "png"


app = typer.Typer(help="Backout: what changed, and how to back it out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=PlainGroup)
incidents_app = typer.Typer(help="List and show incidents.", no_args_is_help=True, cls=PlainGroup)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, cls=PlainGroup)
report_app = typer.Typer(help="Numbers across incidents (`backout report`), and the ranking's accuracy.",
                         invoke_without_command=True, cls=PlainGroup)
app.add_typer(incidents_app, name="incidents")
app.add_typer(db_app, name="db")
app.add_typer(report_app, name="report")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="FILE", help="config file (else BACKOUT_CONFIG, else ./config.yaml)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
IdArgument = Annotated[str, typer.Argument(help="incident id: 7 or INC-7")]
SinceOption = Annotated[str, typer.Option(metavar="DURATION", help="incidents opened within this long (30d, 12h)")]


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


def _server_url(value: str | None) -> str | None:
    """--server must be a URL: a usage error (exit 2) rather than a failed request."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is not a URL: give one like http://backout.example:8080")
    return value


@app.callback()
def options(
    ctx: typer.Context,
    config: ConfigOption = None,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="BACKOUT_URL", metavar="URL", callback=_server_url,
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
    typer.echo(message, err=True)
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
    from bot.config import ConfigError, load_settings

    try:
        return load_settings(config, secrets=secrets)
    except ConfigError as exc:
        fail(f"configuration error:\n{exc}", EXIT_USAGE)


class Backend(Protocol):
    """What the incident commands call: `bot.remote.BackoutClient` or `bot.local.LocalBackend`."""

    def list_incidents(self, *, status: str | None, limit: int) -> dict[str, Any]: ...
    def incident(self, ref: str) -> dict[str, Any]: ...
    def suspects(self, ref: str) -> dict[str, Any]: ...
    def plan(self, ref: str) -> dict[str, Any]: ...
    def acknowledge(self, ref: str, *, by: str) -> dict[str, Any]: ...
    def resolve(self, ref: str, *, by: str, note: str) -> dict[str, Any]: ...
    def reopen(self, ref: str, *, by: str, note: str) -> dict[str, Any]: ...
    def note(self, ref: str, *, by: str, text: str) -> dict[str, Any]: ...
    def rollback_plan(self, ref: str, *, commit: str | None) -> dict[str, Any]: ...
    def rollback(self, ref: str, *, commit: str, by: str, force: bool = False) -> dict[str, Any]: ...
    def verdict(self, ref: str, *, verdict: str, sha: str | None, by: str) -> dict[str, Any]: ...
    def accuracy(self, *, since: str) -> dict[str, Any]: ...
    def report(self, *, since: str, service: str | None) -> dict[str, Any]: ...
    def export(self, ref: str, *, format: str) -> str | bytes: ...
    def close(self) -> None: ...


@contextmanager
def backend(ctx: typer.Context, config: Path | None, *, secrets: bool = False) -> Iterator[Backend]:
    """The server's API with --server, else the configured database. `secrets`: the command
    acts (Git, the forge, chat), so the config's secret files must be readable."""
    from bot.domain.errors import BackoutError

    target = target_of(ctx, config)
    try:
        if target.server:
            from bot.remote import BackoutClient, read_token

            chosen: Backend = BackoutClient(target.server, token=read_token(target.token, target.token_file))
        else:
            from bot.local import LocalBackend, NoDatabase

            try:
                chosen = LocalBackend(settings_or_exit(target.config, secrets=secrets))
            except NoDatabase as exc:
                fail(f"error: {exc}", EXIT_USAGE)
    except BackoutError as exc:
        fail(f"error: {exc}")
    try:
        yield chosen
    except BackoutError as exc:
        fail(f"error: {exc}")
    finally:
        chosen.close()


def _ref(text: str) -> str:
    """`INC-7` from `7` or `INC-7`; a usage error otherwise."""
    from bot.domain.errors import BackoutError
    from bot.domain.models import format_incident_ref, parse_incident_ref

    try:
        return format_incident_ref(parse_incident_ref(text))
    except BackoutError as exc:
        fail(f"error: {exc}", EXIT_USAGE)


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
    from bot.render import colour_on, incident_table

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
    from bot.render import colour_on, incident_text

    with backend(ctx, config) as chosen:
        view = chosen.incident(_ref(incident))
    if as_json:
        echo_json(view)
    else:
        typer.echo(incident_text(view, colour=colour_on()))


@app.command(cls=PlainCommand)
def suspects(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None,
             as_json: JsonOption = False) -> None:
    """Show the ranked suspects of an incident, with the reasons."""
    from bot.domain.text import safe
    from bot.render import suspect_lines, suspects_heading

    with backend(ctx, config) as chosen:
        if as_json:
            echo_json(chosen.suspects(_ref(incident)))
            return
        view = chosen.incident(_ref(incident))
    typer.echo("\n".join([f"{view['ref']} {safe(view['title'])}", f"{suspects_heading(view['suspects'])}:",
                           *(f"  {line}" for line in suspect_lines(view["suspects"]))]))


@app.command(cls=PlainCommand)
def plan(ctx: typer.Context, incident: IdArgument, config: ConfigOption = None,
         as_json: JsonOption = False) -> None:
    """Show the rollback plan: with no confident suspect, the plausible changes to roll back one at a
    time, the most recent first, each verified before the next."""
    from bot.render import plan_lines

    with backend(ctx, config) as chosen:
        found = chosen.plan(_ref(incident))
    if as_json:
        echo_json(found)
    else:
        typer.echo("\n".join(plan_lines(found)))


@app.command(cls=PlainCommand)
def export(
    ctx: typer.Context,
    incident: IdArgument,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.MARKDOWN,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="file (default: stdout)")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export the incident for the post-incident review: the Markdown draft, JSON, the HTML page
    (with the chart), or the chart alone as PNG (`-f png -o chart.png`)."""
    chosen_format = Format.JSON if as_json and output is None else format
    if chosen_format is Format.PNG and output is None and sys.stdout.isatty():
        fail("error: a PNG is not for the terminal: give -o FILE", EXIT_USAGE)
    with backend(ctx, config) as chosen:
        content = chosen.export(_ref(incident), format=chosen_format.value)
    if output is None:
        if isinstance(content, bytes):
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
        else:
            typer.echo(content, nl=False)
        return
    try:
        if isinstance(content, bytes):
            output.write_bytes(content)
        else:
            output.write_text(content, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    if as_json:
        echo_json({"incident": _ref(incident), "format": chosen_format.value, "output": str(output)})
    else:
        typer.echo(f"wrote {output}")


class ReportFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"


@report_app.callback()
def report(
    ctx: typer.Context,
    since: SinceOption = "30d",
    service: Annotated[str | None, typer.Option(metavar="NAME", help="one service only")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="print a Markdown table for a review document")
                        ] = False,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", hidden=True)] = ReportFormat.TEXT,  # older scripts
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The team's numbers: incidents, time to acknowledge, mitigate and resolve (median, p90),
    incidents a change caused, reverts opened and merged, and the ranking's accuracy."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.domain.durations import parse_duration
    from bot.render import report_text

    try:
        parse_duration(since)
    except ValueError as exc:
        fail(f"error: --since: {exc}", EXIT_USAGE)
    with backend(ctx, config) as chosen:
        found = chosen.report(since=since, service=service)
    if as_json or format is ReportFormat.JSON:
        echo_json(found)
    else:
        typer.echo(report_text(found, since=since, markdown=markdown or format is ReportFormat.MARKDOWN))


@report_app.command("accuracy", cls=PlainCommand)
def report_accuracy(
    ctx: typer.Context,
    since: SinceOption = "30d",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """How often the first suspect was right, from responders' verdicts: by service and playbook."""
    from bot.domain.durations import parse_duration
    from bot.domain.text import safe

    try:
        parse_duration(since)
    except ValueError as exc:
        fail(f"error: --since: {exc}", EXIT_USAGE)
    with backend(ctx, config) as chosen:
        report = chosen.accuracy(since=since)
    if as_json:
        echo_json(report)
        return
    typer.echo(f"Incidents opened in the last {since} with a verdict (precision@1: confident and right, of "
               "those a change caused; confidence: right, of the confident answers; recall@3: the culprit "
               "among the first three)")
    rows = [("overall", report["overall"])]
    rows += [(f"service {name}", figures) for name, figures in report["by_service"].items()]
    rows += [(f"playbook {name}", figures) for name, figures in report["by_playbook"].items()]
    widths = (13, 12, 10, 11)
    typer.echo(f"{'':<28}{'incidents':>10}{'precision@1':>13}{'confidence':>12}{'recall@3':>10}{'abstained':>11}")
    for label, figures in rows:
        cells = [figures["precision_at_1"], figures["precision_of_confidence"], figures["recall_at_3"],
                 figures["abstention_no_cause"]]
        typer.echo(f"{safe(label)[:27]:<28}{figures['incidents']:>10}" + "".join(
            f"{'-' if value is None else f'{value:.2f}':>{width}}" for value, width in zip(cells, widths, strict=True)))
    calibration = report["overall"].get("calibration") or []
    if calibration:
        typer.echo("\nCalibration (the answer's confidence against the share right):")
        typer.echo(f"{'confidence':<28}{'answers':>10}{'right':>13}")
        for row in calibration:
            typer.echo(f"{row['confidence']:<28}{row['answers']:>10}{row['right']:>13.2f}")


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
        _said(chosen.acknowledge(_ref(incident), by=operator()), as_json)


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
        _said(chosen.resolve(_ref(incident), by=operator(), note=note), as_json)


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
        _said(chosen.reopen(_ref(incident), by=operator(), note=note), as_json)


@app.command(cls=PlainCommand)
def note(ctx: typer.Context, incident: IdArgument,
         text: Annotated[str, typer.Argument(help="the note, for the timeline")],
         config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Add a note to an incident's timeline."""
    if not text.strip():
        fail("error: a note needs some text", EXIT_USAGE)
    with backend(ctx, config, secrets=True) as chosen:
        added = chosen.note(_ref(incident), by=operator(), text=text)
    if as_json:
        echo_json(added)
    else:
        typer.echo(f"noted on {_ref(incident)}")


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
    from bot.domain.text import safe
    from bot.render import plan_text

    ref = _ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        plan = chosen.rollback_plan(ref, commit=commit)
        for warning in plan.get("refresh_warnings", []):
            typer.echo(f"warning: {safe(warning, 500)}", err=True)
        typer.echo(plan_text(plan), err=as_json)
        if plan.get("excluded") and not force:
            fail(f"error: {plan['short']} is not a rollback target: {safe(plan['excluded'], 500)}; add --force to "
                 "roll it back anyway")
        if dry_run:
            if as_json:
                echo_json({key: value for key, value in plan.items() if key != "refresh_warnings"})
            else:
                typer.echo("dry run: nothing was pushed")
            return
        if not yes:
            if not sys.stdin.isatty() and not as_json:
                typer.echo("(no terminal to confirm on: pass --yes to push without asking)", err=True)
            if not typer.confirm("Push this revert branch?", default=False, err=as_json):
                fail("rollback cancelled: nothing was pushed")
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
def verdict(
    ctx: typer.Context,
    incident: IdArgument,
    commit: Annotated[str, typer.Argument(help="the change that caused it (a sha prefix), or 'none'")],
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
    ref = _ref(incident)
    with backend(ctx, config, secrets=True) as chosen:
        found = chosen.verdict(ref, verdict=kind, sha=sha, by=operator())
    if as_json:
        echo_json(found)
    else:
        typer.echo(f"{ref}: {found['kind']}" + (f" {found['sha'][:12]} on {found['repo']}" if found.get("sha") else ""))


# ---- running and setting up ----

@app.command(cls=PlainCommand)
def serve(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Run the HTTP server (webhooks, API, metrics), the scheduler and, in Socket Mode, Slack."""
    from bot.serve import run_server

    raise typer.Exit(run_server(target_of(ctx, config).config, echo=lambda text: typer.echo(text, err=True)))


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
        from bot.online import check_online

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


@app.command(cls=PlainCommand)
def replay(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Alertmanager payload files, in order")],
    url: Annotated[str | None, typer.Option(metavar="URL", hidden=True, callback=_server_url,
                                            help="the same as the global --server")] = None,
    config: ConfigOption = None,
) -> None:
    """Post Alertmanager payload files to a running server (--server, else the config's), as
    Alertmanager would."""
    import httpx

    from bot.replay import post_payloads

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


@app.command(cls=PlainCommand)
def demo(
    out: Annotated[Path, typer.Option(metavar="DIR", help="where to write the demo's output")] = Path("demo-output"),
) -> None:
    """Run Backout end to end on embedded defaults: no account, no config."""
    from bot.demo import run_demo

    raise typer.Exit(run_demo(out=out, echo=typer.echo))


def main() -> None:
    app()
