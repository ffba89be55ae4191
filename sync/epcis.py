"""EPCIS 2.0 JSON-LD documents read from the business event log (edge.domain.business_events).

A document is streamed: events are read from the log a page at a time and written out as
the log holds them, each with its ``eventID`` (the CBV 2.0 event hash, computed when the
event was written). Nothing is rebuilt from the current state, so an export taken later
holds every event of an earlier one, unchanged and in the same order, followed by what
happened since. Memory does not grow with the batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edge.domain.business_events import NAMESPACES
from edge.store.database import rfc3339

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
PAGE = 2000
"""Events read from the log per query."""


class NoHistory(LookupError):
    """The batch predates the business event log: it has no EPCIS history."""


@dataclass(frozen=True)
class Span:
    """The events of a batch a document holds: sequence numbers after ``after`` up to and
    including ``through``, at most ``limit``."""

    batch_id: int
    after: int
    through: int
    count: int


def span(conn: sqlite3.Connection, batch_id: int, after: int = 0,
         limit: int | None = None) -> Span:
    """The events of the batch logged after ``after`` (all, or the first ``limit``)."""
    row = conn.execute("SELECT identity FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if row is None:
        raise KeyError(batch_id)
    if row[0] is None:
        raise NoHistory(f"batch {batch_id} was made before this site kept a business event "
                        "log (schema 9); it has no EPCIS history")
    sql = ("SELECT seq FROM business_events WHERE batch_id = ? AND seq > ? ORDER BY seq"
           + (" LIMIT ?" if limit else ""))
    args: tuple[int, ...] = (batch_id, after, limit) if limit else (batch_id, after)
    if limit:
        seqs = [r[0] for r in conn.execute(sql, args)]
        return Span(batch_id, after, seqs[-1] if seqs else after, len(seqs))
    through, count = conn.execute(
        "SELECT coalesce(max(seq), ?), count(*) FROM business_events WHERE batch_id = ? "
        "AND seq > ?", (after, batch_id, after)).fetchone()
    return Span(batch_id, after, int(through), int(count))


def event_texts(conn: sqlite3.Connection, part: Span) -> Iterator[str]:
    """Each event of ``part`` as compact JSON, ``eventID`` first."""
    last = part.after
    while last < part.through:
        start = last
        for seq, event_id, body in conn.execute(  # row by row: an event can hold 1,000 EPCs
                "SELECT seq, event_id, body FROM business_events WHERE batch_id = ? AND seq > ? "
                "AND seq <= ? ORDER BY seq LIMIT ?", (part.batch_id, last, part.through, PAGE)):
            yield '{"eventID":' + json.dumps(event_id) + "," + body[1:]
            last = seq
        if last == start:
            return


def document_chunks(conn: sqlite3.Connection, part: Span, created_ms: int) -> Iterator[bytes]:
    """An EPCISDocument of ``part``, in pieces of about 64 KiB."""
    head = {"@context": [CONTEXT, NAMESPACES], "type": "EPCISDocument",
            "schemaVersion": "2.0", "creationDate": rfc3339(created_ms)}
    opening = json.dumps(head, ensure_ascii=False)[:-1] + ',"epcisBody":{"eventList":['
    buffer = [opening]
    size = len(opening)
    first = True
    for text in event_texts(conn, part):
        buffer.append(("\n" if first else ",\n") + text)
        first = False
        size += len(text)
        if size >= 65536:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    buffer.append("\n]}}\n")
    yield "".join(buffer).encode()


def document(conn: sqlite3.Connection, batch_id: int, created_ms: int,
             after: int = 0) -> dict[str, Any]:
    """The whole document in memory, for tests and small batches."""
    part = span(conn, batch_id, after)
    result: dict[str, Any] = json.loads(b"".join(document_chunks(conn, part, created_ms)))
    return result


def batch_events(conn: sqlite3.Connection, batch_id: int) -> Iterator[dict[str, Any]]:
    """Every event of a batch, parsed, in log order."""
    for text in event_texts(conn, span(conn, batch_id)):
        yield json.loads(text)
