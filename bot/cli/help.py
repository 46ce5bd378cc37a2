"""The CLI's help in the shape people know from git and kubectl: `--server URL`, `INCIDENT`, the
commands in alphabetical order, an environment variable named once. Typer's own help prints
Python types (`<bool>`, `<list[Path]>`) and `{incident}`; these classes replace only the help,
while parsing, errors and completion stay Typer's."""

from __future__ import annotations

from enum import Enum

from typer import _click  # Typer's bundled click: the Context and HelpFormatter its commands take
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _value_name(param: TyperArgument | TyperOption, ctx: _click.Context) -> str:
    """The metavar given, else the choices (`[open|resolved]`), else the parameter's name."""
    if param.metavar is not None:
        return param.metavar
    if param.type_descriptor.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in param.type_descriptor.choices or ()) + "]"
    return (param.name or "value").upper()


def _argument_name(param: TyperArgument, ctx: _click.Context) -> str:
    name = _value_name(param, ctx) + ("..." if param.nargs != 1 else "")
    return name if param.required else f"[{name}]"


def _option_record(param: TyperOption, ctx: _click.Context) -> tuple[str, str]:
    """`-c, --config FILE` and its help, then the env var and a default worth showing."""
    names = ", ".join(sorted(param.opts, key=len)) + "".join(f" / {name}" for name in param.secondary_opts)
    if not param.is_flag and not param.count:
        names += f" {_value_name(param, ctx)}"
    extra = [f"env var: {param.envvar}"] if isinstance(param.envvar, str) else []
    default = param.default
    if param.show_default and default not in (None, False, "", ()) and not callable(default):
        extra.append(f"default: {default.value if isinstance(default, Enum) else default}")
    help_text = param.help or ""
    return names, f"{help_text} [{'; '.join(extra)}]".strip() if extra else help_text


def _usage_pieces(command: _click.Command, ctx: _click.Context) -> list[str]:
    """`[OPTIONS] INCIDENT COMMIT`, `FILES...`."""
    pieces = [command.options_metavar] if command.options_metavar else []
    return pieces + [_argument_name(p, ctx) for p in command.get_params(ctx) if isinstance(p, TyperArgument)]


def _format_params(command: _click.Command, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
    shown = [param for param in command.get_params(ctx) if not getattr(param, "hidden", False)]
    arguments = [(_argument_name(p, ctx).strip("[]"), p.help or "") for p in shown if isinstance(p, TyperArgument)]
    options = [_option_record(p, ctx) for p in shown if isinstance(p, TyperOption)]
    for title, records in (("Arguments", arguments), ("Options", options)):
        if records:
            with formatter.section(title):
                formatter.write_dl(records)


class PlainCommand(TyperCommand):
    """A command whose help names values as a person types them."""

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _format_params(self, ctx, formatter)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _click.Command.format_help(self, ctx, formatter)


class PlainGroup(TyperGroup):
    """A group whose help lists its commands alphabetically, with `PlainCommand`'s records."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return sorted(self.commands)

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _click.Command.format_help(self, ctx, formatter)
