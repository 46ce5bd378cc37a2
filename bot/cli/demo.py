"""`backout demo`: Backout end to end on embedded defaults (the scenario lives in `bot.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.help import PlainCommand
from bot.cli.root import app


@app.command(cls=PlainCommand)
def demo(
    out: Annotated[Path, typer.Option(metavar="DIR", help="where to write the demo's output")] = Path("demo-output"),
) -> None:
    """Run Backout end to end on embedded defaults: no account, no config."""
    from bot.demo import run_demo

    raise typer.Exit(run_demo(out=out, echo=typer.echo))

