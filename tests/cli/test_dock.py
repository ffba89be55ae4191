"""The dock: ``ship add`` as a scanning station (a keyboard-wedge scanner on stdin), ``ship
show`` and ``ship remove``; and every form in which a person types or a scanner sends a code
(GS1 text with parentheses, lower case, a UTF-8 BOM, ';' CSV, a binary file)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.store import packed_pallets
from edge.domain.payloads import BatchLabel, PayloadCodec
from edge.domain.serials import SerialScheme, scheme_for
from edge.store.database import Store
from line_config.loading import parse_config
from tests.conftest import SMALL_SITE

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def dock(tmp_path: Path) -> tuple[Cli, list[str], list[str], list[str]]:
    """Three packed pallets of lot L7 and an open shipment 1: the CLI, the pallets' scans
    (``00`` + SSCC), the cases' scans (GS1 DataMatrix) and the items' serials."""
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE)
    db = tmp_path / "c.db"
    site = parse_config(SMALL_SITE)
    codec = PayloadCodec(site.lines[0], site.products)
    with Store(db, create=True) as store:
        items, pallets = packed_pallets(store, site, 3, "L7")
        cases = [r[0] for r in store.read().execute(
            "SELECT serial FROM codes WHERE level = 1 ORDER BY id")]
    label = BatchLabel("L7")

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config", str(config),
             "--operator", "dock1", *args], capture_output=True, text=True, cwd=ROOT,
            input=stdin, timeout=60)

    assert cli("ship", "create", "--to", "D1", "--region", "east").returncode == 0
    return (cli, [codec.render("pallet", p, None, label) for p in pallets],
            [codec.render("case", c, site.products[0], label) for c in cases], items)


def test_a_scanner_gets_a_line_per_scan_as_it_happens_and_a_bad_scan_loses_nothing(
        dock: tuple[Cli, list[str], list[str], list[str]], tmp_path: Path) -> None:
    cli, pallets, cases, _ = dock
    with subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "--db", str(tmp_path / "c.db"), "--config",
         str(tmp_path / "site.yaml"), "--operator", "dock1", "ship", "add", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "COLUMNS": "80"}) as station:
        assert station.stdin is not None and station.stdout is not None
        answers = []
        for scan in (pallets[0], "GARBAGE!!", cases[0], pallets[0], f"(00){pallets[1][2:]}"):
            station.stdin.write(scan + "\r\n")  # a keyboard wedge ends a scan with Enter
            station.stdin.flush()
            answers.append(station.stdout.readline())  # answered before the next scan
        station.stdin.close()
        summary = station.stdout.read()
        assert station.wait(30) == 1  # something was refused
    assert answers[0].startswith(f"added pallet {pallets[0][2:]} (lot L7): 2 cases, 8 items")
    assert answers[0].rstrip().endswith("11 codes")
    assert answers[1].startswith("refused GARBAGE!!: ")
    assert answers[2].startswith("refused '011690123456789910L7\\x1d21")  # GS shown escaped
    assert "is on pallet" in answers[2] and "ship the pallet" in answers[2]
    assert answers[3].startswith(f"refused {pallets[0]}: ") and "already on open shipment 1" \
        in answers[3]
    assert answers[4].startswith(f"added pallet {pallets[1][2:]}")
    assert summary.strip() == ("2 added, 3 refused; shipment 1 holds 2 container(s): "
                               "2 pallets, 4 cases, 16 items")
    shown = json.loads(cli("ship", "show", "1", "--json").stdout)
    assert shown["codes"] == {"item": 16, "case": 4, "pallet": 2}
    assert [c["serial"] for c in shown["containers"]] == sorted(
        [pallets[0][2:], pallets[1][2:]])
    assert all(c["codes"] == {"item": 8, "case": 2, "pallet": 1} and c["lot"] == "L7"
               for c in shown["containers"])


def test_codes_given_as_arguments_are_taken_all_or_none(
        dock: tuple[Cli, list[str], list[str], list[str]]) -> None:
    cli, pallets, _, _ = dock
    refused = cli("ship", "add", "1", pallets[0], "NOT-A-CODE")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: nothing was added: ") and "NOT-A-CODE" in \
        refused.stderr
    assert json.loads(cli("ship", "show", "1", "--json").stdout)["containers"] == []
    both = cli("ship", "add", "1", pallets[0], pallets[1])
    assert both.returncode == 0, both.stderr
    assert both.stdout.count("added pallet") == 2
    removed = cli("ship", "remove", "1", pallets[0])
    assert removed.returncode == 0 and f"removed pallet {pallets[0][2:]}" in removed.stdout
    assert "shipment 1 holds 1 container(s): 1 pallet, 2 cases, 8 items" in removed.stdout
    again = cli("ship", "remove", "1", pallets[0])
    assert again.returncode == 1 and "is not on shipment 1" in again.stderr
    people = json.loads(cli("audit", "list", "--json").stdout)
    assert [e["action"] for e in people if e["action"].startswith("ship.")] == [
        "ship.create", "ship.add", "ship.add", "ship.remove"]
    assert {e["operator"] for e in people if e["action"].startswith("ship.")} == {"dock1"}
    shows = cli("ship", "show", "1")
    assert "in all: 1 pallet, 2 cases, 8 items (11 codes)" in shows.stdout


def test_every_form_a_person_types_finds_the_same_code(
        dock: tuple[Cli, list[str], list[str], list[str]]) -> None:
    cli, pallets, cases, items = dock
    case_serial = json.loads(cli("inspect", cases[0], "--json").stdout)["serial"]
    case_hri = f"(01)16901234567899(10)L7(21){case_serial}"
    for typed in (pallets[0], f"(00){pallets[0][2:]}", pallets[0][2:]):
        shown = json.loads(cli("inspect", typed, "--json").stdout)
        assert shown["serial"] == pallets[0][2:] and shown["level"] == "pallet"
    case = json.loads(cli("inspect", case_hri, "--json").stdout)
    assert case["level"] == "case" and case["serial"] == case_serial
    for typed in (items[0].lower(), "\ufeff" + items[0], f" {items[0]} "):
        shown = json.loads(cli("inspect", typed, "--json").stdout)
        assert shown["serial"] == items[0], typed


def test_import_files_from_notepad_and_excel_and_a_binary_one(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE)
    site = parse_config(SMALL_SITE)
    db = tmp_path / "c.db"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config", str(config),
             *args], capture_output=True, text=True, cwd=ROOT, timeout=60)

    assert cli("init").returncode == 0
    scheme = scheme_for(site.lines[0].codes.item)
    assert isinstance(scheme, SerialScheme)
    serials = scheme.draw(6)
    notepad = tmp_path / "notepad.txt"
    notepad.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(serials[:3]).encode() + b"\r\n")
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbfno;serial;note\r\n" + b"".join(
        f"{n};{s};x\r\n".encode() for n, s in enumerate(serials[3:], 1)))
    for path in (notepad, excel):
        done = cli("pool", "import", "--level", "item", str(path))
        assert done.returncode == 0, done.stderr
        assert "imported 3 item codes" in done.stdout
    binary = tmp_path / "codes.xlsx"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4)
    refused = cli("pool", "import", "--level", "item", str(binary))
    assert refused.returncode == 1
    assert "is a binary file" in refused.stderr and "truncated" not in refused.stderr
    stats = json.loads(cli("pool", "stats", "--json").stdout)
    assert {s["level"]: s["available"] for s in stats}["item"] == 6


def test_confirm_and_cancel_say_how_many_codes_and_which_manifest_and_inspect_says_it_in_words(
        dock: tuple[Cli, list[str], list[str], list[str]]) -> None:
    cli, pallets, _, _ = dock
    assert cli("keys", "generate").returncode == 0
    assert cli("ship", "add", "1", pallets[0]).returncode == 0
    confirmed = cli("ship", "confirm", "1")
    assert confirmed.returncode == 0, confirmed.stderr
    assert re.search(r"^shipment 1 confirmed: 11 codes activated; activation manifest 1 "
                     r"\([0-9a-f-]{36}, 11 codes\) queued for the cloud$", confirmed.stdout,
                     re.M), confirmed.stdout
    cancelled = cli("ship", "cancel", "1", "--reason", "truck did not leave")
    assert re.search(r"^shipment 1 cancelled: 11 codes back to COMMISSIONED \(not activated\); "
                     r"deactivation manifest 2 \([0-9a-f-]{36}, 11 codes\) queued",
                     cancelled.stdout, re.M), cancelled.stdout
    assert cli("ship", "create", "--to", "D2", "--region", "west").returncode == 0
    dropped = cli("ship", "cancel", "2", "--reason", "wrong truck")
    assert "it was open, no code had been activated and no manifest is issued" in dropped.stdout
    shown = cli("inspect", pallets[0]).stdout
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"
    assert re.search(rf"^  {stamp}  put on shipment 1$", shown, re.M), shown
    assert re.search(rf"^  {stamp}  2 packed in, closed$", shown, re.M), shown
    assert "{" not in shown  # no Python dict reprs
