"""The operator's language: Simplified Chinese where the locale is ``zh_CN`` (or ``--lang zh``),
English otherwise, from gettext catalogs compiled at install (``edge/locale``).

Only text for people is translated: the live view, refusals and errors, reports, the help of
the everyday commands. JSON output and logs stay English, as do the domain's own messages
(``str(exc)``): an error carries its English template and fields, and the terminal shows the
template in the operator's language (:func:`error_text`).
"""

from __future__ import annotations

import gettext
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.domain.errors import CodelineError

DOMAIN = "codeline"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = {"en": "English", "zh": "简体中文"}

_catalog: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


class CatalogMissing(CodelineError):
    """Chinese was asked for and its catalog was not compiled (an install step skipped)."""


class UnknownLanguage(CodelineError):
    """``--lang`` names a language codeline does not speak."""


def from_environment(environ: dict[str, str] | None = None) -> str:
    """``zh`` when the locale the user runs in is Chinese, else ``en`` (gettext's order:
    LANGUAGE, LC_ALL, LC_MESSAGES, LANG)."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.split(":")[0].lower().startswith("zh") else "en"
    return "en"


def lang_in(argv: Sequence[str]) -> str | None:
    """The ``--lang`` a command line gives (before any command module loads, so that their
    help is read in that language), or None."""
    for n, arg in enumerate(argv):
        if arg == "--":
            return None
        if arg == "--lang" and n + 1 < len(argv):
            return argv[n + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def use(language: str) -> None:
    """Speak ``language`` (``en`` or ``zh``) from now on in this process."""
    global _catalog, _language
    if language not in LANGUAGES:
        raise UnknownLanguage("--lang {language!r}: expected one of {known}",
                              language=language, known=", ".join(LANGUAGES))
    if language == "en":
        _catalog, _language = gettext.NullTranslations(), "en"
        return
    try:
        _catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"])
    except OSError:
        _catalog, _language = gettext.NullTranslations(), "en"
        raise CatalogMissing(
            "the Chinese catalog is not compiled ({path} is missing): reinstall codeline with "
            "the README's set-up command", path=LOCALE_DIR / "zh_CN" / "LC_MESSAGES" /
            f"{DOMAIN}.mo") from None
    _language = language


def choose(asked: str | None) -> None:
    """The language for this command: ``--lang`` when given (an error if it cannot be had),
    else the locale's (English, with a warning, when its catalog is missing)."""
    if asked is not None:
        use(asked)
        return
    try:
        use(from_environment())
    except CatalogMissing as exc:
        sys.stderr.write(f"warning: {exc}; speaking English\n")


def language() -> str:
    return _language


def _(message: str) -> str:
    """``message`` in the operator's language."""
    return _catalog.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks ``message`` for the catalog; it is translated where it is shown."""
    return message


def error_text(exc: BaseException) -> str:
    """An error as the operator reads it: a codeline error's template in their language
    with its fields filled; anything else as it is."""
    if not isinstance(exc, CodelineError) or _language == "en":
        return str(exc)
    translated = _catalog.gettext(exc.template)
    fields = {name: error_text(value) if isinstance(value, CodelineError) else value
              for name, value in exc.fields.items()}
    try:
        return translated.format(**fields) if fields else translated
    except (KeyError, IndexError, ValueError):  # a catalog that lost a field: English
        return str(exc)


# Words the terminal shows from data (levels, states of batches, containers and shipments,
# batch actions): named here so that the catalog holds them.
WORDS_FROM_DATA = (
    N_("item"), N_("case"), N_("pallet"),
    N_("created"), N_("running"), N_("stopped"), N_("closed"), N_("open"),
    N_("confirming"), N_("confirmed"), N_("cancelled"),
    N_("create"), N_("start"), N_("stop"), N_("close"),
)
