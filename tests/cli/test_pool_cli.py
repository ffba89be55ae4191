"""``pool segments`` and ``pool retire``: a segment imported by mistake is withdrawn (audited)
and can be imported again where it belongs; one whose codes were reserved is refused and the
database is left exactly as it was."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bench.store import packed_pallets
from edge.domain.serials import SerialScheme, scheme_for
from edge.store.database import Store
from line_config.loading import parse_config
from tests.conftest import SMALL_SITE

ROOT = Path(__file__).resolve().parents[2]


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def test_a_mistaken_import_is_withdrawn_and_a_used_segment_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(SMALL_SITE)
    site = parse_config(SMALL_SITE)
    db = tmp_path / "c.db"
    with Store(db, create=True) as store:
        packed_pallets(store, site, 1, "L1")  # segments 1-3, all reserved

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config", str(config),
             "--operator", "eng1", *args], capture_output=True, text=True, cwd=ROOT,
            timeout=60)

    scheme = scheme_for(site.lines[0].codes.item)
    assert isinstance(scheme, SerialScheme)
    wrong = tmp_path / "case-codes.txt"
    wrong.write_text("\n".join(scheme.draw(25)) + "\n")
    assert cli("pool", "import", "--level", "item", str(wrong)).returncode == 0
    listed = json.loads(cli("pool", "segments", "--json").stdout)
    mistaken = listed[-1]
    assert (mistaken["source"], mistaken["origin"], mistaken["codes"],
            mistaken["available"]) == ("imported", "case-codes.txt", 25, 25)

    before = dump(db)
    used = cli("pool", "retire", "1", "--reason", "test")
    assert used.returncode == 1 and "already reserved for printing" in used.stderr
    missing = cli("pool", "retire", str(mistaken["id"]))
    assert missing.returncode == 2 and "--reason" in missing.stderr
    assert dump(db) == before  # refused: nothing changed

    done = cli("pool", "retire", str(mistaken["id"]), "--reason", "item file, meant for cases")
    assert done.returncode == 0, done.stderr
    assert f"segment {mistaken['id']} withdrawn: 25 item codes of line L1" in done.stdout
    after = json.loads(cli("pool", "segments", "--json").stdout)[-1]
    assert after["codes"] == 0 and after["retire_reason"] == "item file, meant for cases"
    again = cli("pool", "import", "--level", "item", str(wrong))
    assert again.returncode == 0, again.stderr  # the codes may come back where they belong
    entries = json.loads(cli("audit", "list", "--json").stdout)
    retired = [e for e in entries if e["action"] == "pool.retire"]
    assert len(retired) == 1 and retired[0]["operator"] == "eng1"
    assert retired[0]["detail"]["codes"] == 25
    assert json.loads(cli("audit", "verify", "--json").stdout)["ok"] is True
