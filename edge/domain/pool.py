"""The code pool: codes AVAILABLE to print, generated here or imported as code segments.

Every serial ever seen by the site stays in ``codes`` (used, voided, revoked alike) behind a
unique index, so a new or imported serial can never repeat an old one.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from edge.domain import audit, events
from edge.domain.errors import DomainError, ImportRejected, InvalidPayload
from edge.domain.lifecycle import LEVEL_NAME, LEVEL_NUMBER, State
from edge.domain.payloads import MAX_PAYLOAD, PayloadCodec
from edge.domain.serials import SerialScheme, SsccScheme
from edge.store.database import Store, now_ms
from edge.store.staging import Staging
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


def _entries(f: BinaryIO, is_csv: bool, read: Callable[[int], None]
             ) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line, or of the serial column of a CSV
    (separated by ',' or, as Excel writes it in much of the world, ';'), read as a stream.
    Lines end at LF, CR LF or CR only: a GS1 string keeps its group separators."""
    text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
    try:
        yield from _rows(text, is_csv, read)
    finally:
        text.detach()  # the caller owns the file


def _rows(text: io.TextIOWrapper, is_csv: bool, read: Callable[[int], None]
          ) -> Iterator[tuple[int, str]]:
    done = 0

    def lines() -> Iterator[str]:
        nonlocal done
        for n, line in enumerate(text):
            yield line.removeprefix("\ufeff") if n == 0 else line
            done += len(line)
            if done >= 1 << 20:
                read(done)
                done = 0

    if not is_csv:
        for n, line in enumerate(lines(), start=1):
            stripped = line.strip()
            if stripped and stripped[0] != "#":
                yield n, stripped
        read(done)
        return
    rows = lines()
    first = next(rows, "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(itertools.chain([first], rows), delimiter=delimiter)
    column = 0
    header = next(reader, None)
    skipped_header = False
    if header is not None:
        names = [cell.strip().lower() for cell in header]
        for name in ("serial", "code", "payload", "url"):
            if name in names:
                column, skipped_header = names.index(name), True
                break
    body = reader if skipped_header or header is None else itertools.chain([header], reader)
    for row in body:
        if row and any(cell.strip() for cell in row):
            yield reader.line_num, row[column].strip() if column < len(row) else ""
    read(done)


class ImportProgress(Protocol):
    """What a long import reports as it goes: bytes of the file read, then codes added."""

    def reading(self, done: int, total: int) -> None: ...

    def adding(self, done: int, total: int) -> None: ...


class _Silent:
    def reading(self, done: int, total: int) -> None:
        pass

    def adding(self, done: int, total: int) -> None:
        pass


def import_file(
    store: Store,
    line: Line,
    products: list[Product],
    level: Level,
    path: Path,
    *,
    operator: str,
    max_rejects: int = 0,
    progress: ImportProgress | None = None,
    external_id: str | None = None,
) -> ImportReport:
    """Import a code-segment file: one serial or payload per line, or a CSV. A code's
    sequence number in the segment is its line in the file; ``external_id`` is the
    segment's id at the brand's cloud (码段号), which manifests carry.

    The file is taken whole or not at all: if more than ``max_rejects`` lines are refused
    (malformed, foreign, duplicate in the file or already known), nothing is imported. It is
    read as a stream and its serials staged on disk beside the database, so memory does
    not grow with the file.
    """
    progress = progress or _Silent()
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ImportRejected("cannot read {path}: {problem}", path=path,
                             problem=exc.strerror or exc) from None
    with f, Staging(store.path.parent) as staging:
        size = os.fstat(f.fileno()).st_size
        binary = _binary_kind(f.read(8192))
        if binary is not None:
            raise ImportRejected(
                "{path_name} is a binary file ({binary}), not a list of codes: export the "
                "segment as text or CSV; nothing was imported", path_name=path.name,
                binary=binary)
        f.seek(max(0, size - 1))
        ends_in_newline = size == 0 or f.read(1) in (b"\n", b"\r")
        f.seek(0)
        rejects = _Rejects(max_rejects)
        read = 0

        def reading(n: int) -> None:
            nonlocal read
            read += n
            progress.reading(min(read, size), size)

        last_line, last_refused = _stage(
            _entries(f, path.suffix.lower() == ".csv", reading),
            PayloadCodec(line, products), level, staging, rejects)
        if not ends_in_newline and last_refused:
            raise ImportRejected(
                "{path_name} ends in the middle of line {entries}: the file looks truncated; "
                "nothing was imported", path_name=path.name, entries=last_line)
        if not staging.count:
            raise _refused(path, rejects, "no valid codes in the file")
        level_no = LEVEL_NUMBER[level]
        with store.transaction() as conn:
            segment = _new_segment(conn, line.id, level, "imported", path.name, external_id)
            imported = 0
            for chunk in staging.chunks(CHUNK):  # ascending keys: the index fills in order
                added = _insert_new(conn, chunk, level_no, segment)
                if added != len(chunk):
                    first = dict(chunk)
                    for serial in _already_known(conn, [s for s, _ in chunk], segment):
                        rejects.add(Reject(first[serial], serial, "already known to this site"))
                imported += added
                progress.adding(imported, staging.count)
            if rejects.count > max_rejects:
                why = f"{rejects.count} line(s) refused (allowed: {max_rejects})"
                raise _refused(path, rejects, why)
            conn.execute("UPDATE segments SET count = ? WHERE id = ?", (imported, segment))
            events.append(conn, "pool.import", line_id=line.id, count=imported, level=level,
                          segment=segment, file=path.name, rejects=rejects.count)
            audit.record(conn, operator, "pool.import", f"{line.id}/{level}", file=path.name,
                         imported=imported, rejects=rejects.count, segment=segment)
    return ImportReport(segment, imported, rejects.sorted())


def _stage(entries: Iterator[tuple[int, str]], codec: PayloadCodec, level: Level,
           staging: Staging, rejects: _Rejects) -> tuple[int, bool]:
    """Check each entry of a file and stage its serial; the last entry's line number and
    whether it was refused (a truncated file shows as a refused last line)."""
    scheme = codec.schemes[level]
    fast_length = scheme.total_length if isinstance(scheme, SerialScheme) else -1
    fast_check = scheme.check.is_valid if isinstance(scheme, SerialScheme) and scheme.check \
        else None
    batch: list[tuple[str, int]] = []
    line_no, refused = 0, False
    for line_no, text in entries:
        refused = False
        # The common case, a well-formed bare serial, costs one length test and one check.
        if fast_check is not None and len(text) == fast_length and fast_check(text):
            batch.append((text, line_no))
        else:
            reason, serial = _problem(text, codec, scheme, level)
            if reason is None:
                batch.append((serial, line_no))
            else:
                rejects.add(Reject(line_no, _shown(text), reason))
                refused = True
        if len(batch) >= CHUNK:
            refused = _stage_batch(staging, batch, rejects, line_no) or refused
            batch = []
    if batch:
        refused = _stage_batch(staging, batch, rejects, line_no) or refused
    return line_no, refused


def _stage_batch(staging: Staging, batch: list[tuple[str, int]], rejects: _Rejects,
                 last_line: int) -> bool:
    """Stage a batch; whether the file's last line so far repeated an earlier one."""
    repeats = staging.add(batch)
    for serial, line_no, first in repeats:
        rejects.add(Reject(line_no, serial, f"repeats line {first}"))
    return any(line_no == last_line for _, line_no, _ in repeats)


def _problem(text: str, codec: PayloadCodec, scheme: SerialScheme | SsccScheme, level: Level
             ) -> tuple[str | None, str]:
    """Why an entry is refused (None: taken) and the serial it stands for."""
    if len(text) > MAX_PAYLOAD:
        return f"{len(text)} characters is too long for a code", text
    if not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text):
        return "not valid UTF-8", text
    if "://" in text or "\x1d" in text or text.startswith(("]", "(")):
        try:
            parsed = codec.parse(text)
        except InvalidPayload as exc:
            return str(exc), text
        if parsed.level not in (None, level):
            return f"a {parsed.level} code, not a {level} code", parsed.serial
        return None, parsed.serial
    return scheme.problem(text), text


class _Rejects:
    """The lines an import refused: all of them counted, the first few hundred kept (a file
    of garbage must not fill memory with its refusals)."""

    def __init__(self, max_rejects: int) -> None:
        self.keep = max_rejects + 200
        self.count = 0
        self.kept: list[Reject] = []

    def add(self, reject: Reject) -> None:
        self.count += 1
        if len(self.kept) < self.keep:
            self.kept.append(reject)

    def sorted(self) -> list[Reject]:
        return sorted(self.kept, key=lambda r: r.line_no)


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


def _refused(path: Path, rejects: _Rejects, why: str) -> ImportRejected:
    kept = rejects.sorted()
    shown = "\n".join(f"  line {r.line_no}: {r.text}: {r.reason}" for r in kept[:20])
    more = f"\n  ... and {rejects.count - 20} more" if rejects.count > 20 else ""
    return ImportRejected("{file}: {why}; nothing was imported\n{lines}", kept,
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
