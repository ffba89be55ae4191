"""The brand's cloud, simulated: issues code segments, takes manifests, answers scans.

* It issues code segments (the serials an edge imports into its pool), so it knows every
  code before it is printed.
* It pulls manifests from the edge's API on an interval (or receives pushes), checks each
  body against its digest and the site's Ed25519 public key, applies it once (by manifest
  id) to its registry, and acknowledges it.
* It answers consumer scans, ``GET /scan/{payload}?region=R``: ``unknown``,
  ``not_activated`` or ``activated`` with product, batch and destination, and keeps what a
  brand watches for: scans of codes not yet activated (early scans: a leak in the factory)
  and scans outside the shipment's region (diversion).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import biip
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from sync import manifest
from sync.errors import TamperedManifest

log = logging.getLogger("codeline.sim.cloud")

SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (serial TEXT PRIMARY KEY, issued_at INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0, level TEXT, site TEXT, line TEXT, batch INTEGER,
    product TEXT, lot TEXT, distributor TEXT, region TEXT, manifest TEXT, printed_at INTEGER,
    segment TEXT, seq INTEGER);
CREATE TABLE IF NOT EXISTS applied (manifest_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, codes INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    via TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (id INTEGER PRIMARY KEY, serial TEXT, payload TEXT,
    region TEXT, at INTEGER NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class CloudStats:
    """What the cloud did, for tests and the demo."""

    applied: int = 0
    duplicates: int = 0
    refused: int = 0
    pulls: int = 0
    errors: list[str] = field(default_factory=list)


class Cloud:
    """The registry and its rules; the HTTP side is :func:`create_app`."""

    def __init__(self, db_path: Path, public_key: Ed25519PublicKey) -> None:
        self.db_path = db_path
        self.public_key = public_key
        self.stats = CloudStats()
        with self._db() as conn:
            conn.executescript(SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        try:
            yield conn
        finally:
            conn.close()

    # --- segments ---
    def issue(self, serials: list[str]) -> None:
        """Record a code segment handed to a site (the cloud knows every code it issued)."""
        now = int(time.time())
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR IGNORE INTO codes (serial, issued_at) VALUES (?, ?)",
                             ((s, now) for s in serials))
            conn.execute("COMMIT")

    # --- manifests ---
    def apply(self, body: bytes, digest: str, signature: str, via: str) -> bool:
        """Verify and apply one manifest; False if it was already applied (idempotent)."""
        try:
            manifest.verify(iter([body]), digest, signature, self.public_key)
        except TamperedManifest:
            self.stats.refused += 1
            raise
        lines = body.splitlines()
        head = json.loads(lines[0])
        if head.get("format") != manifest.FORMAT:
            self.stats.refused += 1
            raise TamperedManifest(f"manifest format {head.get('format')!r} is not "
                                   f"{manifest.FORMAT!r}, the one this cloud reads")
        batches = {b["id"]: b for b in head["batches"]}
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM applied WHERE manifest_id = ?",
                                (head["id"],)).fetchone():
                    conn.execute("ROLLBACK")
                    self.stats.duplicates += 1
                    return False
                active = 1 if head["kind"] == "activation" else 0
                dest = head["destination"]
                rows = []
                for line in lines[1:]:
                    code = json.loads(line)
                    batch = batches.get(code["batch"], {})
                    printed = code.get("printed_at")
                    segment = code.get("segment_ref") or f"{head['site']}:{code.get('segment')}"
                    rows.append((code["serial"], int(time.time()), active, code["level"],
                                 head["site"], code.get("line"), code["batch"],
                                 batch.get("product"), batch.get("lot"), head["id"],
                                 dest["distributor"], dest["region"],
                                 _epoch_s(printed) if printed else None, segment,
                                 code.get("seq")))
                conn.executemany(
                    "INSERT INTO codes (serial, issued_at, active, level, site, line, batch, "
                    "product, lot, manifest, distributor, region, printed_at, segment, seq) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(serial) DO UPDATE SET active = excluded.active, "
                    "level = excluded.level, site = excluded.site, line = excluded.line, "
                    "batch = excluded.batch, product = excluded.product, lot = excluded.lot, "
                    "manifest = excluded.manifest, distributor = excluded.distributor, "
                    "region = excluded.region, printed_at = excluded.printed_at, "
                    "segment = excluded.segment, seq = excluded.seq", rows)
                conn.execute(
                    "INSERT INTO applied (manifest_id, seq, kind, codes, applied_at, via) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (head["id"], head["seq"], head["kind"], len(rows), int(time.time()), via))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self.stats.applied += 1
        return True

    def cursor(self) -> int:
        with self._db() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, seq: int) -> None:
        with self._db() as conn:
            conn.execute("INSERT INTO state (key, value) VALUES ('cursor', ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (str(seq),))

    async def pull_once(self, client: httpx.AsyncClient) -> int:
        """One round against the edge's API: fetch, verify, apply and ack what is new."""
        self.stats.pulls += 1
        done = 0
        while True:
            page = await client.get("/api/v2/manifests", params={"after": self.cursor(),
                                                                 "limit": 100})
            page.raise_for_status()
            items = page.json()["manifests"]
            if not items:
                return done
            for item in items:
                body = await client.get(f"/api/v2/manifests/{item['id']}",
                                        headers={"Accept": "application/x-ndjson"})
                body.raise_for_status()
                try:
                    await asyncio.to_thread(self.apply, body.content,
                                            body.headers["x-manifest-digest"],
                                            body.headers["x-manifest-signature"], "pull")
                except TamperedManifest as exc:
                    # Not applied, not acknowledged: the site is told why, and the pull
                    # stops here (manifests are applied in order).
                    log.error("refused manifest %s (seq %s): %s", item["id"], item["seq"], exc)
                    await client.post(f"/api/v2/manifests/{item['id']}/refusal",
                                      json={"reason": str(exc)})
                    raise
                (await client.post(f"/api/v2/manifests/{item['id']}/ack")).raise_for_status()
                self.set_cursor(item["seq"])
                done += 1

    async def pull_forever(self, base_url: str, token: str, interval: float) -> None:
        async with httpx.AsyncClient(base_url=base_url,
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as client:
            while True:
                try:
                    await self.pull_once(client)
                except (httpx.HTTPError, TamperedManifest) as exc:
                    self.stats.errors.append(str(exc))
                await asyncio.sleep(interval)

    # --- scans ---
    def scan(self, payload: str, region: str | None) -> dict[str, Any]:
        serial = serial_of(payload)
        now = int(time.time())
        with self._db() as conn:
            row = conn.execute(
                "SELECT active, product, batch, lot, distributor, region, line FROM codes "
                "WHERE serial = ?", (serial,)).fetchone() if serial else None
            if row is None:
                result: dict[str, Any] = {"result": "unknown"}
            elif not row[0]:
                result = {"result": "not_activated"}
            else:
                result = {"result": "activated", "product": row[1], "batch": row[2],
                          "lot": row[3], "destination": {"distributor": row[4],
                                                         "region": row[5]}}
                if region and row[5] and region != row[5]:
                    result["diversion"] = True
            conn.execute("INSERT INTO scans (serial, payload, region, at, result) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (serial, payload[:200], region, now,
                          "diversion" if result.get("diversion") else result["result"]))
        return result

    def early_scans(self, by: str = "print_hour") -> list[dict[str, Any]]:
        """Scans made before a code was activated, by line, batch and print hour, or
        (``by="segment"``) by code segment (码段) with the range of sequence numbers."""
        if by == "segment":
            with self._db() as conn:
                rows = conn.execute(
                    "SELECT c.segment, count(*), count(DISTINCT s.serial), min(c.seq), "
                    "max(c.seq) FROM scans s JOIN codes c ON c.serial = s.serial "
                    "WHERE s.result = 'not_activated' GROUP BY 1 ORDER BY 1").fetchall()
            return [{"segment": r[0], "scans": r[1], "codes": r[2], "first_seq": r[3],
                     "last_seq": r[4]} for r in rows]
        with self._db() as conn:
            rows = conn.execute(
                "SELECT c.line, c.batch, c.printed_at / 3600 * 3600, count(*), "
                "count(DISTINCT s.serial) FROM scans s JOIN codes c ON c.serial = s.serial "
                "WHERE s.result = 'not_activated' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        return [{"line": r[0], "batch": r[1],
                 "print_hour": time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(r[2]))
                 if r[2] else None, "scans": r[3], "codes": r[4]} for r in rows]

    def diversion(self) -> list[dict[str, Any]]:
        """Scans in a region other than the one the goods were shipped to."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT s.serial, s.region, c.region, c.distributor, c.batch, s.at FROM scans s "
                "JOIN codes c ON c.serial = s.serial WHERE s.result = 'diversion' "
                "ORDER BY s.id").fetchall()
        return [{"serial": r[0], "scanned_in": r[1], "shipped_to": r[2], "distributor": r[3],
                 "batch": r[4], "at": r[5]} for r in rows]

    def registry(self) -> dict[str, int]:
        """Active serials (for comparison with the edge)."""
        with self._db() as conn:
            return {r[0]: r[1] for r in conn.execute("SELECT serial, active FROM codes")}


def _epoch_s(rfc3339: str) -> int:
    return int(dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def serial_of(payload: str) -> str | None:
    """The serial a scanned payload carries: a URL's last segment, AI 21, AI 00, or itself."""
    text = payload.strip()
    if not text or len(text) > 200:
        return None
    if text.startswith(("http://", "https://")):
        try:
            result = biip.parse(text)
        except biip.ParseError:
            result = None
        if result is not None and result.gs1_digital_link_uri is not None:
            elements = result.gs1_digital_link_uri.element_strings
            found = elements.get(ai="21") or elements.get(ai="00")
            return found.value if found else None
        return text.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or None
    if "\x1d" in text or text.startswith("]") or (text.isdigit() and len(text) > 18):
        try:
            message = biip.parse(text).gs1_message
        except biip.ParseError:
            return None
        if message is None:
            return None
        found = message.element_strings.get(ai="21") or message.element_strings.get(ai="00")
        return found.value if found else None
    return text


def create_app(cloud: Cloud, fail_pushes: int = 0) -> FastAPI:
    """The cloud's HTTP face: scans, reports, and a push endpoint."""
    app = FastAPI(title="codeline cloud simulator")
    failures = {"left": fail_pushes}

    @app.get("/scan/{payload:path}")
    def scan(payload: Annotated[str, PathParam(max_length=200)],
             region: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        return cloud.scan(payload, region)

    @app.get("/reports/early-scans")
    def early(by: Annotated[Literal["print_hour", "segment"], Query()] = "print_hour"
              ) -> list[dict[str, Any]]:
        return cloud.early_scans(by)

    @app.get("/reports/diversion")
    def diversion() -> list[dict[str, Any]]:
        return cloud.diversion()

    @app.post("/ingest/manifests")
    async def ingest(request: Request,
                     idempotency_key: Annotated[str, Header(max_length=64)],
                     x_manifest_digest: Annotated[str, Header(max_length=64)],
                     x_manifest_signature: Annotated[str, Header(max_length=200)]) -> JSONResponse:
        if failures["left"] > 0:
            failures["left"] -= 1
            return JSONResponse({"code": "unavailable", "message": "try again"}, 500)
        body = await request.body()
        try:
            fresh = await asyncio.to_thread(cloud.apply, body, x_manifest_digest,
                                            x_manifest_signature, "push")
        except TamperedManifest as exc:
            log.error("refused pushed manifest %s: %s", idempotency_key, exc)
            return JSONResponse({"code": "tampered", "message": str(exc)}, 422)
        return JSONResponse({"ack": idempotency_key, "applied": fresh})

    return app
