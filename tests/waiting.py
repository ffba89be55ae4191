"""Waiting for a state, never for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(condition: Callable[[], bool], what: str, within: float = 60,
                poll: float = 0.02) -> None:
    """Until ``condition()`` holds (polled every ``poll`` s); fails naming ``what``."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(poll)


async def until_read(read: Callable[[], Awaitable[T]], holds: Callable[[T], bool], what: str,
                     within: float = 60, poll: float = 0.05) -> T:
    """Until what ``read()`` returns satisfies ``holds`` (polled); that value, or a failure
    naming ``what`` and the last value read."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await read()
        if holds(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what} (last: {value!r})")
        await asyncio.sleep(poll)
