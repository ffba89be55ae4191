"""Manifests: frozen at confirmation, canonical, digested and signed; tampering is caught."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from edge.domain import activation, aggregation, batches, pool, pool_import, shipments
from edge.domain.errors import ShipmentError
from edge.domain.serials import SerialScheme
from edge.store.database import Store
from line_config.models import SiteConfig
from sync import keys, manifest
from sync.errors import KeyProblem, ManifestNotFound, TamperedManifest
from tests.conftest import SMALL_SITE, commissioned, packed_pallet, running_batch


def shipped_pallet(store: Store, site: SiteConfig) -> tuple[int, list[str], str]:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 8)
    _, pallet = packed_pallet(store, batch, items)
    shipment = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, shipment.id, operator="t")
    return shipment.id, items, pallet


def body(store: Store, seq: int, site_id: str = "site-1") -> bytes:
    m = manifest.info(store.read(), seq)
    return b"".join(manifest.body_lines(store.read(), m, site_id))


def test_a_manifest_lists_every_code_with_level_and_parent(store: Store, site: SiteConfig) -> None:
    shipment_id, items, pallet = shipped_pallet(store, site)
    lines = [json.loads(line) for line in body(store, 1).splitlines()]
    head, codes = lines[0], lines[1:]
    assert head["kind"] == "activation" and head["shipment"] == shipment_id
    assert head["destination"] == {"distributor": "D-7", "region": "east",
                                   "distributor_gln": None}
    assert head["counts"] == {"item": 8, "case": 2, "pallet": 1} and head["codes"] == 11
    assert head["batches"][0]["lot"] == "LOT1" and head["batches"][0]["product"] == "p1"
    assert {c["serial"] for c in codes} >= set(items) | {pallet}
    by_serial = {c["serial"]: c for c in codes}
    assert by_serial[pallet]["parent"] is None and by_serial[pallet]["level"] == "pallet"
    assert by_serial[items[0]]["level"] == "item" and by_serial[items[0]]["parent"] is not None


def test_manifest_lines_carry_segment_and_sequence_number(store: Store, site: SiteConfig,
                                                           tmp_path: Path) -> None:
    """码段 / 流水号: an item imported from the cloud's segment file names that segment and
    its line in the file; the header lists the segments touched."""
    line = site.lines[0]
    serials = SerialScheme.from_config(line.codes.item.serial).draw(8)
    segment_file = tmp_path / "segment-778.txt"
    segment_file.write_text("\n".join(serials) + "\n")
    report = pool_import.import_file(store, line, site.products, "item", segment_file, operator="t",
                              external_id="CLOUD-778")
    pool.generate(store, line, "case", 2, operator="t")
    pool.generate(store, line, "pallet", 1, operator="t")
    batch = batches.create(store, site, "L1", "p1", "SEG1", operator="t")
    batches.start(store, batch.id, operator="t")
    items = commissioned(store, batch.id, "item", 8)
    _, pallet = packed_pallet(store, batch.id, items)
    shipment = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, shipment.id, operator="t")
    lines = [json.loads(text) for text in body(store, 1).splitlines()]
    head, codes = lines[0], lines[1:]
    assert head["format"] == "codeline-manifest/2"
    imported = next(g for g in head["segments"] if g["segment"] == report.segment_id)
    assert imported == {"segment": report.segment_id, "segment_ref": "CLOUD-778",
                        "source": "imported", "origin": "segment-778.txt", "line": "L1",
                        "level": "item", "codes": 8}
    assert {g["level"] for g in head["segments"]} == {"item", "case", "pallet"}
    for code in codes:
        assert code["line"] == "L1" and code["batch"] == batch.id
        assert code["printed_at"].endswith("Z") and "T" in code["printed_at"]
        if code["level"] == "item":
            assert code["segment"] == report.segment_id and code["segment_ref"] == "CLOUD-778"
            assert code["seq"] == serials.index(code["serial"]) + 1, "its line in the file"
        else:
            assert code["segment_ref"] is None and code["seq"] >= 1


def test_signed_manifests_verify_and_tampering_is_caught(store: Store, site: SiteConfig,
                                                         tmp_path: Path) -> None:
    shipped_pallet(store, site)
    key_path = tmp_path / "k.pem"
    public = keys.generate(key_path)
    key = keys.load_private(key_path)
    conn = store.read()
    sealed = manifest.seal(conn, manifest.info(conn, 1), "site-1", key)
    assert sealed.digest and sealed.signature
    data = body(store, 1)
    manifest.verify(iter([data]), sealed.digest, sealed.signature, public)
    altered = data.replace(b'"region":"east"', b'"region":"west"')
    with pytest.raises(TamperedManifest, match="digest"):
        manifest.verify(iter([altered]), sealed.digest, sealed.signature, public)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(TamperedManifest, match="signature"):
        manifest.verify(iter([data]), sealed.digest, sealed.signature, other)


def test_a_manifest_never_changes_after_it_is_issued(store: Store, site: SiteConfig,
                                                     tmp_path: Path) -> None:
    shipment_id, items, _ = shipped_pallet(store, site)
    keys.generate(tmp_path / "k.pem")
    key = keys.load_private(tmp_path / "k.pem")
    conn = store.read()
    first = manifest.seal(conn, manifest.info(conn, 1), "site-1", key)
    before = body(store, 1)
    shipments.cancel(store, shipment_id, operator="t", reason="truck broke down")
    aggregation.unpack(store, items[0], operator="t", reason="rework after the cancel")
    assert body(store, 1) == before, "rework after a cancel must not change an issued manifest"
    assert manifest.seal(conn, manifest.info(conn, 1), "site-1", key) == first
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        store.read().execute("UPDATE outbox SET digest = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        store.read().execute("DELETE FROM manifest_codes")
    second = [json.loads(line) for line in body(store, 2).splitlines()]
    assert second[0]["kind"] == "deactivation" and second[0]["codes"] == 11


def test_key_files_are_guarded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "site.pem"
    keys.generate(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(KeyProblem, match="exists"):
        keys.generate(path)
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(KeyProblem, match="not a usable"):
        keys.load_private(tmp_path / "bad.pem")
    with pytest.raises(KeyProblem, match="codeline keys generate"):
        keys.load_private(tmp_path / "missing.pem")
    assert "PUBLIC KEY" in keys.public_pem(keys.load_private(path))


@given(serial=st.text(max_size=30), parent=st.none() | st.text(max_size=30),
       batch=st.none() | st.integers(0, 10**9), printed=st.none() | st.integers(1, 2**45),
       level=st.integers(0, 2), line=st.none() | st.text(max_size=20),
       segment=st.none() | st.integers(1, 10**6), ref=st.none() | st.text(max_size=20),
       seq=st.none() | st.integers(1, 10**8))
def test_a_code_line_built_by_sqlite_is_the_canonical_line(
    serial: str, parent: str | None, batch: int | None, printed: int | None, level: int,
    line: str | None, segment: int | None, ref: str | None, seq: int | None,
) -> None:
    conn = sqlite3.connect(":memory:")
    expected = manifest.canonical({
        "serial": serial, "level": manifest.LEVELS[level], "parent": parent, "batch": batch,
        "line": line, "printed_at": manifest.time_text(printed) if printed else None,
        "segment": segment, "segment_ref": ref, "seq": seq})
    facts = manifest.CodeFacts(serial, level, parent, batch, line, printed, segment, ref, seq)
    assert manifest.code_line(conn, facts) == expected


def codeline(tmp_path: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "site.yaml"
    if not config.exists():
        config.write_text(SMALL_SITE)
    return subprocess.run([sys.executable, "-m", "edge.cli.main", "--db", str(db),
                           "--config", str(config), "--operator", "t", *args],
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_a_manifest_is_sealed_at_confirm_and_takes_no_code_afterwards(
        store: Store, site: SiteConfig, tmp_path: Path) -> None:
    batch = running_batch(store, site, items=40)
    items = commissioned(store, batch, "item", 8)
    _, pallet = packed_pallet(store, batch, items)
    shipment = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    stray = commissioned(store, batch, "item", 1)[0]  # COMMISSIONED, never shipped

    refused = codeline(tmp_path, store.path, "ship", "confirm", str(shipment.id))
    assert refused.returncode == 1 and "codeline keys generate" in refused.stderr
    assert shipments.get(store.read(), shipment.id).status == "open"  # nothing happened

    assert codeline(tmp_path, store.path, "keys", "generate").returncode == 0
    key_path = tmp_path / "keys" / "manifest-signing.key"  # beside the config, not in cwd
    done = codeline(tmp_path, store.path, "ship", "confirm", str(shipment.id))
    assert done.returncode == 0, done.stderr
    sealed = manifest.info(store.read(), 1)
    assert sealed.digest and sealed.signature  # before anyone pulled it
    public = keys.load_private(key_path).public_key()
    manifest.verify(iter([body(store, 1, site.site.id)]), sealed.digest, sealed.signature, public)

    stray_id = store.read().execute("SELECT id FROM codes WHERE serial = ?",
                                    (stray,)).fetchone()[0]
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        store.read().execute("INSERT INTO manifest_codes (seq, code_id) VALUES (1, ?)",
                             (stray_id,))
    with pytest.raises(sqlite3.DatabaseError, match="immutable"):
        store.read().execute("UPDATE outbox SET frozen = 0 WHERE seq = 1")
    # Whoever drops the trigger to add a code still cannot make the cloud take it.
    store.read().execute("DROP TRIGGER manifest_codes_frozen_insert")
    store.read().execute("INSERT INTO manifest_codes (seq, code_id) VALUES (1, ?)", (stray_id,))
    with pytest.raises(TamperedManifest, match="digest"):
        manifest.verify(iter([body(store, 1, site.site.id)]), sealed.digest,
                        sealed.signature, public)


def test_a_new_key_replaces_a_planted_symlink_and_an_open_mode(tmp_path: Path) -> None:
    path = tmp_path / "site.pem"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path.symlink_to(victim)
    keys.generate(path, overwrite=True)
    assert victim.read_text() == "precious" and not path.is_symlink()
    path.chmod(0o644)
    keys.generate(path, overwrite=True)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_code_forced_into_a_manifest_while_it_is_issued_stops_the_issue(
        store: Store, site: SiteConfig) -> None:
    """A shipment too big for one transaction is listed in steps and sealed with no lock
    held; a row inserted by hand meanwhile (here: by the time the seal runs) makes the
    count differ, and the manifest is not issued: not frozen, not served, the shipment still
    confirming (for someone to find out who forced the row in)."""
    data = site.model_dump(mode="python")
    data["lines"][0]["packaging"] = {"items_per_case": 1000, "cases_per_pallet": 4}
    big = SiteConfig.model_validate(data)
    batch = running_batch(store, big, items=4001)
    items = commissioned(store, batch, "item", 4000)
    _, pallet = packed_pallet(store, batch, items, per_case=1000, cases_on_pallet=4)
    assert activation.AT_ONCE < 1 + 4 + 4000  # confirmed in steps
    shipment = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
    stray = commissioned(store, batch, "item", 1)[0]
    stray_id = store.read().execute("SELECT id FROM codes WHERE serial = ?",
                                    (stray,)).fetchone()[0]
    key = Ed25519PrivateKey.generate()
    honest = manifest.sealer(site.site.id, key)

    def forging(conn: sqlite3.Connection, seq: int) -> tuple[str, str]:
        sealed = honest(conn, seq)
        with store.transaction() as w:
            w.execute("INSERT INTO manifest_codes (seq, code_id) VALUES (?, ?)", (seq, stray_id))
        return sealed

    with pytest.raises(ShipmentError, match="altered by hand"):
        shipments.confirm(store, shipment.id, operator="t", seal=forging)
    assert shipments.get(store.read(), shipment.id).status == "confirming"
    assert manifest.listing(store.read()) == []
    with pytest.raises(ManifestNotFound):
        manifest.info(store.read(), 1)
