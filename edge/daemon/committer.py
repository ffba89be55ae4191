"""Group commit of a line's print confirmations and verdicts: the judged-through number is
published to the PLC only once its verdicts are on disk (invariant 5)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.daemon.dbworker import DbCalls
from edge.daemon.failpoints import failpoint, stall_point
from edge.domain import flow
from edge.domain.lifecycle import Reason
from edge.store.database import StorageFailure, Store


@dataclass
class InTransit:
    """An item between printer and camera: its number and the serial printed on it.

    ``code_id`` None marks a second print of a code (a double print): rejected, and the
    code's own state is left to the first item that carries it."""

    seq: int
    code_id: int | None
    serial: str
    printed_at: float


@dataclass
class Judged:
    """A verdict waiting for its commit."""

    item: InTransit
    reject: Reason | None
    told: bool = False  # a reject already published to the PLC, ahead of its commit


class Committer:
    """Group commit of print confirmations and verdicts.

    A reject not yet told to the PLC is committed at once (the gate is waiting for it); other
    verdicts wait at most ``commit_ms`` or until ``commit_every`` are pending. Commits run on
    the database thread, one at a time and in order, and each is published only after it is
    on disk."""

    def __init__(self, db: DbCalls, batch_id: int, every: int, ms: int,
                 committed: Callable[[list[Judged]], Awaitable[None]],
                 commit_times: Callable[[float], None]) -> None:
        self.db = db
        self.batch_id = batch_id
        self.every = every
        self.window = ms / 1000
        self.committed = committed
        self.commit_times = commit_times
        self.printed: list[int] = []
        self.judged: list[Judged] = []
        self.first_at: float | None = None
        self._work = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped = asyncio.Event()  # set while no commit task runs
        self._stopped.set()
        self.commits = 0
        self.durations: deque[float] = deque(maxlen=100_000)  # seconds per group commit

    def add_printed(self, code_id: int) -> None:
        self.printed.append(code_id)
        self._mark()

    def add_verdict(self, judged: Judged) -> None:
        self.judged.append(judged)
        self._mark()
        if (judged.reject is not None and not judged.told) or len(self.judged) >= self.every:
            self._urgent.set()

    def _mark(self) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self._idle.clear()
        self._work.set()

    async def drain(self) -> None:
        """Commit everything pending now and wait until it is on disk. Should the commit
        task have ended (it failed, or production was halted), the pending work is
        committed here instead of waited for."""
        if self._stopped.is_set():
            await self._commit_pending()
            return
        self._urgent.set()
        idle = asyncio.ensure_future(self._idle.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((idle, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            stopped.cancel()
        if not self._idle.is_set():
            await self._commit_pending()

    async def run(self) -> None:
        self._stopped.clear()
        try:
            while True:
                await self._work.wait()
                failpoint("flow.commit")
                if not self._urgent.is_set() and self.first_at is not None:
                    delay = self.first_at + self.window - time.monotonic()
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(delay):
                                await self._urgent.wait()
                await self._commit_pending()
        finally:
            self._stopped.set()

    async def _commit_pending(self) -> None:
        printed, judged = self.printed, self.judged
        self.printed, self.judged, self.first_at = [], [], None
        self._work.clear()
        self._urgent.clear()
        verdicts = [flow.Verdict(j.item.code_id, j.reject) for j in judged
                    if j.item.code_id is not None]
        started = time.perf_counter()
        try:
            await self.db.call(_record_line, self.batch_id, printed, verdicts)
        except StorageFailure:
            # Rolled back whole: still pending, for the next attempt (a restart recovers
            # them otherwise: printed without a verdict is rejected, as the gate did).
            self.printed, self.judged = printed + self.printed, judged + self.judged
            raise
        took = time.perf_counter() - started
        self.durations.append(took)
        self.commit_times(took)
        self.commits += 1
        await self.committed(judged)
        if not self.printed and not self.judged:
            self._idle.set()


def _record_line(store: Store, batch_id: int, printed: list[int],
                 verdicts: list[flow.Verdict]) -> None:
    """One group commit, on the database thread (where ``flow.commit_stall`` hangs it while
    the event loop, and the rejects told ahead of their commit, go on)."""
    stall_point("flow.commit_stall")
    flow.record_line(store, batch_id, "item", printed, verdicts)
