"""How a failed command ends: one line on stderr, never a traceback, and the README's exit code
(2 usage or configuration, 1 anything else). The root group sends every error through
`one_line_errors`, so no command needs a handler of its own to keep that promise; a command still
catches what it can say better (`no database at ...`) or give another code (3, the conflicted revert).

An exception nobody expected is a bug: its line names it, and `BACKOUT_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from typer import _click  # Typer's bundled click: the exceptions its parsing raises

from bot.cli.help import PlainGroup

if TYPE_CHECKING:
    from bot.config import ConfigError

EXIT_FAILED, EXIT_USAGE = 1, 2
DEBUG_VARIABLE = "BACKOUT_DEBUG"


def flat(text: str) -> str:
    """The text on one line: a server's or a driver's message may span several."""
    return " ".join(text.split())


def configuration_error(exc: ConfigError) -> str:
    """`configuration error: ` and every problem (file, key, line, reason), on one line."""
    return "configuration error: " + "; ".join(flat(str(problem)) for problem in exc.problems)


def explain(exc: Exception) -> tuple[str, int] | None:
    """The line to print for an error and the exit code; None for an error nobody expected."""
    if isinstance(exc, _click.exceptions.UsageError):
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        return f"error: {flat(exc.format_message())}{hint}", EXIT_USAGE
    if isinstance(exc, _click.exceptions.ClickException):
        return f"error: {flat(exc.format_message())}", exc.exit_code
    from bot.config import ConfigError
    from bot.domain.errors import BackoutError

    if isinstance(exc, ConfigError):
        return configuration_error(exc), EXIT_USAGE
    if isinstance(exc, BackoutError):
        return f"error: {flat(str(exc))}", EXIT_FAILED
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"error: {where}{exc.strerror}", EXIT_FAILED
    return None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turns any error into its line on stderr and `typer.Exit` with its code; an exit, an abort
    and the help shown for a bare group pass through."""
    try:
        yield
    except (typer.Exit, typer.Abort, _click.exceptions.NoArgsIsHelpError):
        raise
    except Exception as exc:
        explained = explain(exc)
        if explained is None and os.environ.get(DEBUG_VARIABLE):
            raise
        line, code = explained or (f"error: unexpected {type(exc).__name__}: {flat(str(exc))} (a bug: "
                                   f"{DEBUG_VARIABLE}=1 shows where; please report it)", EXIT_FAILED)
        typer.echo(line, err=True)
        raise typer.Exit(code) from exc


class RootGroup(PlainGroup):
    """The `backout` group: parsing its options and running any command go through `one_line_errors`."""

    def make_context(self, info_name: str | None, args: list[str], parent: _click.Context | None = None,
                     **extra: Any) -> _click.Context:
        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: _click.Context) -> Any:
        with one_line_errors():
            return super().invoke(ctx)
