"""Rules of the house that a reader cannot check by eye across the whole tree."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "drivers", "line_config", "sync", "simulators", "tests", "bench")
BLOCKING = {"run", "check_output", "check_call", "call"}


def test_every_child_process_the_code_waits_for_has_a_timeout() -> None:
    """A hung child must fail a test or a bench with a reason, not hang CI until it is
    killed from outside."""
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in BLOCKING
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "subprocess"
                        and not any(k.arg == "timeout" for k in node.keywords)):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == [], f"subprocess calls without a timeout: {missing}"
