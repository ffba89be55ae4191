"""What every command shares: where the database and config are, who the operator is, output."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from edge.domain.errors import CodelineError

if TYPE_CHECKING:  # loaded by the commands that need them, not by every command
    from edge.store.database import Store
    from line_config.models import Line, SiteConfig

# Into a pipe or a file nothing is wrapped at 80 columns nor cut: ids and tables stay whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
err_console = Console(stderr=True, highlight=False,
                      width=None if sys.stderr.isatty() else 1000)


class UsageProblem(CodelineError):
    """The command line asks for something it did not say (a missing --config, say)."""


@dataclass
class Ctx:
    """Global options, resolved lazily so that commands needing no config do not load one."""

    db_option: Path | None
    config_option: Path | None
    operator: str

    @cached_property
    def config(self) -> SiteConfig:
        from line_config.loading import load_config

        if self.config_option is None:
            raise UsageProblem(
                "this command needs the site configuration: pass --config FILE "
                "or set CODELINE_CONFIG"
            )
        return load_config(self.config_option)

    @property
    def has_config(self) -> bool:
        return self.config_option is not None

    def resolve(self, value: str) -> Path:
        """A path from the config: a relative one is taken from the config file's folder
        (never from wherever the command was started), made absolute."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.config_option is not None:
            path = self.config_option.resolve().parent / path
        return path.absolute()

    @property
    def db_path(self) -> Path:
        if self.db_option is not None:
            return self.db_option.absolute()
        if self.config_option is not None:
            return self.resolve(self.config.store.path)
        return Path("codeline.db").absolute()

    def store(self, *, create: bool = False, cache_mb: int = 256) -> Store:
        """The site's database; commands that stream a large read pass a small cache."""
        from edge.store.database import Store

        return Store(self.db_path, create=create, cache_mb=cache_mb)

    def reader(self, *, cache_mb: int = 256) -> Store:
        """The database opened read-only, for commands that only look: nothing is written
        nor created beside it, so an archive on read-only media opens too."""
        from edge.store.database import Store

        return Store(self.db_path, cache_mb=cache_mb, read_only=True)

    def line(self, line_id: str | None) -> Line:
        lines = self.config.lines
        if line_id is None:
            if len(lines) == 1:
                return lines[0]
            raise UsageProblem("the config has several lines: pass --line {choices}",
                               choices="|".join(x.id for x in lines))
        try:
            return self.config.line(line_id)
        except KeyError:
            raise UsageProblem(
                "no line {line_id!r} in the config; lines: {lines}", line_id=line_id,
                lines=', '.join(x.id for x in lines)
            ) from None

    def serial_of(self, text: str) -> str:
        """The serial a scanned payload or typed serial stands for."""
        from edge.domain.errors import InvalidPayload
        from edge.domain.payloads import PayloadCodec

        text = text.strip()
        if not self.has_config:
            return text
        from edge.cli.i18n import error_text

        refusals: list[InvalidPayload] = []
        for line in self.config.lines:
            try:
                return PayloadCodec(line, self.config.products).parse(text).serial
            except InvalidPayload as exc:
                refusals.append(exc)
        if len(refusals) == 1:
            raise refusals[0]
        raise InvalidPayload("not a code of any line: {problems}",
                             problems="; ".join(error_text(r) for r in refusals))


JSON_HELP = "print JSON for scripts"
LINE_HELP = "line id (may be left out when the config has one line)"


def ctx_of(typer_ctx: typer.Context) -> Ctx:
    obj = typer_ctx.find_root().obj
    assert isinstance(obj, Ctx)
    return obj


def default_operator() -> str:
    try:
        return os.environ.get("CODELINE_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON for scripts (in the site's outside vocabulary: RFC 3339 UTC
    times), or call ``human`` to render it for people."""
    if as_json:
        from sync import vocabulary

        sys.stdout.write(json.dumps(vocabulary.public(data), indent=2, ensure_ascii=False)
                         + "\n")
    else:
        human()


def ms_text(ms: int | None) -> str:
    """A stored millisecond timestamp as local time with its zone,
    ``2026-11-24 14:02:11+08:00`` (people read local time; the offset keeps it unambiguous)."""
    if not ms:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000).astimezone().isoformat(" ", "seconds")


class LevelChoice(StrEnum):
    """A packaging level, as typed on the command line."""

    item = "item"
    case = "case"
    pallet = "pallet"
