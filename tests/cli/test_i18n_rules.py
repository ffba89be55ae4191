"""Rules of the operator's text: every error message is a template whose fields the raise
site fills exactly, and every message has its Chinese translation."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from edge.cli import catalog

ROOT = Path(__file__).resolve().parents[2] / "edge"


def test_every_error_template_names_exactly_the_fields_its_raise_gives() -> None:
    errors = catalog._error_classes()
    wrong: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in errors:
                continue
            where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
            first = node.args[0] if node.args else None
            if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
                wrong.append(f"{where}: the message is not a literal template")
                continue
            named = {field for _, field, _, _ in string.Formatter().parse(first.value)
                     if field is not None}
            given = {k.arg for k in node.keywords if k.arg is not None}
            if named != given:
                wrong.append(f"{where}: template names {sorted(named)}, raise gives "
                             f"{sorted(given)}")
    assert wrong == []


def test_every_message_of_the_operators_text_is_translated_to_chinese() -> None:
    assert catalog.missing("zh_CN") == []
