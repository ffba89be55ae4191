"""The SQLite store: connection discipline, transactions and the versioned schema.

WAL mode with ``synchronous=FULL``: every commit is on disk before the call returns, so a
reservation is durable before its codes may be sent to a printer and a verdict before the
line acts on it (invariants 1 and 5). Writers take the lock up front (``BEGIN IMMEDIATE``),
so a transaction never fails half-way on a lock upgrade.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.store.schema import SCHEMA_VERSION, migrate

DB_MODE = 0o640
LOCK_WAIT_S = 10.0  # how long a writer waits for another's transaction
LOCK_POLL_S = 0.001


class StoreError(Exception):
    """The database cannot be used: wrong version, locked, not a codeline database."""


class StorageFailure(StoreError):
    """The database cannot be written: disk full, read-only, I/O error, or its file is gone.
    The transaction that met it was rolled back whole; it may be tried again once the
    storage is fixed."""


STORAGE_ERRORS = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")
MIN_FREE_BYTES = 1 << 20


def _storage_failure(path: Path, exc: sqlite3.Error) -> StorageFailure | None:
    """The plant-readable StorageFailure for an SQLite error caused by the storage."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if not name.startswith(STORAGE_ERRORS):
        return None
    if name.startswith("SQLITE_FULL"):
        what = "the disk is full"
    elif name.startswith("SQLITE_READONLY"):
        what = "the database or its folder is read-only"
    elif name.startswith("SQLITE_CANTOPEN"):
        what = "its files cannot be opened (folder removed?)"
    else:
        what = "the disk reported an I/O error"
    return StorageFailure(f"database {path} cannot be written: {what} ({name})")


def _space_note(path: Path) -> str:
    """"; N KB free on its filesystem" when that is less than the database needs."""
    try:
        space = os.statvfs(path.parent)
    except OSError:
        return ""
    free = space.f_bavail * space.f_frsize
    return f"; {free // 1024} KB free on its filesystem" if free < MIN_FREE_BYTES else ""


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch, as stored in every timestamp."""
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """Stored epoch milliseconds as every external interface writes a time: RFC 3339, UTC,
    milliseconds, ``Z`` (e.g. ``2026-11-24T06:00:00.125Z``)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes the file nor creates anything beside it (an archive on
    read-only media, a backup under audit). A database in WAL mode whose ``-shm`` cannot be
    made there (read-only folder) is refused rather than read without its ``-wal``."""
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
            raise StoreError(
                f"{path} is in WAL mode and its folder is read-only, so it cannot be read "
                "safely there: copy it with its -wal file to writable storage (backups made "
                "by `codeline backup` open anywhere)") from None
        raise StoreError(f"{path} is not a usable SQLite database: {exc}") from None
    conn.execute("PRAGMA temp_store=MEMORY")  # checks build temp tables: in memory
    return conn


class Store:
    """One connection to a codeline database file (``read_only``: one that never writes)."""

    def __init__(self, path: str | Path, *, create: bool = False, cache_mb: int = 256,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        # Called with the seconds each write transaction waited for the lock (a controller
        # feeds its metrics with it).
        self.lock_waits: Callable[[float], None] | None = None
        if not create and not self.path.exists():
            raise StoreError(f"no database at {self.path}: run `codeline init` first")
        if read_only:
            self.conn = _open_read_only(self.path)
            self._identity = (0, 0)
            self._check_version(create=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if create and not self.path.exists():
            # The database holds token hashes and the whole code history: owner and group
            # only (SQLite gives its -wal and -shm files the same mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, DB_MODE))
        try:
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=LOCK_WAIT_S, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            failure = _storage_failure(self.path, exc)
            if failure is not None:
                raise StorageFailure(f"{failure}{_space_note(self.path)}") from None
            raise StoreError(f"{self.path} is not a usable SQLite database: {exc}") from None
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        # Large by default so the serial index stays hot; readers that stream pass less.
        self.conn.execute(f"PRAGMA cache_size={-1024 * int(cache_mb)}")
        opened = os.stat(self.path)
        self._identity = (opened.st_dev, opened.st_ino)
        self._check_version(create)

    def _check_version(self, create: bool) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this codeline "
                f"({SCHEMA_VERSION}): upgrade codeline"
            )
        if version < SCHEMA_VERSION:
            if not create and version == 0:
                raise StoreError(f"{self.path} is not a codeline database: run `codeline init`")
            if self.read_only:
                raise StoreError(
                    f"{self.path} has schema version {version}, older than this codeline's "
                    f"({SCHEMA_VERSION}): run `codeline init` to bring it up to date (on "
                    "read-only media, on a copy in writable storage)")
            migrate(self.conn)

    def checkpoint_elsewhere(self) -> Checkpointer:
        """Stop this connection's automatic checkpoints and start a :class:`Checkpointer`
        that does them on its own thread (stop it before closing the store)."""
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        checkpointer = Checkpointer(self.path)
        checkpointer.start()
        return checkpointer

    def schema_version(self) -> int:
        row = self.conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work; any exception rolls everything back. A failure
        of the storage (disk full, read-only, I/O error, the file gone) is StorageFailure."""
        self._check_in_place()
        try:
            self._begin_immediate()
            try:
                yield self.conn
            except BaseException:
                self._roll_back()
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise
        except sqlite3.Error as exc:
            failure = _storage_failure(self.path, exc)
            if failure is None:
                raise
            raise failure from exc

    def _begin_immediate(self) -> None:
        """Take the write lock, asking again every millisecond while another connection
        holds it (up to LOCK_WAIT_S). SQLite's own busy handler sleeps ever longer, up to
        100 ms a time, and so misses the short gaps a bulk load leaves between its
        transactions: a line's commit would wait out the whole load."""
        asked = time.monotonic()
        deadline = asked + LOCK_WAIT_S
        self.conn.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    if self.lock_waits is not None:
                        self.lock_waits(time.monotonic() - asked)
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or \
                            time.monotonic() > deadline:
                        raise
                time.sleep(LOCK_POLL_S)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_S * 1000)}")

    def _roll_back(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def _check_in_place(self) -> None:
        """Writes to a database file that was removed or replaced under the open connection
        would be lost at the next start: refuse them."""
        try:
            now = os.stat(self.path)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != self._identity:
            raise StorageFailure(f"database {self.path} cannot be written: its file was "
                                 "removed or replaced (folder deleted or unmounted?)")

    def storage_problem(self) -> str | None:
        """Why the database could not take writes now (None: it looks writable): its file
        gone, its filesystem read-only or with less than 1 MB free."""
        try:
            self._check_in_place()
            space = os.statvfs(self.path.parent)
        except (StorageFailure, OSError) as exc:
            return str(exc)
        if space.f_flag & os.ST_RDONLY:
            return f"database folder {self.path.parent} is on a read-only filesystem"
        free = space.f_bavail * space.f_frsize
        if free < MIN_FREE_BYTES:
            return (f"database folder {self.path.parent} has {free // 1024} KB free "
                    f"(at least {MIN_FREE_BYTES >> 20} MB needed)")
        return None

    def read(self) -> sqlite3.Connection:
        """The connection, for queries that change nothing."""
        return self.conn

    def size_bytes(self) -> int:
        """Bytes used by the database pages (after a checkpoint, the file size)."""
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(page_size) * (int(pages) - int(free))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Checkpointer:
    """Copies the WAL's pages into the database file from its own connection and thread.

    SQLite's automatic checkpoint runs inside whichever commit crosses its threshold; a
    controller hands that work here (:meth:`Store.checkpoint_elsewhere`), so a line's group
    commit never pays for pages a bulk command wrote. Passive: it never blocks a writer."""

    def __init__(self, path: Path, every_s: float = 0.5) -> None:
        self.path = path
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codeline-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
        try:
            while not self._stop.wait(self.every_s):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
