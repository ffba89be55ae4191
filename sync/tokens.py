"""Bearer tokens for the pull API: random, shown once, stored as SHA-256, scoped, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

from sync.errors import SyncError

SCOPES = ("manifests:read", "manifests:ack", "codes:read")
PREFIX = "cl_"


class TokenError(SyncError):
    """A token request that cannot be honoured."""


@dataclass(frozen=True)
class Token:
    """A stored token (never the secret itself)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: int
    revoked_at: int | None
    last_used_at: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(conn: sqlite3.Connection, name: str, scopes: list[str], now: int) -> str:
    """Store a new token and return its secret (the only time it is shown)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        got = ", ".join(unknown) or "none"
        raise TokenError(f"scopes must be among {', '.join(SCOPES)}; got {got}")
    if not name.strip() or len(name) > 64:
        raise TokenError("a token needs a name of 1-64 characters (who uses it)")
    secret = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_tokens (name, scopes, token_hash, created_at) VALUES (?, ?, ?, ?)",
        (name, " ".join(sorted(set(scopes))), _hash(secret), now),
    )
    return secret


def listing(conn: sqlite3.Connection) -> list[Token]:
    return [Token(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5]) for r in conn.execute(
        "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM api_tokens "
        "ORDER BY id")]


def revoke(conn: sqlite3.Connection, token_id: int, now: int) -> None:
    cursor = conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (now, token_id))
    if cursor.rowcount != 1:
        raise TokenError(f"no active token {token_id}")


def check(conn: sqlite3.Connection, secret: str) -> Token | None:
    """The active token with this secret, or None."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    row = conn.execute(
        "SELECT id, name, scopes, created_at, revoked_at, last_used_at, token_hash "
        "FROM api_tokens WHERE token_hash = ?", (_hash(secret),)).fetchone()
    if row is None or row[4] is not None or not hmac.compare_digest(row[6], _hash(secret)):
        return None
    return Token(row[0], row[1], tuple(row[2].split()), row[3], row[4], row[5])
