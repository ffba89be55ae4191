"""All database work of the runtime runs on one thread, so the event loop never waits on
the disk and the one SQLite connection is never used from two threads at once."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from edge.store.database import Store

P = ParamSpec("P")
T = TypeVar("T")


class DbWorker:
    """Runs store calls in order on a single thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codeline-db")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, *args, **kwargs)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, self.store, *args,
                                                                       **kwargs))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
