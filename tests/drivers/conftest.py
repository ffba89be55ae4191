"""Driver tests: every test must leave no task running behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    leaked: list[asyncio.Task[object]] = []
    for _ in range(50):  # tasks being cancelled (a server's sessions) get a moment to end
        await asyncio.sleep(0.01)
        leaked = [t for t in asyncio.all_tasks() - before
                  if t is not asyncio.current_task() and not t.done()]
        if not leaked:
            break
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"
