"""The ``codeline`` command: operator commands over the store, config tools, the demo.

Each command's module loads only when that command runs (:mod:`edge.cli.commands` is the
index), so that the everyday commands start in a fraction of a second.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

# typer carries its own click (0.29+): its usage errors, made one line here
from typer._click import Command, Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup

from edge.cli import i18n
from edge.cli.commands import COMMANDS, EVERYDAY
from edge.cli.context import Ctx, default_operator, err_console
from edge.cli.i18n import N_, _
from edge.domain.errors import CodelineError

# pydantic looks for plugins among every installed package's entry points at its first
# model; codeline uses none, and the search costs each command ~15 ms.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

HELP = N_("Controller of serialized coding lines: codes, batches, packing, shipments.")


class LazyGroup(TyperGroup):
    """The top-level group: a command's module is imported when that command is resolved;
    the list in ``--help`` is drawn from the index alone."""

    listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*self.commands, *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self.listing:
            return TyperCommand(name=cmd_name, help=_(entry.summary),
                                rich_help_panel=_(entry.panel))
        command = _load(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def _load(name: str) -> Command:
    """The click command of index entry ``name``, its help in the operator's language when
    it is an everyday command."""
    entry = COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attr)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    if name in EVERYDAY:
        _translate(command)
    return command


def _translate(command: Command) -> None:
    """A loaded command's help, its options' and its subcommands', in the operator's
    language (the English text is the catalog's key)."""
    if i18n.language() == "en":
        return
    if command.help:
        command.help = _(command.help)
    for param in command.params:
        text = getattr(param, "help", None)
        if text:
            param.help = _(text)  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _translate(sub)


app = typer.Typer(
    name="codeline",
    help=HELP,
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


@app.callback()
def main(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", envvar="CODELINE_DB",
                                   help=N_("database file (default: the config's "
                                           "store.path)")),
    config: Path | None = typer.Option(None, "--config", "-c", envvar="CODELINE_CONFIG",
                                       help=N_("site configuration (YAML)")),
    operator: str | None = typer.Option(None, "--operator", envvar="CODELINE_OPERATOR",
                                        help=N_("who is acting (default: the OS user)")),
    lang: str | None = typer.Option(None, "--lang", metavar="en|zh",
                                    help=N_("language of the text for people (default: "
                                            "from the locale; zh under zh_CN)")),
    version: bool = typer.Option(False, "--version", is_eager=True,
                                 callback=lambda shown: _print_version(shown),
                                 help=N_("print the version and exit")),
) -> None:
    """Global options shared by every command."""
    if lang is not None and lang != i18n.language():
        i18n.use(lang)
    ctx.obj = Ctx(db_option=db, config_option=config, operator=operator or default_operator())


def _print_version(shown: bool) -> None:
    if shown:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            typer.echo(f"codeline {installed('codeline')}")
        except PackageNotFoundError:
            typer.echo("codeline (not installed as a package)")
        raise typer.Exit(0)


def command() -> Command:
    """The whole ``codeline`` command in the operator's language (its subcommands load as
    they are run)."""
    root = typer.main.get_command(app)
    if i18n.language() != "en":
        from typer import rich_utils  # its panel titles are read as help is drawn

        rich_utils.ARGUMENTS_PANEL_TITLE = _("Arguments")
        rich_utils.OPTIONS_PANEL_TITLE = _("Options")
        rich_utils.COMMANDS_PANEL_TITLE = _("Commands")
        rich_utils.REQUIRED_LONG_STRING = _("[required]")
        rich_utils.DEFAULT_STRING = _("[default: {}]")
        rich_utils.ENVVAR_STRING = _("[env var: {}]")
        _translate(root)  # the subcommands load (and translate) as they are resolved
    return root


def run() -> None:
    """Console entry point: user mistakes become one readable line and a non-zero exit."""
    try:
        i18n.choose(i18n.lang_in(sys.argv[1:]))
        code = command().main(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a command group alone: its help, as --help shows it
        typer.echo(exc.format_message())
        sys.exit(0)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "codeline"
        _fail(f"{exc.format_message()} (see: {where} --help)", 2)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print(_("interrupted"), soft_wrap=True)
        sys.exit(130)
    except CodelineError as exc:
        _fail(i18n.error_text(exc), 1)
    except sqlite3.OperationalError as exc:
        _fail(f"database: {exc}", 1)
    except Exception as exc:
        status = _user_error_status(exc)
        if status is None:
            raise
        _fail(str(exc), status)
    sys.exit(code if isinstance(code, int) else 0)


# Errors a person can act on, by the module that defines them: a module not yet imported
# cannot have raised one, so none is imported here (that would slow every command).
_USER_ERRORS = (("line_config.loading", "ConfigError", 2), ("edge.store.database",
                "StoreError", 1), ("sync.errors", "SyncError", 1))


def _user_error_status(exc: Exception) -> int | None:
    for module, name, status in _USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return status
    return None


def _fail(message: str, code: int) -> None:
    err_console.print("[red]" + _("error:") + "[/red] " + escape(message), soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    run()
