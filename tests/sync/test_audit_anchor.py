"""The audit chain against the outside: each issued manifest carries the chain's head,
signed, and the cloud keeps it. `codeline audit verify --against MANIFEST` (a real process)
finds a log cut short or rewritten whole, which the chain alone cannot; `audit verify`
names code rows in a state no operation leaves them in (ACTIVE or back in the pool by
hand), and the reserve path never hands out a code that was reserved before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge.domain import audit, flow, history, shipments
from edge.domain.errors import CodeAlreadyUsed
from edge.domain.lifecycle import Reason
from edge.store.database import Store
from line_config.models import SiteConfig
from sync import keys, manifest
from tests.conftest import commissioned, packed_pallet, running_batch
from tests.sync.test_manifest import codeline


def shipped(store: Store, site: SiteConfig, tmp_path: Path) -> Path:
    """A pallet shipped and its manifest sealed; the manifest as the cloud holds it."""
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 8)
    _, pallet = packed_pallet(store, batch, items)
    shipment = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    key = tmp_path / "k.pem"
    keys.generate(key)
    shipments.confirm(store, shipment.id, operator="t",
                      seal=manifest.sealer(site.site.id, keys.load_private(key)))
    held = tmp_path / "manifest-1.ndjson"
    conn = store.read()
    held.write_bytes(b"".join(manifest.body_lines(conn, manifest.info(conn, 1), site.site.id)))
    return held


def test_a_manifest_carries_the_audit_head_and_catches_a_rewritten_or_cut_log(
        store: Store, site: SiteConfig, tmp_path: Path) -> None:
    held = shipped(store, site, tmp_path)
    anchor = json.loads(held.read_bytes().splitlines()[0])["audit"]
    assert anchor["seq"] > 0 and len(anchor["hash"]) == 64
    ok = codeline(tmp_path, store.path, "audit", "verify", "--against", str(held))
    assert ok.returncode == 0, ok.stderr
    assert "holds the 1 checkpoint" in ok.stdout

    # Rewritten whole: entry 1 changed, every hash recomputed. The chain alone verifies.
    conn = store.read()
    conn.execute("DROP TRIGGER audit_append_only_update")
    conn.execute("UPDATE audit SET operator = 'someone else' WHERE id = 1")
    prev = audit.GENESIS
    for row in conn.execute("SELECT id, at, operator, action, target, reason, detail "
                            "FROM audit ORDER BY id").fetchall():
        digest = audit._digest(prev, *row[1:])
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev, digest, row[0]))
        prev = digest
    assert codeline(tmp_path, store.path, "audit", "verify").returncode == 0
    rewritten = codeline(tmp_path, store.path, "audit", "verify", "--against", str(held))
    assert rewritten.returncode == 1
    assert f"audit entry {anchor['seq']} has hash" in rewritten.stderr
    assert "the log was rewritten" in rewritten.stderr

    # Cut short: the entries from the checkpoint on are gone. The rest still chains.
    conn.execute("DROP TRIGGER audit_append_only_delete")
    conn.execute("DELETE FROM audit WHERE id >= ?", (anchor["seq"],))
    assert codeline(tmp_path, store.path, "audit", "verify").returncode == 0
    cut = codeline(tmp_path, store.path, "audit", "verify", "--against", str(held))
    assert cut.returncode == 1 and "the log was cut short" in cut.stderr


def test_a_state_set_by_hand_is_named_and_a_code_used_before_is_never_reserved_again(
        store: Store, site: SiteConfig, tmp_path: Path) -> None:
    batch = running_batch(store, site, items=40)
    loose = commissioned(store, batch, "item", 2)
    block = flow.reserve(store, batch, "st", "item", 3)
    flow.void(store, batch, "item", [c.id for c in block.codes], Reason.UNCONFIRMED,
              operator="t")
    clean = codeline(tmp_path, store.path, "audit", "verify")
    assert clean.returncode == 0 and "every code row" in clean.stdout

    conn = store.read()
    conn.execute("UPDATE codes SET state = 4 WHERE serial = ?", (loose[0],))  # ACTIVE
    conn.execute("UPDATE codes SET state = 0 WHERE serial = ?", (block.codes[0].serial,))
    # the careful forger also clears every trace in the row itself
    conn.execute("UPDATE codes SET state = 0, reservation_id = NULL, batch_id = NULL, "
                 "reason = NULL WHERE serial = ?", (block.codes[1].serial,))
    found = codeline(tmp_path, store.path, "audit", "verify")
    assert found.returncode == 1
    assert f"{loose[0]}: ACTIVE in its row, its history says COMMISSIONED" in found.stdout
    assert f"{loose[0]}: ACTIVE but on no confirmed shipment" in found.stdout
    assert f"{block.codes[0].serial}: AVAILABLE in its row, its history says VOID" in found.stdout
    assert f"{block.codes[0].serial}: back in the pool although it was reserved" in found.stdout
    assert f"{block.codes[1].serial}: AVAILABLE in its row, its history says VOID" in found.stdout

    for forged in block.codes[:2]:
        with pytest.raises(CodeAlreadyUsed, match=forged.serial):
            flow.reserve(store, batch, "st", "item", 1)
        conn.execute("UPDATE codes SET state = 6 WHERE id = ?", (forged.id,))  # put back


def test_a_database_from_before_the_history_gets_its_codes_entered_as_they_are(
        store: Store, site: SiteConfig, tmp_path: Path) -> None:
    batch = running_batch(store, site, items=40)
    commissioned(store, batch, "item", 5)
    block = flow.reserve(store, batch, "st", "item", 3)
    flow.void(store, batch, "item", [c.id for c in block.codes], Reason.UNCONFIRMED,
              operator="t")
    conn = store.read()
    for view in ("codes_v", "containers_v", "batches_v", "shipments_v", "audit_v"):
        conn.execute(f"DROP VIEW {view}")  # what versions 10 to 12 added
    conn.execute("ALTER TABLE segments DROP COLUMN loading")
    conn.execute("ALTER TABLE segments DROP COLUMN retired_at")
    conn.execute("ALTER TABLE segments DROP COLUMN retire_reason")
    conn.execute("DROP TABLE code_history")
    conn.execute("DROP TABLE business_events")  # and what version 9 added
    conn.execute("ALTER TABLE batches DROP COLUMN identity")
    for column in ("reference", "reference_type", "distributor_gln"):
        conn.execute(f"ALTER TABLE shipments DROP COLUMN {column}")
    conn.execute("ALTER TABLE segments DROP COLUMN external_id")
    conn.execute("ALTER TABLE codes DROP COLUMN seq")
    conn.execute("PRAGMA user_version = 7")
    store.close()
    with Store(store.path) as again:
        conn = again.read()
        assert audit.code_problems(conn) == []
        assert conn.execute("SELECT count(*) FROM codes WHERE seq IS NULL").fetchone()[0] == 0
        assert history.ever_reserved(conn, [c.id for c in block.codes]) == sorted(
            c.id for c in block.codes)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM code_history")
