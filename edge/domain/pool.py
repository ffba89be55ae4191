"""The code pool: codes AVAILABLE to print, generated here or imported as code segments.

Every serial ever seen by the site stays in ``codes`` (used, voided, revoked alike) behind a
unique index, so a new or imported serial can never repeat an old one.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.domain import audit, events
from edge.domain.errors import DomainError, ImportRejected, InvalidPayload
from edge.domain.lifecycle import LEVEL_NAME, LEVEL_NUMBER, State
from edge.domain.payloads import MAX_PAYLOAD, PayloadCodec
from edge.domain.serials import SerialScheme, SsccScheme
from edge.store.database import Store, now_ms
from line_config.models import Level, Line, Product

CHUNK = 20_000
Progress = Callable[[int], None]
"""Called with the number of codes just handled, for progress bars."""


def _no_progress(_: int) -> None:
    return None


def _new_segment(
    conn: sqlite3.Connection, line_id: str, level: Level, source: str, origin: str,
    external_id: str | None = None,
) -> int:
    cursor = conn.execute(
        "INSERT INTO segments (line_id, level, source, origin, created_at, count, external_id) "
        "VALUES (?, ?, ?, ?, ?, 0, ?)",
        (line_id, LEVEL_NUMBER[level], source, origin, now_ms(), external_id),
    )
    return int(cursor.lastrowid or 0)


def _insert_new(conn: sqlite3.Connection, serials: list[tuple[str, int]], level: int,
                segment: int) -> int:
    """Insert (serial, sequence number in the segment) pairs not seen before (sorted by
    serial, for B-tree locality); returns how many."""
    serials.sort()
    before = conn.total_changes
    conn.executemany(
        "INSERT INTO codes (serial, level, state, segment_id, seq) VALUES (?, ?, 0, ?, ?) "
        "ON CONFLICT(serial) DO NOTHING",
        ((s, level, segment, n) for s, n in serials),
    )
    return conn.total_changes - before


def generate(
    store: Store,
    line: Line,
    level: Level,
    count: int,
    *,
    operator: str,
    progress: Progress = _no_progress,
) -> int:
    """Add ``count`` new codes for ``level`` of ``line`` to the pool; returns the segment id."""
    if not 1 <= count <= 100_000_000:
        raise DomainError("count must be between 1 and 100,000,000, got {count}",
                          count=count)
    fmt = line.codes.for_level(level)
    level_no = LEVEL_NUMBER[level]
    with store.transaction() as conn:
        segment = _new_segment(conn, line.id, level, "generated", "")
        if fmt.symbology == "sscc":
            _generate_sscc(conn, SsccScheme.from_config(fmt), count, level_no, segment, progress)
        else:
            scheme = SerialScheme.from_config(fmt.serial)
            remaining = count
            drawn = 0
            while remaining:
                batch = [(s, drawn + k + 1) for k, s in enumerate(scheme.draw(min(remaining,
                                                                              CHUNK)))]
                drawn += len(batch)
                added = _insert_new(conn, batch, level_no, segment)
                remaining -= added  # a collision with an old serial is simply drawn again
                progress(added)
        conn.execute("UPDATE segments SET count = ? WHERE id = ?", (count, segment))
        events.append(conn, "pool.generate", line_id=line.id, count=count, level=level,
                      segment=segment)
        audit.record(conn, operator, "pool.generate", f"{line.id}/{level}", count=count,
                     segment=segment)
    return segment


def _generate_sscc(
    conn: sqlite3.Connection, scheme: SsccScheme, count: int, level: int, segment: int,
    progress: Progress,
) -> None:
    name = f"sscc:{scheme.extension_digit}{scheme.company_prefix}"
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    start = int(row[0]) if row else 0
    if start + count > scheme.capacity:
        raise DomainError(
            "company prefix {scheme_company_prefix} has room for {scheme_capacity:,} SSCCs; "
            "{start:,} are used and {count:,} more were asked for",
            scheme_company_prefix=scheme.company_prefix,
            scheme_capacity=scheme.capacity, start=start, count=count
        )
    serials = [(scheme.make(ref), ref - start + 1) for ref in range(start, start + count)]
    added = _insert_new(conn, serials, level, segment)
    if added != count:
        raise DomainError(
            "{taken} SSCCs of the range starting at reference {start} already exist: another "
            "system issued them; check the company prefix and extension digit",
            taken=count - added, start=start
        )
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        (name, start + count),
    )
    progress(count)


@dataclass(frozen=True)
class Reject:
    """One line of an import file that was not taken, and why."""

    line_no: int
    text: str
    reason: str


@dataclass
class ImportReport:
    """What an import did: how many codes were added, and every line it refused."""

    segment_id: int | None
    imported: int
    rejects: list[Reject] = field(default_factory=list)


def _shown(text: str) -> str:
    safe = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return safe if len(safe) <= 48 else safe[:45] + "..."


_MAGIC = {b"PK\x03\x04": "a ZIP archive: an .xlsx workbook?",
          b"\xd0\xcf\x11\xe0": "an .xls workbook", b"%PDF": "a PDF",
          b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
          b"\x1f\x8b": "gzip-compressed", b"SQLite format 3\0": "an SQLite database"}
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r")


def _binary_kind(data: bytes) -> str | None:
    """What a file that is not text looks like, or None for text. A stray control character
    in one line is that line's problem (refused with its number), not a binary file."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    head = data[:8192]
    controls = len(head) - len(head.translate(None, _CONTROL))
    if head and controls * 10 > len(head):
        return f"{controls} control bytes in its first {len(head)}"
    return None


def _entries(data: bytes, is_csv: bool) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line, or of the serial column of a CSV
    (separated by ',' or, as Excel writes it in much of the world, ';')."""
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if not is_csv:
        lines: list[tuple[int, str]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if stripped and stripped[0] != "#":
                lines.append((n, stripped))
        return lines
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    column = 0
    start = 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        for name in ("serial", "code", "payload", "url"):
            if name in header:
                column, start = header.index(name), 1
                break
    out: list[tuple[int, str]] = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        out.append((n, row[column].strip() if column < len(row) else ""))
    return out


def import_file(
    store: Store,
    line: Line,
    products: list[Product],
    level: Level,
    path: Path,
    *,
    operator: str,
    max_rejects: int = 0,
    progress: Progress = _no_progress,
    external_id: str | None = None,
) -> ImportReport:
    """Import a code-segment file: one serial or payload per line, or a CSV. A code's
    sequence number in the segment is its line in the file; ``external_id`` is the
    segment's id at the brand's cloud (码段号), which manifests carry.

    The file is taken whole or not at all: if more than ``max_rejects`` lines are refused
    (malformed, foreign, duplicate in the file or already known), nothing is imported.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRejected("cannot read {path}: {problem}", path=path,
                             problem=exc.strerror or exc) from None
    binary = _binary_kind(data)
    if binary is not None:
        raise ImportRejected(
            "{path_name} is a binary file ({binary}), not a list of codes: export the segment "
            "as text or CSV; nothing was imported", path_name=path.name, binary=binary)
    is_csv = path.suffix.lower() == ".csv"
    entries = _entries(data, is_csv)
    codec = PayloadCodec(line, products)
    scheme = codec.schemes[level]
    rejects: list[Reject] = []
    first_seen: dict[str, int] = {}
    fast_length = scheme.total_length if isinstance(scheme, SerialScheme) else -1
    fast_check = scheme.check.is_valid if isinstance(scheme, SerialScheme) and scheme.check \
        else None
    for line_no, text in entries:
        # The common case, a well-formed bare serial, costs one length test and one fold.
        if fast_check is not None and len(text) == fast_length and text not in first_seen \
                and fast_check(text):
            first_seen[text] = line_no
            continue
        reason = None
        serial = text
        if len(text) > MAX_PAYLOAD:
            reason = f"{len(text)} characters is too long for a code"
        elif not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text):
            reason = "not valid UTF-8"
        elif "://" in text or "\x1d" in text or text.startswith(("]", "(")):
            try:
                parsed = codec.parse(text)
            except InvalidPayload as exc:
                reason = str(exc)
            else:
                serial = parsed.serial
                if parsed.level not in (None, level):
                    reason = f"a {parsed.level} code, not a {level} code"
        else:
            reason = scheme.problem(text)
        if reason is None and serial in first_seen:
            reason = f"repeats line {first_seen[serial]}"
        if reason is not None:
            rejects.append(Reject(line_no, _shown(text), reason))
        else:
            first_seen[serial] = line_no
    if data and not data.endswith(b"\n") and entries and rejects and \
            rejects[-1].line_no == entries[-1][0]:
        raise ImportRejected(
            "{path_name} ends in the middle of line {entries}: the file looks truncated; "
            "nothing was imported", path_name=path.name, entries=entries[-1][0]
        )
    if not first_seen:
        raise _refused(path, rejects, "no valid codes in the file")
    level_no = LEVEL_NUMBER[level]
    serials = sorted(first_seen.items())  # ascending keys: the serial index fills in order
    with store.transaction() as conn:
        segment = _new_segment(conn, line.id, level, "imported", path.name, external_id)
        imported = 0
        for start in range(0, len(serials), CHUNK):
            chunk = serials[start : start + CHUNK]
            added = _insert_new(conn, chunk, level_no, segment)
            if added != len(chunk):
                for serial in _already_known(conn, [s for s, _ in chunk], segment):
                    rejects.append(Reject(first_seen[serial], serial, "already known to this site"))
            imported += added
            progress(len(chunk))
        if len(rejects) > max_rejects:
            why = f"{len(rejects)} line(s) refused (allowed: {max_rejects})"
            raise _refused(path, rejects, why)
        conn.execute("UPDATE segments SET count = ? WHERE id = ?", (imported, segment))
        events.append(conn, "pool.import", line_id=line.id, count=imported, level=level,
                      segment=segment, file=path.name, rejects=len(rejects))
        audit.record(conn, operator, "pool.import", f"{line.id}/{level}", file=path.name,
                     imported=imported, rejects=len(rejects), segment=segment)
    rejects.sort(key=lambda r: r.line_no)
    return ImportReport(segment, imported, rejects)


def _already_known(conn: sqlite3.Connection, serials: list[str], segment: int) -> list[str]:
    known: list[str] = []
    for start in range(0, len(serials), 500):
        part = serials[start : start + 500]
        marks = ",".join("?" * len(part))
        known.extend(
            row[0]
            for row in conn.execute(
                f"SELECT serial FROM codes WHERE serial IN ({marks}) AND segment_id != ?",
                (*part, segment),
            )
        )
    return known


def _refused(path: Path, rejects: list[Reject], why: str) -> ImportRejected:
    rejects.sort(key=lambda r: r.line_no)
    shown = "\n".join(f"  line {r.line_no}: {r.text}: {r.reason}" for r in rejects[:20])
    more = f"\n  ... and {len(rejects) - 20} more" if len(rejects) > 20 else ""
    return ImportRejected("{file}: {why}; nothing was imported\n{lines}", rejects,
                          file=path.name, why=why, lines=f"{shown}{more}".rstrip())


@dataclass(frozen=True)
class PoolLevelStats:
    """Counts of one line's codes at one level, by state."""

    line_id: str
    level: Level
    by_state: dict[str, int]
    low_water: int

    @property
    def available(self) -> int:
        return self.by_state.get(State.AVAILABLE.name, 0)

    @property
    def low(self) -> bool:
        return self.available < self.low_water


def stats(store: Store, lines: list[Line]) -> list[PoolLevelStats]:
    """Per line and level: codes by state, and whether AVAILABLE is under the low-water mark."""
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for line_id, level, state, n in store.read().execute(
        "SELECT s.line_id, c.level, c.state, count(*) FROM codes c "
        "JOIN segments s ON s.id = c.segment_id GROUP BY s.line_id, c.level, c.state"
    ):
        counts.setdefault((line_id, level), {})[State(state).name] = n
    out = []
    for line in lines:
        for level_no, level in LEVEL_NAME.items():
            out.append(
                PoolLevelStats(line.id, level, counts.get((line.id, level_no), {}),
                               line.low_water(level))
            )
    return out


def available_count(conn: sqlite3.Connection, line_id: str, level: Level) -> int:
    """How many codes ``line_id`` can still reserve at ``level``."""
    row = conn.execute(
        "SELECT count(*) FROM codes WHERE state = 0 AND segment_id IN "
        "(SELECT id FROM segments WHERE line_id = ? AND level = ?)",
        (line_id, LEVEL_NUMBER[level]),
    ).fetchone()
    return int(row[0])


def needed_for(line: Line, items_left: int) -> dict[Level, int]:
    """Codes per level that ``items_left`` more good items take, packed by the line's
    packaging (rejects take more: this is the least)."""
    cases = -(-items_left // line.packaging.items_per_case)
    return {"item": items_left, "case": cases,
            "pallet": -(-cases // line.packaging.cases_per_pallet)}


def runway_warnings(line: Line, available: dict[Level, int], items_left: int | None
                    ) -> dict[Level, str]:
    """Per level, why the pool needs codes before the line runs out: fewer left than the
    running batch still needs (``items_left`` to its plan), or under the low-water mark."""
    needed = needed_for(line, items_left) if items_left is not None else {}
    out: dict[Level, str] = {}
    for level, left in available.items():
        need, mark = needed.get(level, 0), line.low_water(level)
        fix = f"add {level} codes (`codeline pool generate` or `pool import --level {level}`)"
        if left < need:
            out[level] = (f"{level} pool runs dry before the batch ends: {left:,} codes left, "
                          f"the plan needs {need:,}: {fix}")
        elif left < mark:
            out[level] = f"{level} pool low: {left:,} codes left (low-water mark {mark:,}): {fix}"
    return out
