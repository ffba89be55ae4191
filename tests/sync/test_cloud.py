"""The cloud simulator against a real edge API: not activated before shipment, activated
after sync, early scans and diversion reported, tampered manifests refused, applied once."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store.database import Store
from line_config.models import SiteConfig
from simulators.cloud import Cloud, create_app, serial_of
from sync import keys, manifest, push
from sync.errors import TamperedManifest
from tests.sync.test_api import api as edge_api  # noqa: F401  (the edge API fixture)
from tests.sync.test_manifest import shipped_pallet

__all__ = ["edge_api"]


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    key = tmp_path / "k.pem"
    if not key.exists():
        keys.generate(key)
    return Cloud(tmp_path / "cloud.db", keys.load_private(key).public_key())


def all_serials(store: Store) -> list[str]:
    return [r[0] for r in store.read().execute("SELECT serial FROM codes")]


async def test_a_scan_says_not_activated_before_shipment_and_activated_after_sync(
    edge_api: tuple[str, dict[str, str], Store], cloud: Cloud  # noqa: F811
) -> None:
    base, secrets, store = edge_api
    cloud.issue(all_serials(store))
    shipped = {r[0] for r in store.read().execute(
        "SELECT serial FROM codes WHERE state = 4")}
    waiting = store.read().execute(  # issued to the site, still in its pool
        "SELECT serial FROM codes WHERE state = 0 AND level = 0").fetchone()[0]
    some = sorted(shipped)[0]
    assert cloud.scan(some, "east")["result"] == "not_activated"  # nothing pulled yet
    assert cloud.scan("NEVER-ISSUED", None)["result"] == "unknown"
    async with httpx.AsyncClient(base_url=base, headers={
            "Authorization": f"Bearer {secrets['cloud']}"}) as client:
        assert await cloud.pull_once(client) == 1
        assert await cloud.pull_once(client) == 0
    answer = cloud.scan(some, "east")
    assert answer["result"] == "activated" and answer["destination"]["region"] == "east"
    assert answer["product"] == "p1" and answer["lot"] == "LOT1"
    assert cloud.scan(waiting, "east")["result"] == "not_activated"
    assert cloud.scan(some, "west").get("diversion") is True
    registry = cloud.registry()
    assert {s for s, a in registry.items() if a} == shipped
    early = {row["batch"]: row for row in cloud.early_scans()}
    assert early[1]["line"] == "L1" and early[1]["print_hour"] is not None
    assert early[None]["scans"] == 1, "an early scan of a code never shipped stays listed"
    by_segment = cloud.early_scans("segment")
    leaked = [row for row in by_segment if row["segment"] is not None]
    assert leaked and leaked[0]["segment"].startswith("test-site:") and leaked[0]["first_seq"] >= 1
    assert cloud.diversion()[0]["shipped_to"] == "east"
    acked = store.read().execute("SELECT acked_at FROM outbox WHERE seq = 1").fetchone()[0]
    assert acked is not None


def test_tampered_or_foreign_manifests_are_refused_and_nothing_applied(
    tmp_path: Path, site: SiteConfig, cloud: Cloud
) -> None:
    from sync import manifest

    store = Store(tmp_path / "edge.db", create=True)
    shipped_pallet(store, site)
    key = keys.load_private(tmp_path / "k.pem")
    conn = store.read()
    m = manifest.seal(conn, manifest.info(conn, 1), "site-1", key)
    body = b"".join(manifest.body_lines(store.read(), m, "site-1"))
    assert m.digest and m.signature
    with pytest.raises(TamperedManifest):
        cloud.apply(body.replace(b'"east"', b'"west"'), m.digest, m.signature, "push")
    foreign = Cloud(tmp_path / "other.db", Ed25519PrivateKey.generate().public_key())
    with pytest.raises(TamperedManifest):
        foreign.apply(body, m.digest, m.signature, "push")
    assert not any(cloud.registry().values())
    old_format = body.replace(b"codeline-manifest/2", b"codeline-manifest/1", 1)
    old_digest = manifest.digest_of(iter([old_format]))
    old_signature = base64.b64encode(key.sign(bytes.fromhex(old_digest))).decode()
    with pytest.raises(TamperedManifest, match="format"):
        cloud.apply(old_format, old_digest, old_signature, "push")
    assert cloud.apply(body, m.digest, m.signature, "push") is True
    assert cloud.apply(body, m.digest, m.signature, "push") is False, "applied once only"
    assert cloud.stats.duplicates == 1 and cloud.stats.refused == 2
    store.close()


async def test_the_push_endpoint_is_idempotent_and_refuses_tampering(
    tmp_path: Path, site: SiteConfig, cloud: Cloud
) -> None:
    from sync import manifest

    store = Store(tmp_path / "edge.db", create=True)
    shipped_pallet(store, site)
    conn = store.read()
    m = manifest.seal(conn, manifest.info(conn, 1), "site-1",
                      keys.load_private(tmp_path / "k.pem"))
    body = b"".join(manifest.body_lines(store.read(), m, "site-1"))
    assert m.digest and m.signature
    headers = {"Idempotency-Key": m.manifest_id, "X-Manifest-Digest": m.digest,
               "X-Manifest-Signature": m.signature}
    transport = httpx.ASGITransport(app=create_app(cloud, fail_pushes=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        assert (await client.post("/ingest/manifests", content=body, headers=headers)
                ).status_code == 500
        first = await client.post("/ingest/manifests", content=body, headers=headers)
        second = await client.post("/ingest/manifests", content=body, headers=headers)
        assert first.json() == {"ack": m.manifest_id, "applied": True}
        assert second.json() == {"ack": m.manifest_id, "applied": False}
        bad = await client.post("/ingest/manifests", content=body + b"x", headers=headers)
        assert bad.status_code == 422
        scan = await client.get(f"/scan/{all_serials(store)[0]}", params={"region": "east"})
        assert scan.status_code == 200
    store.close()


@pytest.mark.parametrize("payload, serial", [
    ("https://c.example.com/q/ABC123", "ABC123"),
    ("https://id.gs1.org/01/06901234567892/21/XYZ9", "XYZ9"),
    ("0116901234567899" + "10L7\x1d21CASE01", "CASE01"),
    ("00369012340000000420", "369012340000000420"),
    ("BARE42", "BARE42"),
    ("", None),
])
def test_the_cloud_reads_the_serial_of_any_payload(payload: str, serial: str | None) -> None:
    assert serial_of(payload) == serial


async def test_a_forged_manifest_row_is_refused_by_the_cloud_and_named_by_sync_status(
    edge_api: tuple[str, dict[str, str], Store], cloud: Cloud, tmp_path: Path  # noqa: F811
) -> None:
    base, secrets, store = edge_api
    conn = store.read()  # sealed as it was issued (the API seals at pull)
    manifest.seal(conn, manifest.info(conn, 1), "test-site",
                  keys.load_private(tmp_path / "k.pem"))
    forged = store.read().execute(  # a code that never shipped
        "SELECT id FROM codes WHERE id NOT IN (SELECT code_id FROM manifest_codes) "
        "AND level = 0").fetchone()[0]
    store.read().execute("DROP TRIGGER manifest_codes_frozen_insert")  # someone with the file
    store.read().execute("INSERT INTO manifest_codes (seq, code_id) VALUES (1, ?)", (forged,))
    async with httpx.AsyncClient(base_url=base, headers={
            "Authorization": f"Bearer {secrets['cloud']}"}) as client:
        with pytest.raises(TamperedManifest):
            await cloud.pull_once(client)
    assert cloud.stats.applied == 0 and cloud.registry() == {}
    shown = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "edge.cli.main", "--db", str(store.path), "sync",
                         "status"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"})
    assert "REFUSED by the cloud" in shown.stdout and "manifest 1" in shown.stdout
    assert "digest" in shown.stdout
    state = push.status(store.read())
    assert state.pending == 1 and [r.seq for r in state.refused] == [1]
