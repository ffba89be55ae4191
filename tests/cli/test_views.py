"""The named views (``codes_v`` and friends) as a person sees them in sqlite-utils, a tool of
their own: names instead of numbers, RFC 3339 times, lot and container."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bench.store import packed_pallets
from edge.domain.lifecycle import Reason, State
from edge.store import schema
from edge.store.database import Store
from line_config.models import LEVELS, SiteConfig

RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def sqlite_utils(*args: str) -> list[dict[str, object]]:
    tool = Path(sys.executable).parent / "sqlite-utils"
    out = subprocess.run([str(tool), *args], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return list(json.loads(out))


def test_the_views_name_states_levels_and_reasons_as_the_domain_does() -> None:
    assert tuple(s.name for s in State) == schema._STATE_NAMES
    assert schema._LEVEL_NAMES == LEVELS
    assert {r.value: r.label for r in Reason} == schema._REASON_NAMES


def test_codes_v_reads_as_words_in_sqlite_utils(tmp_path: Path, site: SiteConfig) -> None:
    db = tmp_path / "c.db"
    with Store(db, create=True) as store:
        items, pallets = packed_pallets(store, site, 1, "LOT-7")
    rows = sqlite_utils("query", str(db), "SELECT * FROM codes_v WHERE serial = :s",
                        "-p", "s", items[0])
    assert len(rows) == 1
    row = rows[0]
    assert row["level"] == "item" and row["state"] == "COMMISSIONED" and row["lot"] == "LOT-7"
    assert row["line"] == site.lines[0].id and row["product"] == site.products[0].id
    case = sqlite_utils("query", str(db), "SELECT * FROM codes_v WHERE serial = :s", "-p", "s",
                        str(row["container"]))[0]
    assert case["level"] == "case" and case["container"] == pallets[0]
    assert re.match(RFC3339, str(row["printed_at"])), row["printed_at"]
    boxes = sqlite_utils("rows", str(db), "containers_v")
    assert {b["level"] for b in boxes} == {"case", "pallet"}
    assert all(b["status"] == "closed" for b in boxes)
    batch = sqlite_utils("rows", str(db), "batches_v")[0]
    assert batch["lot"] == "LOT-7" and re.match(RFC3339, str(batch["started_at"]))
    audit = sqlite_utils("rows", str(db), "audit_v")
    assert audit and all(re.match(RFC3339, str(a["at"])) for a in audit)
