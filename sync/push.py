"""Push: the outbox worker that delivers manifests to ``sync.push_url``, exactly once in effect.

Manifests go in sequence order, each with ``Idempotency-Key: <manifest id>`` and its digest
and signature in headers; a manifest is done when the cloud acknowledges it (or when the
cloud already acked it by pull). A failure stops the round (never skip, never reorder) and
the next round retries after a capped exponential backoff with jitter. Everything the worker
knows lives in the outbox, so a restart simply resumes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store.database import Store, now_ms
from sync import manifest

log = logging.getLogger("codeline.sync.push")


@dataclass(frozen=True)
class PushStatus:
    """What is waiting to reach the cloud."""

    pending: int
    oldest_pending_at: int | None
    last_error: str | None
    last_attempt_at: int | None
    acked: int
    refused: list[Refusal] = field(default_factory=list)


@dataclass(frozen=True)
class Refusal:
    """A manifest the cloud refused, and why."""

    seq: int
    manifest_id: str
    refused_at: int
    reason: str


def status(conn: sqlite3.Connection) -> PushStatus:
    pending, oldest = conn.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE acked_at IS NULL AND frozen = 1"
    ).fetchone()
    acked = conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NOT NULL").fetchone()[0]
    last = conn.execute(
        "SELECT last_error, last_attempt_at FROM outbox WHERE last_attempt_at IS NOT NULL "
        "ORDER BY last_attempt_at DESC LIMIT 1").fetchone()
    refused = [Refusal(int(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in conn.execute(
        "SELECT seq, manifest_id, refused_at, refusal FROM outbox "
        "WHERE refused_at IS NOT NULL AND acked_at IS NULL ORDER BY seq")]
    return PushStatus(int(pending), int(oldest) if oldest else None,
                      last[0] if last else None, last[1] if last else None, int(acked),
                      refused)


def record_refusal(conn: sqlite3.Connection, seq: int, reason: str, at: int) -> None:
    """The cloud refused manifest ``seq``: it will not take it as it is, however often it is
    sent (a forged or damaged manifest). Kept until the manifest is acknowledged."""
    conn.execute("UPDATE outbox SET refused_at = ?, refusal = ? WHERE seq = ?",
                 (at, reason[:500], seq))
    log.error("the cloud refused manifest %s: %s", seq, reason)


@dataclass(frozen=True)
class RoundReport:
    delivered: int
    failed: str | None


async def _body(db_path: Path, m: manifest.ManifestInfo, site_id: str) -> AsyncIterator[bytes]:
    with Store(db_path) as store:
        chunks = manifest.body_lines(store.conn, m, site_id)
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk


def _next_sealed(db_path: Path, site_id: str, key: Ed25519PrivateKey
                 ) -> manifest.ManifestInfo | None:
    """The oldest manifest not yet acknowledged, sealed (None: nothing to deliver)."""
    with Store(db_path) as store:
        row = store.conn.execute(
            "SELECT seq FROM outbox WHERE acked_at IS NULL AND frozen = 1 ORDER BY seq "
            "LIMIT 1").fetchone()
        if row is None:
            return None
        return manifest.seal(store.conn, manifest.info(store.conn, int(row[0])), site_id, key)


def _record_attempt(db_path: Path, seq: int, error: str | None) -> None:
    with Store(db_path) as store, store.transaction() as conn:
        at = now_ms()
        if error is None:
            conn.execute("UPDATE outbox SET acked_at = coalesce(acked_at, ?), "
                         "attempts = attempts + 1, last_attempt_at = ?, last_error = NULL "
                         "WHERE seq = ?", (at, at, seq))
        else:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, "
                         "last_error = ? WHERE seq = ?", (at, error, seq))
            if error.startswith("refused: "):
                record_refusal(conn, seq, error.removeprefix("refused: "), at)


async def push_round(db_path: Path, site_id: str, key: Ed25519PrivateKey, url: str,
                     token: str, client: httpx.AsyncClient) -> RoundReport:
    """Deliver pending manifests in order until one fails or none is left. The database
    work runs in worker threads: in ``codeline run`` this shares the lines' event loop, and
    a commit waiting for the write lock must not stall them."""
    delivered = 0
    while True:
        m = await asyncio.to_thread(_next_sealed, db_path, site_id, key)
        if m is None:
            return RoundReport(delivered, None)
        assert m.digest is not None and m.signature is not None
        headers = {"Idempotency-Key": m.manifest_id, "X-Manifest-Format": manifest.FORMAT,
                   "X-Manifest-Digest": m.digest,
                   "X-Manifest-Signature": m.signature, "Authorization": f"Bearer {token}",
                   "Content-Type": "application/x-ndjson"}
        error: str | None = None
        try:
            response = await client.post(url, content=_body(db_path, m, site_id),
                                         headers=headers)
            if response.status_code == 422:
                error = f"refused: {response.text[:300]}"
            elif response.status_code // 100 != 2:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            elif response.json().get("ack") != m.manifest_id:
                error = "the cloud answered without acknowledging this manifest"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(_record_attempt, db_path, m.seq, error)
        if error is not None:
            log.warning("push of manifest %s failed: %s", m.seq, error)
            return RoundReport(delivered, error)
        log.info("manifest %s delivered: %s, %s codes of shipment %s", m.seq, m.kind,
                 m.code_count, m.shipment_id, extra={"manifest": m.manifest_id})
        delivered += 1


async def push_forever(db_path: Path, site_id: str, key: Ed25519PrivateKey, url: str,
                       token: str, retry_min_s: float, retry_max_s: float,
                       idle_s: float = 1.0) -> None:
    """Rounds until cancelled, backing off after failures."""
    attempt = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            report = await push_round(db_path, site_id, key, url, token, client)
            if report.failed is None:
                if attempt:
                    log.info("the cloud takes manifests again", extra={"after": attempt})
                attempt = 0
                await asyncio.sleep(idle_s)
                continue
            cap = min(retry_max_s, retry_min_s * 2 ** attempt)
            attempt += 1
            await asyncio.sleep(random.uniform(retry_min_s / 2, cap))
