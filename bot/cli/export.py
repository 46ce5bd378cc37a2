"""Output for people outside the terminal: `export` (Markdown, JSON, HTML, PNG) and `report`
(the team's numbers and the ranking's accuracy)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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
)


class Format(StrEnum):  # bot.services.export.ExportFormat's values
    MARKDOWN = "markdown"
    JSON = "json"
    HTML = "html"
    PNG = "png"


report_app = typer.Typer(help="Numbers across incidents (`backout report`), and the ranking's accuracy.",
                         invoke_without_command=True, cls=PlainGroup)
app.add_typer(report_app, name="report")
SinceOption = Annotated[str, typer.Option(metavar="DURATION", help="incidents opened within this long (30d, 12h)")]


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
        content = chosen.export(incident_ref(incident), format=chosen_format.value)
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
        echo_json({"incident": incident_ref(incident), "format": chosen_format.value, "output": str(output)})
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
    from bot.cli.render import report_text
    from bot.domain.durations import parse_duration

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


