"""All database work of the runtime runs on one thread, so the event loop never waits on
the disk and the one SQLite connection is never used from two threads at once."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, Protocol, TypeVar

from edge.store.database import StorageFailure, Store

P = ParamSpec("P")
T = TypeVar("T")


class DbWorker:
    """Runs store calls in order on a single thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codeline-db")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, *args, **kwargs)`` on the database thread. Once asked for, the call
        runs even if its caller is cancelled meanwhile (production halted): dropping a call
        still queued behind another would lose work its caller had already taken on, such
        as a group commit's print confirmations, leaving their codes RESERVED."""
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.pool, functools.partial(fn, self.store, *args,
                                                                 **kwargs))
        work.add_done_callback(_outcome_taken)
        return await asyncio.shield(work)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _outcome_taken(work: asyncio.Future[Any]) -> None:
    """A call whose caller was cancelled has nobody to take its outcome; a failure of it is
    settled by recovery at the next start."""
    if not work.cancelled():
        work.exception()


class DbCalls(Protocol):
    """Runs store calls for the runtime (a DbWorker, or a StorageGuard in front of one)."""

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class StorageGuard:
    """The production tasks' way to the database when the storage fails.

    A write that fails for want of storage (disk full, read-only, the file gone) holds the
    line with an alarm naming the cause; that call and every later one wait, and none is
    dropped: the failed transaction was rolled back whole and is tried again once Unhold
    finds the storage writable (:meth:`resume`). Stop, Abort and shutdown end the waiting
    (:meth:`stop_waiting`): calls then fail at once instead of blocking the way out."""

    def __init__(self, db: DbWorker, on_failure: Callable[[str], None]) -> None:
        self.db = db
        self.on_failure = on_failure
        self.cause: str | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.waiting = True

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        while True:
            await self.writable.wait()
            try:
                return await self.db.call(fn, *args, **kwargs)
            except StorageFailure as exc:
                if not self.waiting:
                    raise
                if self.writable.is_set():
                    self.writable.clear()
                    self.cause = str(exc)
                    self.on_failure(self.cause)

    def resume(self) -> None:
        """The storage looks writable again: the waiting calls try again."""
        self.cause = None
        self.writable.set()

    def stop_waiting(self) -> None:
        self.waiting = False
        self.writable.set()
