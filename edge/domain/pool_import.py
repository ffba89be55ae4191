"""Import of a code segment (码段) file into the pool: one serial or payload per line, or a
CSV; taken whole or not at all. The file is read as a stream and its serials staged on disk
beside the database, so memory does not grow with the file."""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from edge.domain import audit, events
from edge.domain.errors import ImportRejected, InvalidPayload
from edge.domain.payloads import MAX_PAYLOAD, PayloadCodec
from edge.domain.pool import CHUNK
from edge.domain.segment_loading import LoadFigures, SegmentLoad, purge_abandoned
from edge.domain.serials import SerialScheme, SsccScheme
from edge.store.database import Store
from edge.store.staging import Staging
from line_config.models import Level, Line, Product


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
    load: LoadFigures = field(default_factory=LoadFigures)


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
        purge_abandoned(store)
        with SegmentLoad(store, line.id, level, "imported", path.name, external_id) as load:
            imported = 0
            for chunk in staging.chunks(CHUNK):  # ascending keys: the index fills in order
                known = load.add_rows(chunk)
                if known:
                    first = dict(chunk)
                    for serial in known:
                        rejects.add(Reject(first[serial], serial, "already known to this site"))
                imported += len(chunk) - len(known)
                progress.adding(imported, staging.count)
            if rejects.count > max_rejects:
                why = f"{rejects.count} line(s) refused (allowed: {max_rejects})"
                raise _refused(path, rejects, why)
            segment = load.segment
            with load.publishing(imported) as conn:
                events.append(conn, "pool.import", line_id=line.id, count=imported,
                              level=level, segment=segment, file=path.name,
                              rejects=rejects.count)
                audit.record(conn, operator, "pool.import", f"{line.id}/{level}",
                             file=path.name, imported=imported, rejects=rejects.count,
                             segment=segment)
    return ImportReport(segment, imported, rejects.sorted(), load.figures)


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


def _refused(path: Path, rejects: _Rejects, why: str) -> ImportRejected:
    kept = rejects.sorted()
    shown = "\n".join(f"  line {r.line_no}: {r.text}: {r.reason}" for r in kept[:20])
    more = f"\n  ... and {rejects.count - 20} more" if rejects.count > 20 else ""
    return ImportRejected("{file}: {why}; nothing was imported\n{lines}", kept,
                          file=path.name, why=why, lines=f"{shown}{more}".rstrip())
