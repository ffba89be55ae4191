"""Hand-over throughput: ``python -m bench.sync [--items N]``.

Prints manifest streaming codes/s over the pull API (NDJSON) and the API process's peak RSS
for two batch sizes (memory must stay flat); EPCIS export and capture of the batch's event
log by ``codeline export epcis`` (events/s, peak RSS of that process, for both sizes:
flat means streamed); the exporter's speed in-process over a log of line-sized events (items
commissioned 8 per commit, as a line's group commits do) against 50,000 events/s; the
longest write-lock
hold while a shipment of N items is confirmed and sealed (seen by a writer committing every
millisecond beside it, as a running line does), and push manifests/s to the cloud simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.store import SITE, packed_pallets, produce
from edge.domain import flow, shipments
from edge.store.database import Store, now_ms
from line_config.loading import parse_config
from line_config.standards import standards_dir
from simulators.epcis_repository import create_app as create_repository
from sync import epcis, keys, manifest, push, tokens
from sync.serving import free_port, serve

PER_CASE, PER_PALLET = 24, 60
LINE_GROUP = 8
"""Items per group commit of a line at speed (5-10): the size of a commissioning event."""
EXPORT_TARGET = 50_000
SMALL_SITE = SITE.replace("items_per_case: 24, cases_per_pallet: 60",
                          "items_per_case: 4, cases_per_pallet: 2")


def produce_as_a_line(store: Store, batch: int, level: str, count: int,
                      group: int = LINE_GROUP) -> list[str]:
    """Like ``produce``, with verdicts committed ``group`` at a time as a running line's group
    commits do: one commissioning event per group, as on a real line."""
    out: list[str] = []
    while len(out) < count:
        res = flow.reserve(store, batch, "bench", level, min(500, count - len(out)))  # type: ignore[arg-type]
        ids = [c.id for c in res.codes]
        flow.mark_printed(store, batch, level, ids)  # type: ignore[arg-type]
        for start in range(0, len(ids), group):
            flow.record_verdicts(store, batch, level,  # type: ignore[arg-type]
                                 [flow.Verdict(i) for i in ids[start:start + group]])
        out.extend(c.serial for c in res.codes)
    return out


def build(workdir: Path, site_text: str, pallets: int, per_shipment: int,
          confirm: bool = True, line_sized: bool = False) -> Path:
    """A database with ``pallets`` full pallets shipped ``per_shipment`` to a shipment
    (the shipments left open unless ``confirm``); ``line_sized``: items commissioned in
    groups of a line's commit, not in blocks of 500."""
    db = workdir / "sync.db"
    with Store(db, create=True) as store:
        _, pallet_codes = packed_pallets(store, parse_config(site_text), pallets, "SYNC",
                                         produce_as_a_line if line_sized else produce)
        for start in range(0, pallets, per_shipment):
            s = shipments.create(store, "D1", "east", operator="b")
            for pallet in pallet_codes[start:start + per_shipment]:
                shipments.add(store, s.id, pallet, operator="b", allow_mixed_batches=False)
            if confirm:
                shipments.confirm(store, s.id, operator="b")
    keys.generate(workdir / "k.pem", overwrite=True)
    (workdir / "site.yaml").write_text(site_text + f"""
sync:
  signing_key_file: "{workdir / 'k.pem'}"
""")
    return db


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def stream(workdir: Path, db: Path) -> tuple[int, float, float]:
    """(codes, seconds, server peak RSS MB) for pulling manifest 1 as NDJSON."""
    with Store(db) as store, store.transaction() as conn:
        token = tokens.create(conn, "bench", ["manifests:read"], now_ms())
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "--db", str(db), "--config",
        str(workdir / "site.yaml"), "api", "serve", "--port", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(400):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
            await client.get("/api/v2/manifests")  # seals it (digest + signature) first
            start = time.perf_counter()
            lines = 0
            async with client.stream("GET", "/api/v2/manifests/1",
                                     headers={"Accept": "application/x-ndjson"}) as response:
                async for chunk in response.aiter_bytes():
                    lines += chunk.count(b"\n")
            took = time.perf_counter() - start
        return lines - 1, took, peak_rss_mb(server.pid)
    finally:
        server.terminate()
        await server.wait()


def run_measured(args: list[str]) -> tuple[float, float]:
    """Run a codeline command; (seconds, its peak RSS in MB). The peak is the process's own
    VmHWM, read while it runs: the rusage of a forked child also counts the parent's pages
    it held before its exec."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "edge.cli.main", *args],
                               stdout=subprocess.DEVNULL)
    peak = 0.0
    while process.poll() is None:
        try:
            peak = max(peak, peak_rss_mb(process.pid))
        except OSError:
            break
        time.sleep(0.02)
    process.wait()
    took = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"codeline {' '.join(args)} failed ({process.returncode})")
    return took, peak


async def export_and_capture(workdir: Path, db: Path) -> None:
    """EPCIS export to a file and capture into the simulated repository (schema check off,
    so that the figure is this side's), each in its own process."""
    with Store(db) as store:
        part = epcis.span(store.read(), 1)
    base = ["--db", str(db), "--config", str(workdir / "site.yaml"), "export",
            "epcis", "--batch", "1"]
    out = workdir / "batch.jsonld"
    took, rss = await asyncio.to_thread(run_measured, [*base, "--out", str(out)])
    print(f"  EPCIS export of {part.count:>9,} events ({out.stat().st_size / 1e6:,.0f} MB): "
          f"{part.count / took:>9,.0f} events/s ({took:.2f} s), peak RSS {rss:.0f} MB")
    app = create_repository(standards_dir() / "gs1-epcis" / "EPCIS-JSON-Schema.json",
                            processing_s=0, validate=False)
    async with serve(app) as repository:
        took, rss = await asyncio.to_thread(run_measured, [*base, "--capture", repository])
        async with httpx.AsyncClient(base_url=repository) as client:
            held = (await client.get("/events")).json()["count"]
    print(f"  EPCIS capture of {held:>9,} events in documents of 10,000: "
          f"{held / took:>9,.0f} events/s ({took:.2f} s), peak RSS {rss:.0f} MB")


def export_in_process(db: Path) -> tuple[int, float, float]:
    """(events, seconds, mean EPCs per event) of reading batch 1's log into EPCIS text in
    this process, written nowhere: the exporter's own speed."""
    with Store(db, cache_mb=8) as store:
        conn = store.read()
        part = epcis.span(conn, 1)
        epcs = conn.execute("SELECT sum(json_array_length(body, '$.epcList')) + "
                            "sum(coalesce(json_array_length(body, '$.childEPCs'), 0)) "
                            "FROM business_events WHERE batch_id = 1").fetchone()[0]
        start = time.perf_counter()
        size = sum(len(chunk) for chunk in epcis.document_chunks(conn, part, now_ms()))
        took = time.perf_counter() - start
    assert size > 0
    return part.count, took, (epcs or 0) / part.count


async def push_many(workdir: Path, db: Path) -> tuple[int, float]:
    port = free_port()
    (workdir / "pub.pem").write_text(keys.public_pem(keys.load_private(workdir / "k.pem")))
    cloud = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "sim", "cloud", "--public-key",
        str(workdir / "pub.pem"), "--db", str(workdir / "cloud.db"), "--port", str(port),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert cloud.stdout is not None
        await cloud.stdout.readline()
        signing = keys.load_private(workdir / "k.pem")
        with Store(db) as store:
            pending = push.status(store.read()).pending
        start = time.perf_counter()
        async with httpx.AsyncClient(timeout=60) as client:
            report = await push.push_round(db, "bench", signing,
                                           f"http://127.0.0.1:{port}/ingest/manifests", "t",
                                           client)
        took = time.perf_counter() - start
        assert report.failed is None and report.delivered == pending, report
        return pending, took
    finally:
        cloud.terminate()
        await cloud.wait()


def lock_holds(workdir: Path, db: Path, site_id: str) -> tuple[int, float, float, float]:
    """Confirm shipment 1 (activation, manifest, seal) while another connection commits a
    tiny write every millisecond, as a line's verdicts would: (codes, confirm seconds, the
    writer's longest wait and p99 wait in seconds) — the longest wait is the longest time
    the confirm held the write lock."""
    keys.generate(workdir / "k.pem", overwrite=True)
    seal = manifest.sealer(site_id, keys.load_private(workdir / "k.pem"))
    waits: list[float] = []
    done = threading.Event()

    def writer() -> None:
        with Store(db) as store:
            store.conn.execute("PRAGMA wal_autocheckpoint=0")
            store.conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES "
                               "('bench', 0)")
            while not done.is_set():
                start = time.perf_counter()
                with store.transaction() as conn:
                    conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'bench'")
                waits.append(time.perf_counter() - start)
                time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    with Store(db) as store:
        start = time.perf_counter()
        confirmed = shipments.confirm(store, 1, operator="bench", seal=seal)
        took = time.perf_counter() - start
    done.set()
    thread.join()
    ordered = sorted(waits)
    return (confirmed.code_count or 0, took, ordered[-1],
            ordered[int(len(ordered) * 0.99)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--only-epcis", action="store_true",
                        help="only manifest streaming and EPCIS export and capture")
    args = parser.parse_args()
    for items in (args.items // 10, args.items):
        workdir = Path(tempfile.mkdtemp(prefix="codeline-sync-bench-"))
        pallets = max(1, items // (PER_CASE * PER_PALLET))
        db = build(workdir, SITE, pallets, per_shipment=pallets)
        codes, took, rss = asyncio.run(stream(workdir, db))
        print(f"stream manifest of {codes:>9,} codes as NDJSON: {codes / took:>10,.0f} codes/s "
              f"({took:.2f} s), API server peak RSS {rss:.0f} MB")
        asyncio.run(export_and_capture(workdir, db))
    workdir = Path(tempfile.mkdtemp(prefix="codeline-export-bench-"))
    pallets = max(1, args.items // (PER_CASE * PER_PALLET))
    db = build(workdir, SITE, pallets, per_shipment=pallets, line_sized=True)
    events, took, mean = export_in_process(db)
    print(f"EPCIS export in-process, {args.items:,} items commissioned {LINE_GROUP} per "
          f"commit ({events:,} events, {mean:.1f} EPCs each on average): "
          f"{events / took:,.0f} events/s ({took:.2f} s; target >= {EXPORT_TARGET:,})")
    if args.only_epcis:
        sys.stdout.flush()
        os._exit(0)
    workdir = Path(tempfile.mkdtemp(prefix="codeline-lock-bench-"))
    pallets = max(1, args.items // (PER_CASE * PER_PALLET))
    db = build(workdir, SITE, pallets, per_shipment=pallets, confirm=False)
    codes, took, longest, p99 = lock_holds(workdir, db, parse_config(SITE).site.id)
    print(f"confirm a shipment of {codes:,} codes beside a writer committing every ms: "
          f"{took:.2f} s; the writer's longest wait (longest write-lock hold) "
          f"{longest * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    workdir = Path(tempfile.mkdtemp(prefix="codeline-push-bench-"))
    db = build(workdir, SMALL_SITE, pallets=200, per_shipment=1)
    delivered, took = asyncio.run(push_many(workdir, db))
    print(f"push {delivered} manifests to the cloud simulator: {delivered / took:,.0f} "
          f"manifests/s ({took:.2f} s)")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
