"""The codeline command as an operator uses it: a real process, a real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_SITE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE)
    db = tmp_path / "c.db"

    def run(
        *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config", str(config),
             "--operator", "alice", *args],
            capture_output=True, text=True, cwd=ROOT, input=stdin, timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_help_lists_every_operator_command() -> None:
    out = subprocess.run([sys.executable, "-m", "edge.cli.main", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120).stdout
    for command in ("init", "config", "pool", "batch", "inspect", "agg", "ship", "report",
                    "audit", "demo"):
        assert command in out


def test_a_batch_from_pool_to_shipment_through_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    cli("pool", "generate", "--level", "item", "--count", "40")
    cli("pool", "generate", "--level", "case", "--count", "4")
    stats = json.loads(cli("pool", "stats", "--json").stdout)
    assert {s["level"]: s["available"] for s in stats}["item"] == 40
    cli("batch", "create", "--product", "p1", "--lot", "L1")
    cli("batch", "start", "1")
    listed = json.loads(cli("batch", "list", "--json").stdout)
    assert listed[0]["state"] == "running"
    bad = cli("batch", "close", "1", ok=False)
    assert bad.returncode == 1 and "running" in bad.stderr and "Traceback" not in bad.stderr
    cli("batch", "stop", "1")
    cli("batch", "close", "1")
    report = json.loads(cli("report", "batch", "1", "--json").stdout)
    assert report["reconciled"] is True
    made = report["production"]
    assert made["operators"] == {"batch.start": "alice", "batch.stop": "alice",
                                 "batch.close": "alice"}
    assert made["started_at"].endswith("Z") and made["running_s"] > 0
    assert not made["running_now"]
    shown = cli("report", "batch", "1").stdout
    assert "; start by alice, stop by alice, close by alice" in shown
    assert "started 20" in shown and "stopped 20" in shown and "; ran 0:00:0" in shown
    audit = json.loads(cli("audit", "verify", "--json").stdout)
    assert audit["ok"] and audit["entries"] >= 6
    entries = json.loads(cli("audit", "list", "--json").stdout)
    assert {e["operator"] for e in entries} == {"alice"}
    cli("ship", "create", "--to", "D1", "--region", "east")
    added = cli("ship", "add", "1", stdin="NOTACODE\n", ok=False)
    assert added.returncode == 1 and "refused NOTACODE: not a serial" in added.stdout
    shipped = json.loads(cli("ship", "list", "--json").stdout)
    assert shipped[0]["status"] == "open" and shipped[0]["containers"] == 0


@pytest.mark.parametrize("args, words", [
    (("pool", "generate", "--level", "crate", "--count", "5"), "crate"),
    (("pool", "generate", "--level", "item", "--count", "0"), "greater than or equal to 1"),
    (("batch", "start", "abc"), "valid integer"),
    (("batch", "create", "--product", "p1", "--lot", "'; DROP TABLE codes;--"), "lot"),
    (("inspect", "ＡＢＣ'\"; --"), "not a"),
    (("inspect", "https://[x"), "not a code"),
    (("inspect", "]\x1d"), "not a"),
    (("batch", "create", "--product", "p1", "--lot", "L", "--expiry", "31/12/2026"), "YYYY-MM-DD"),
])
def test_bad_arguments_say_what_was_expected_without_a_traceback(cli, args, words) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    result = cli(*args, ok=False)
    assert result.returncode != 0
    assert words in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("batch", "start", "abc"), ("nothing",),
                                  ("pool", "generate", "--level", "item", "--count", "0"),
                                  ("ship", "create")])
def test_a_usage_error_is_one_error_line_and_exit_2(cli, args) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, ok=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], lines


def test_version_and_a_group_alone_show_and_exit_0(cli) -> None:  # type: ignore[no-untyped-def]
    version = cli("--version")
    assert version.stdout.startswith("codeline ") and version.returncode == 0
    group = cli("ship")
    assert group.returncode == 0 and "create" in group.stdout


def test_output_into_a_pipe_is_never_wrapped_or_cut(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    name = "DISTRIBUTOR-" + "EAST-" * 9 + "END"
    cli("ship", "create", "--to", name, "--region", "east")
    listed = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "--db", str(tmp_path / "c.db"), "ship", "list"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "40"},
        timeout=120).stdout
    assert name in listed, listed


def test_missing_database_says_how_to_create_it(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "edge.cli.main", "--db",
                             str(tmp_path / "none.db"), "batch", "list"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1 and "codeline init" in result.stderr


def test_demo_runs_end_to_end_and_reconciles(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = subprocess.run([sys.executable, "-m", "edge.cli.main", "demo", "--db", str(db)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "reconciled" in result.stdout and "NOT" not in result.stdout
    assert "the physical line equals the database: every item, case and pallet" in result.stdout
    # stderr carries JSON log lines only: no binding's leak report, no worker's traceback
    assert all(line.startswith("{") for line in result.stderr.splitlines()), result.stderr
    before, after = result.stdout.split("shipped pallet")
    assert "→ not_activated" in before and "→ activated" not in before
    assert after.count("→ activated") == 3 and "DIVERSION" in after
    assert "early scans: line L1, batch 1" in after
    shown = subprocess.run([sys.executable, "-m", "edge.cli.main", "--db", str(db), "report",
                            "batch", "1", "--json"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
    report = json.loads(shown.stdout)
    assert report["reconciled"] and report["levels"]["item"]["packed"] == 480
    assert report["levels"]["pallet"]["active"] == 1


def test_every_option_has_help_and_the_shell_completes_commands() -> None:
    from typer._click import Context

    from edge.cli.main import command

    undocumented: list[str] = []

    def walk(group: Any, path: str) -> None:
        for param in group.params:
            if param.param_type_name == "option" and not param.help:
                undocumented.append(f"{path} {param.opts[0]}")
        if hasattr(group, "list_commands"):
            ctx = Context(group)
            for name in group.list_commands(ctx):
                walk(group.get_command(ctx, name), f"{path} {name}")

    walk(command(), "codeline")
    assert undocumented == []
    shown = subprocess.run([sys.executable, "-m", "edge.cli.main", "ship", "create", "--help"],
                           capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={**os.environ, "COLUMNS": "200"}).stdout
    required = [line for line in shown.splitlines() if "--to " in line or "--region " in line]
    assert len(required) == 2 and all("[required]" in line for line in required)
    script = Path(sys.executable).parent / "codeline"
    completed = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, env={
        **os.environ, "_CODELINE_COMPLETE": "complete_bash", "COMP_WORDS": "codeline line st",
        "COMP_CWORD": "2"})
    assert completed.stdout.split() == ["start", "stop"]
    shown = subprocess.run([str(script), "--show-completion", "bash"], capture_output=True,
                           text=True, timeout=60).stdout
    assert "_codeline_completion" in shown
