"""Manifests: what the cloud learns of an activation, streamed, digested and signed.

A manifest is NDJSON: a header line, then one line per code in code order, from the
snapshot frozen when the shipment was confirmed: ``serial``, ``level``, ``parent``, ``batch``,
``line``, ``printed_at`` (RFC 3339 UTC), and where the code came from: ``segment`` (the pool
segment, an import or generate run, numbered by this site), ``segment_ref`` (the segment's id
at the brand's cloud, for codes it issued) and ``seq`` (the code's number in its segment: its
line in the imported file, its place in the generated run): the 码段 and 流水号 by which
brands set prize strategy. The header lists the segments the manifest touches. The
canonical form (sorted keys, no spaces, UTF-8, LF) is what the SHA-256 digest covers; the
Ed25519 signature covers the digest. Bodies are produced in blocks straight from the
database, never held whole in memory.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.errors import ManifestNotFound, TamperedManifest

LEVELS = ("item", "case", "pallet")
BLOCK = 20_000
FORMAT = "codeline-manifest/2"
"""Version 2: RFC 3339 times, segments and sequence numbers, the line on every code."""


# A code's line, built by SQLite's json_object with the keys in sorted order: byte for byte
# what canonical() makes of the same dict (compact, UTF-8 kept), without a Python loop.
CODE_LINE_SQL = (
    "json_object('batch', {batch}, 'level', CASE {level} WHEN 0 THEN 'item' WHEN 1 THEN 'case' "
    "ELSE 'pallet' END, 'line', {line}, 'parent', {parent}, 'printed_at', "
    "strftime('%Y-%m-%dT%H:%M:%S.', {printed} / 1000, 'unixepoch') "
    "|| printf('%03dZ', {printed} % 1000), 'segment', {segment}, 'segment_ref', {segment_ref}, "
    "'seq', {seq}, 'serial', {serial})"
)
_LINE_COLUMNS = {"batch": "c.batch_id", "level": "c.level", "line": "b.line_id",
                 "parent": "p.serial", "printed": "c.printed_at", "segment": "c.segment_id",
                 "segment_ref": "g.external_id", "seq": "c.seq", "serial": "c.serial"}


@dataclass(frozen=True)
class CodeFacts:
    """What a manifest line says of one code."""

    serial: str
    level: int
    parent: str | None
    batch: int | None
    line: str | None
    printed_ms: int | None
    segment: int | None
    segment_ref: str | None
    seq: int | None


def code_line(conn: sqlite3.Connection, facts: CodeFacts) -> bytes:
    """One code's line as the body has it (for checks; the body builds them in bulk)."""
    sql = "SELECT " + CODE_LINE_SQL.format(**{k: f":{k}" for k in _LINE_COLUMNS})
    values = {k: getattr(facts, k) for k in ("serial", "level", "parent", "batch", "line",
                                             "segment", "segment_ref", "seq")}
    row = conn.execute(sql, {**values, "printed": facts.printed_ms}).fetchone()
    return str(row[0]).encode() + b"\n"


def canonical(obj: Any) -> bytes:
    """One NDJSON line in canonical form."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() \
        + b"\n"


def time_text(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds, as manifests write times (the
    cloud simulator reads this module, and never the edge)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


@dataclass(frozen=True)
class ManifestInfo:
    """An outbox row: the manifest's identity and state of delivery."""

    seq: int
    manifest_id: str
    kind: str
    shipment_id: int
    created_at: int
    code_count: int
    acked_at: int | None
    digest: str | None
    signature: str | None


_INFO = ("SELECT seq, manifest_id, kind, shipment_id, created_at, code_count, acked_at, digest, "
         "signature FROM outbox ")


def info(conn: sqlite3.Connection, ref: int | str) -> ManifestInfo:
    """An issued manifest by sequence number or id (one still being issued, not frozen
    yet, is not there for the cloud)."""
    column = "seq" if isinstance(ref, int) else "manifest_id"
    if isinstance(ref, int) and not 0 <= ref < 2**63:  # beyond SQLite's integers: no such seq
        raise ManifestNotFound(f"no manifest {ref}")
    row = conn.execute(_INFO + f"WHERE frozen = 1 AND {column} = ?", (ref,)).fetchone()
    if row is None:
        raise ManifestNotFound(f"no manifest {ref}")
    return ManifestInfo(*row)


def _info(conn: sqlite3.Connection, seq: int) -> ManifestInfo:
    """A manifest being issued (frozen or not), for its seal."""
    return ManifestInfo(*conn.execute(_INFO + "WHERE seq = ?", (seq,)).fetchone())


def latest_of_shipment(conn: sqlite3.Connection, shipment_id: int) -> ManifestInfo | None:
    """The manifest a shipment's confirm or cancel issued last (None: none yet)."""
    row = conn.execute(_INFO + "WHERE frozen = 1 AND shipment_id = ? ORDER BY seq DESC LIMIT 1",
                       (shipment_id,)).fetchone()
    return None if row is None else ManifestInfo(*row)


def listing(conn: sqlite3.Connection, after: int = 0, limit: int = 100) -> list[ManifestInfo]:
    rows = conn.execute(_INFO + "WHERE frozen = 1 AND seq > ? ORDER BY seq LIMIT ?",
                        (after, limit)).fetchall()
    return [ManifestInfo(*r) for r in rows]


def header(conn: sqlite3.Connection, m: ManifestInfo, site_id: str) -> dict[str, Any]:
    """The manifest's first line: who, what, where to, how many."""
    ship = conn.execute(
        "SELECT distributor, region, distributor_gln, reference, reference_type FROM shipments "
        "WHERE id = ?", (m.shipment_id,)).fetchone()
    batches = [
        {"id": b[0], "line": b[1], "product": b[2], "lot": b[3], "expiry": b[4]}
        for b in conn.execute(
            "SELECT DISTINCT b.id, b.line_id, b.product_id, b.lot, b.expiry FROM manifest_codes m "
            "JOIN codes c ON c.id = m.code_id JOIN batches b ON b.id = c.batch_id "
            "WHERE m.seq = ? ORDER BY b.id",
            (m.seq,),
        )
    ]
    counts = {LEVELS[level]: n for level, n in conn.execute(
        "SELECT c.level, count(*) FROM manifest_codes m JOIN codes c ON c.id = m.code_id "
        "WHERE m.seq = ? GROUP BY c.level", (m.seq,))}
    segments = [
        {"segment": g[0], "segment_ref": g[1], "source": g[2], "origin": g[3] or None,
         "line": g[4], "level": LEVELS[g[5]], "codes": g[6]}
        for g in conn.execute(
            "SELECT g.id, g.external_id, g.source, g.origin, g.line_id, g.level, count(*) "
            "FROM manifest_codes m JOIN codes c ON c.id = m.code_id JOIN segments g "
            "ON g.id = c.segment_id WHERE m.seq = ? GROUP BY g.id ORDER BY g.id", (m.seq,))]
    head: dict[str, Any] = {
        "format": FORMAT,
        "id": m.manifest_id,
        "seq": m.seq,
        "kind": m.kind,
        "site": site_id,
        "lines": sorted({b["line"] for b in batches}),
        "batches": batches,
        "segments": segments,
        "shipment": m.shipment_id,
        "destination": {"distributor": ship[0], "region": ship[1], "distributor_gln": ship[2]},
        "reference": {"type": ship[4], "id": ship[3]} if ship[3] else None,
        "issued_at": time_text(m.created_at),
        "counts": counts,
        "codes": m.code_count,
    }
    anchor = conn.execute("SELECT audit_seq, audit_hash FROM outbox WHERE seq = ?",
                          (m.seq,)).fetchone()
    if anchor is not None and anchor[0] is not None:
        head["audit"] = {"seq": anchor[0], "hash": anchor[1]}
    return head


def body_lines(conn: sqlite3.Connection, m: ManifestInfo, site_id: str) -> Iterator[bytes]:
    """The canonical manifest, in blocks of lines (header first)."""
    yield canonical(header(conn, m, site_id))
    last = -1
    while True:
        # One row per block: SQLite builds and joins the lines, Python only pages. The
        # aggregate reads the ordered subquery in order (SQLite < 3.44 has no ORDER BY inside
        # group_concat); a different order could only show as a digest mismatch, never pass.
        top, count, text = conn.execute(
            "SELECT max(id), count(*), group_concat(line, char(10)) FROM (SELECT m.code_id AS id, "
            + CODE_LINE_SQL.format(**_LINE_COLUMNS)
            + " AS line FROM manifest_codes m JOIN codes c ON c.id = m.code_id "
            "LEFT JOIN codes p ON p.id = m.parent_id LEFT JOIN batches b ON b.id = c.batch_id "
            "LEFT JOIN segments g ON g.id = c.segment_id "
            "WHERE m.seq = ? AND m.code_id > ? ORDER BY m.code_id LIMIT ?)",
            (m.seq, last, BLOCK),
        ).fetchone()
        if not count:
            return
        yield (text + "\n").encode()
        last = top


def digest_of(chunks: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def seal(conn: sqlite3.Connection, m: ManifestInfo, site_id: str,
         key: Ed25519PrivateKey) -> ManifestInfo:
    """Compute, sign and store the digest once (a manifest issued without the key, sealed
    at its first pull, push or show); afterwards the stored values are returned. The body
    is read and hashed with no write lock held (an issued manifest's list cannot change);
    only the store of the two values is a transaction. Call outside any transaction."""
    if m.digest is not None:
        return m
    digest = digest_of(body_lines(conn, m, site_id))
    signature = base64.b64encode(key.sign(bytes.fromhex(digest))).decode()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("UPDATE outbox SET digest = ?, signature = ? WHERE seq = ? AND "
                     "digest IS NULL", (digest, signature, m.seq))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return info(conn, m.seq)


def sealer(site_id: str, key: Ed25519PrivateKey
           ) -> Callable[[sqlite3.Connection, int], tuple[str, str]]:
    """What a shipment's confirm or cancel calls to digest and sign the manifest it issues,
    before the transaction that freezes it stores both: no moment exists in which an issued
    manifest is unsigned."""
    def seal_issued(conn: sqlite3.Connection, seq: int) -> tuple[str, str]:
        digest = digest_of(body_lines(conn, _info(conn, seq), site_id))
        return digest, base64.b64encode(key.sign(bytes.fromhex(digest))).decode()
    return seal_issued


def verify(chunks: Iterator[bytes], digest: str, signature: str,
           public_key: Ed25519PublicKey) -> None:
    """Check a received body against its digest and signature (the cloud's side)."""
    actual = digest_of(chunks)
    if actual != digest:
        raise TamperedManifest(f"body digest {actual[:16]}… is not the announced {digest[:16]}…")
    try:
        public_key.verify(base64.b64decode(signature), bytes.fromhex(digest))
    except (InvalidSignature, ValueError) as exc:
        raise TamperedManifest("signature does not verify with the site's public key") from exc
