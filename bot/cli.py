"""The `backout` command line."""

from __future__ import annotations

import getpass
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import structlog
import typer
import uvicorn

from bot import bootstrap
from bot.adapters.export.html import render_html
from bot.config import (
    ConfigError,
    Settings,
    config_warnings,
    find_config_file,
    load_playbooks,
    load_settings,
    playbook_warnings,
    serve_problems,
)
from bot.domain.durations import parse_duration
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, IncidentStatus, parse_incident_ref
from bot.domain.playbooks import playbook_named
from bot.domain.text import safe
from bot.domain.verdicts import VerdictKind
from bot.entrypoints.http import ExportFormat
from bot.entrypoints.scheduler import start_scheduler
from bot.replay import post_payloads
from bot.services import act as act_service
from bot.services import incidents as incident_service
from bot.services import verdicts as verdict_service
from bot.services.authors import notify_authors
from bot.services.changelog import refresh_changes
from bot.services.export import build_export, render_markdown
from bot.services.notify import incident_lines
from bot.services.presenters import incident_dict, incident_view_dict, ranking_dict
from bot.services.text import render_incident, render_incident_list, when

app = typer.Typer(help="Backout: what changed, and how to back it out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
incidents_app = typer.Typer(help="List and show incidents.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
report_app = typer.Typer(help="Reports across incidents.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(db_app, name="db")
app.add_typer(report_app, name="report")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="config file (else BACKOUT_CONFIG, else ./config.yaml)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
IdArgument = Annotated[str, typer.Argument(help="incident id: 7 or INC-7")]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def settings_or_exit(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(f"configuration error:\n{exc}", 2) from None


@contextmanager
def opened(config: Path | None, *, playbooks: bool = False) -> Iterator[bootstrap.App]:
    """The app on the configured database, for commands that read or change incidents."""
    try:
        built = bootstrap.build(settings_or_exit(config), playbooks=None if playbooks else [])
    except ConfigError as exc:
        raise fail(f"configuration error:\n{exc}", 2) from None
    try:
        yield built
    except BackoutError as exc:
        raise fail(f"error: {exc}") from None
    finally:
        built.close()


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class GracefulServer(uvicorn.Server):
    """uvicorn, stopping on SIGTERM or SIGINT without re-raising the signal afterwards (uvicorn does,
    which would end the process before the scheduler's running jobs finish and the store closes)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the HTTP server (webhook, API, metrics), the scheduler and, in Socket Mode, Slack."""
    settings = settings_or_exit(config)
    label = str(find_config_file(config) or "(defaults)")
    problems = serve_problems(settings, file=label)
    if problems:
        raise fail("refusing to start:\n" + "\n".join(str(p) for p in problems), 2)
    bootstrap.configure_logging(settings.logging)
    try:
        built = bootstrap.build(settings)
    except ConfigError as exc:
        raise fail(f"configuration error:\n{exc}", 2) from None
    except BackoutError as exc:
        raise fail(f"cannot start: {exc}", 1) from None
    warnings = [*config_warnings(settings, file=label), *playbook_warnings(settings, built.ctx.playbooks, file=label)]
    for warning in warnings:
        structlog.get_logger(__name__).warning("config.warning", key=warning.key, reason=warning.reason)
    bootstrap.elect_leader(built)
    scheduler = start_scheduler(built.ctx)
    socket_mode = None
    if built.ctx.slack is not None and settings.slack.mode == "socket" and settings.slack.app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        socket_mode = SocketModeHandler(built.ctx.slack.app, settings.slack.app_token.get_secret_value())
        socket_mode.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
    server = GracefulServer(uvicorn.Config(built.http, host=settings.server.host, port=settings.server.port,
                                           log_level=settings.logging.level, access_log=False))
    try:
        server.run()
    finally:
        if socket_mode is not None:
            socket_mode.close()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
        structlog.get_logger(__name__).info("serve.stopping", detail="waiting for running jobs")
        scheduler.shutdown(wait=True)
        built.close()


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the config and every playbook; exit non-zero naming file, key and reason."""
    settings = settings_or_exit(config)
    label = str(find_config_file(config) or "(defaults)")
    problems = serve_problems(settings, file=label)
    try:
        playbooks = load_playbooks(settings.playbooks_dir,
                                   known_repos=[repo.name for repo in settings.repos])
    except ConfigError as exc:
        problems.extend(exc.problems)
        playbooks = []
    if problems:
        raise fail("\n".join(str(problem) for problem in problems), 2)
    for warning in [*config_warnings(settings, file=label), *playbook_warnings(settings, playbooks, file=label)]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"ok: {label}, {len(settings.repos)} repositories, "
               f"{len(playbooks)} playbooks in {settings.playbooks_dir}: "
               f"{', '.join(p.name for p in playbooks) or 'none'}")


@incidents_app.command("list")
def incidents_list(
    config: ConfigOption = None,
    status: Annotated[IncidentStatus | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List incidents, newest first."""
    with opened(config) as built:
        found = incident_service.list_incidents(store=built.ctx.store, status=status, limit=limit)
    if as_json:
        echo_json({"incidents": [incident_dict(incident) for incident in found]})
    else:
        typer.echo(render_incident_list(found))


@incidents_app.command("show")
def incidents_show(incident: IdArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show one incident with its alerts and timeline."""
    with opened(config) as built:
        view = incident_service.get_incident(store=built.ctx.store, incident_id=_ref(incident))
    if as_json:
        echo_json(incident_view_dict(view))
    else:
        typer.echo(render_incident(view))


def _change(incident: str, config: Path | None, target: IncidentStatus, note: str = "") -> None:
    with opened(config) as built:
        result = incident_service.change_status(
            store=built.ctx.store, incident_id=_ref(incident), target=target, actor=Actor.USER,
            actor_id=operator(), now=built.ctx.clock(), note=note,
        )
    typer.echo(result.message)


@app.command()
def ack(incident: IdArgument, config: ConfigOption = None) -> None:
    """Acknowledge an incident."""
    _change(incident, config, IncidentStatus.ACKNOWLEDGED)


@app.command()
def resolve(
    incident: IdArgument,
    config: ConfigOption = None,
    note: Annotated[str, typer.Option(help="why it is resolved")] = "",
) -> None:
    """Resolve an incident, with an optional note."""
    _change(incident, config, IncidentStatus.RESOLVED, note)


@app.command()
def suspects(incident: IdArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the ranked suspects of an incident, with the reasons."""
    with opened(config) as built:
        view = incident_service.get_incident(store=built.ctx.store, incident_id=_ref(incident))
    if as_json:
        echo_json(ranking_dict(view.ranking))
    else:
        typer.echo("\n".join([f"{view.incident.ref} {safe(view.incident.title)}",
                               *(safe(line, limit=2000) for line in incident_lines(view)[2:])]))


@app.command()
def rollback(
    incident: IdArgument,
    commit: Annotated[str | None, typer.Option(help="the commit to revert (default: top suspect)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    config: ConfigOption = None,
) -> None:
    """Revert a commit on a new branch `backout/INC-n/revert-<sha7>` and push it."""
    number = _ref(incident)
    with opened(config, playbooks=True) as built:
        ctx = built.ctx
        view = incident_service.get_incident(store=ctx.store, incident_id=number)
        playbook = playbook_named(ctx.playbooks, view.incident.playbook)
        if playbook is not None:
            report = refresh_changes(store=ctx.store, git=ctx.git, repos=[r.repo for r in playbook.repos],
                                     now=ctx.clock(), import_window=ctx.settings.git.import_window,
                                     applied=ctx.applied)
            for repo, reason in report.failed.items():
                typer.echo(f"warning: could not refresh {repo}: {reason}", err=True)
        plan = act_service.plan_rollback(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks,
                                         incident_id=number, sha=commit)
        change = plan.change
        typer.echo(f"Revert {change.short} on {change.repo}: {safe(change.subject)}")
        typer.echo(f"  by {safe(change.author)}, committed {when(change.committed_at)}")
        for reason in plan.reasons:
            typer.echo(f"  - {safe(reason)}")
        for warning in plan.warnings:
            typer.echo(f"  ! revert safety: {warning}")
        typer.echo(f"  branch: {plan.branch}")
        if not yes and not typer.confirm("Push this revert branch?", default=False):
            raise fail("rollback cancelled: nothing was pushed")
        result = act_service.rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier,
                                      incident_id=number, change=change, actor=Actor.USER,
                                      actor_id=operator(), now=ctx.clock(), forge=ctx.forge,
                                      reviewers=ctx.reviewers(view.incident.playbook),
                                      page_url=ctx.page_url(number))
    typer.echo(result.message)


@app.command()
def verdict(
    incident: IdArgument,
    commit: Annotated[str, typer.Argument(help="the change that caused it (a sha prefix), or 'none'")],
    not_it: Annotated[bool, typer.Option("--not", help="rule this change out instead")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Say what caused an incident: a change (`SHA`), not this change (`SHA --not`), or `none`."""
    if commit.lower() == "none":
        if not_it:
            raise fail("error: --not needs a commit, not 'none'", 2)
        kind, sha = VerdictKind.NO_CHANGE, None
    else:
        kind, sha = (VerdictKind.NOT_CULPRIT if not_it else VerdictKind.CULPRIT), commit
    number = _ref(incident)
    with opened(config, playbooks=True) as built:
        found = verdict_service.record_verdict(
            store=built.ctx.store, playbooks=built.ctx.playbooks, incident_id=number, kind=kind, sha=sha,
            actor=Actor.USER, actor_id=operator(), now=built.ctx.clock())
        notify_authors(store=built.ctx.store, forge=built.ctx.forge, playbooks=built.ctx.playbooks,
                       incident_id=number, now=built.ctx.clock(), page_url=built.ctx.page_url(number))
    if as_json:
        echo_json(found.model_dump(mode="json"))
    else:
        typer.echo(f"INC-{number}: {found.kind.value}" + (f" {found.sha[:12]} on {found.repo}" if found.sha else ""))


@report_app.command("accuracy")
def report_accuracy(
    since: Annotated[str, typer.Option(help="incidents opened within this long (30d, 12h)")] = "30d",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """How often the first suspect was right, from responders' verdicts: by service and playbook."""
    try:
        span = parse_duration(since)
    except ValueError as exc:
        raise fail(f"error: --since: {exc}", 2) from None
    with opened(config) as built:
        now = built.ctx.clock()
        report = verdict_service.accuracy_report(store=built.ctx.store, since=now - span, now=now)
    if as_json:
        echo_json(report)
        return
    typer.echo(f"Incidents opened in the last {since} with a verdict (precision@1: confident and right; "
               "recall@3: the culprit among the first three)")
    rows = [("overall", report["overall"])]
    rows += [(f"service {name}", figures) for name, figures in report["by_service"].items()]
    rows += [(f"playbook {name}", figures) for name, figures in report["by_playbook"].items()]
    typer.echo(f"{'':<28}{'incidents':>10}{'precision@1':>13}{'recall@3':>10}{'abstained':>11}")
    for label, figures in rows:
        cells = [figures["incidents"], figures["precision_at_1"], figures["recall_at_3"],
                 figures["abstention_no_cause"]]
        typer.echo(f"{safe(label)[:27]:<28}{cells[0]:>10}" + "".join(
            f"{'-' if value is None else f'{value:.2f}':>{width}}" for value, width in zip(cells[1:], (13, 10, 11),
                                                                                          strict=True)))


@app.command()
def export(
    incident: IdArgument,
    format: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.MARKDOWN,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    config: ConfigOption = None,
) -> None:
    """Export the incident for the post-incident review (Markdown, JSON or an HTML page)."""
    with opened(config) as built:
        view = incident_service.get_incident(store=built.ctx.store, incident_id=_ref(incident))
        document = build_export(view, generated_at=built.ctx.clock())
    if format is ExportFormat.MARKDOWN:
        text = render_markdown(document)
    elif format is ExportFormat.HTML:
        text = render_html(document)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}")


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Alertmanager payload files, in order")],
    url: Annotated[str | None, typer.Option(help="server base URL (default from the config)")] = None,
    config: ConfigOption = None,
) -> None:
    """Post Alertmanager payload files to a running server, as Alertmanager would."""
    settings = settings_or_exit(config)
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        payloads = [(path.name, path.read_bytes()) for path in files]
    except OSError as exc:
        raise fail(f"{exc.filename}: cannot read: {exc.strerror}") from None
    failed = 0
    try:
        for posted in post_payloads(base_url=base, settings=settings.alertmanager, payloads=payloads):
            failed += posted.status >= 300
            typer.echo(f"{posted.name}: {posted.status} {posted.body}")
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {base}: {exc}") from None
    if failed:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Migrate the database to the newest schema."""
    settings = settings_or_exit(config)
    try:
        revision = bootstrap.upgrade_database(settings)
    except BackoutError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"{bootstrap.describe_storage(settings)}: schema at {revision}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where to write the demo's output")] = Path("demo-output"),
) -> None:
    """Run Backout end to end on embedded defaults: no account, no config."""
    from bot.demo import run_demo

    raise typer.Exit(run_demo(out=out, echo=typer.echo))


def _ref(text: str) -> int:
    try:
        return parse_incident_ref(text)
    except BackoutError as exc:
        raise fail(f"error: {exc}") from None


def main() -> None:
    app()
