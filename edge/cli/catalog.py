"""The message catalog of the operator's text: ``python -m edge.cli.catalog update`` gathers
every message (``_()``/``N_()``/``ngettext()`` calls, error templates, the help of the
everyday commands) and merges them into each language's ``.po``; ``check`` lists the
messages a language lacks. Translators edit the ``.po``; the install compiles it
(``setup.py``)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

import edge
from edge.cli.commands import COMMANDS, EVERYDAY
from edge.cli.i18n import DOMAIN, LOCALE_DIR
from edge.domain.errors import CodelineError

ROOT = Path(edge.__file__).resolve().parent
LANGUAGES = ("zh_CN",)


def _error_classes() -> set[str]:
    """The names of every codeline error class: their first argument is a message."""
    for info in pkgutil.walk_packages([str(ROOT)], "edge."):
        importlib.import_module(info.name)
    found: set[str] = set()
    todo: list[type] = [CodelineError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _help_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every help the everyday commands and the global options show."""
    from typer._click import Command, Context

    from edge.cli.main import _load, command

    def walk(cmd: Command, path: str) -> Iterator[tuple[str, str]]:
        if cmd.help:
            yield path, cmd.help
        for param in cmd.params:
            text = getattr(param, "help", None)
            if text:
                yield f"{path} {param.name}", text
        if hasattr(cmd, "list_commands"):
            ctx = Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
                if sub is not None:
                    yield from walk(sub, f"{path} {name}")

    root = command()
    for param in root.params:
        text = getattr(param, "help", None)
        if text:
            yield f"codeline {param.name}", text
    for name in COMMANDS:
        if name in EVERYDAY:
            yield from walk(_load(name), f"codeline {name}")


def template() -> Catalog:
    """Every message of the operator's text, with where it comes from."""
    keywords: dict[str, object] = {"_": None, "N_": None, "ngettext": (1, 2)}
    keywords.update({name: None for name in _error_classes()})
    catalog = Catalog(project="codeline", domain=DOMAIN, charset="utf-8")
    for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT, keywords=keywords):  # type: ignore[arg-type]
        catalog.add(message, locations=[(f"edge/{filename}", lineno)])
    for where, text in _help_texts():
        catalog.add(text, auto_comments=[where])
    return catalog


def _po(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def missing(language: str, pot: Catalog | None = None) -> list[str]:
    """The messages ``language``'s catalog does not translate."""
    pot = template() if pot is None else pot
    with _po(language).open("rb") as f:
        po = read_po(f)
    out = []
    for message in pot:
        if not message.id:
            continue
        found = po.get(message.id)
        if found is None or not found.string or found.fuzzy or (
                isinstance(found.string, tuple) and not all(found.string)):
            out.append(message.id if isinstance(message.id, str) else message.id[0])
    return out


def update() -> None:
    """Merge every message into each language's catalog (new ones untranslated, gone ones
    dropped)."""
    pot = template()
    for language in LANGUAGES:
        path = _po(language)
        if path.exists():
            with path.open("rb") as f:
                po = read_po(f, locale=language)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            po = Catalog(locale=language, domain=DOMAIN, project="codeline", charset="utf-8")
        po.update(pot, no_fuzzy_matching=True)
        with path.open("wb") as f:
            write_po(f, po, width=100, ignore_obsolete=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["update", "check"])
    args = parser.parse_args()
    if args.action == "update":
        update()
        return
    pot = template()
    lacking = {language: missing(language, pot) for language in LANGUAGES}
    for language, messages in lacking.items():
        for message in messages:
            print(f"{language}: untranslated: {message!r}")
    sys.exit(1 if any(lacking.values()) else 0)


if __name__ == "__main__":
    main()
