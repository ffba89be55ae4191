"""Waiting for a state, never for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], what: str, within: float = 60,
                poll: float = 0.02) -> None:
    """Until ``condition()`` holds (polled every ``poll`` s); fails naming ``what``."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(poll)
