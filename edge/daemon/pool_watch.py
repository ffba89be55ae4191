"""Warns before a line's code pools run dry: a standing alarm per level (shown to the PLC and
in the live view, never a hold) while fewer codes are left than the running batch still
needs, or fewer than the level's low-water mark; cleared once codes are added."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from edge.domain import pool
from edge.store.database import Store, StoreError
from line_config.models import LEVELS, Level, Line

log = logging.getLogger("codeline.line")

POOL_WATCH_S = 5.0


class PoolWatch:
    """Counts the pools on a read-only connection of its own (a reader never delays the
    line's commits in WAL mode) every few seconds while the line produces; the connection is
    opened, used and closed in one worker thread, so a cancelled round leaves none behind."""

    def __init__(self, line: Line, db_path: Path, items_left: Callable[[], int | None],
                 alarm: Callable[[str, str], None], every_s: float = POOL_WATCH_S) -> None:
        self.line = line
        self.db_path = db_path
        self.items_left = items_left
        self.alarm = alarm
        self.every_s = every_s
        self.shown: dict[Level, str] = {}

    def _available(self, store: Store) -> dict[Level, int]:
        conn = store.read()
        return {level: pool.available_count(conn, self.line.id, level) for level in LEVELS}

    async def run(self) -> None:
        """Until cancelled. A count that fails (database busy or gone) is logged once and
        tried again at the next round: a warning never ends anything."""
        failed = ""
        try:
            while True:
                try:
                    available = await asyncio.to_thread(self._count)
                except (StoreError, sqlite3.Error) as exc:
                    if str(exc) != failed:
                        failed = str(exc)
                        log.warning("pools not counted: %s", exc, extra={"line": self.line.id})
                else:
                    failed = ""
                    self.show(pool.runway_warnings(self.line, available, self.items_left()))
                await asyncio.sleep(self.every_s)
        finally:
            self.show({})  # a batch that ends needs nothing more

    def _count(self) -> dict[Level, int]:
        """One count, on a read-only connection opened and closed in this worker thread."""
        with Store(self.db_path, cache_mb=8, read_only=True) as store:
            return self._available(store)

    def show(self, warnings: dict[Level, str]) -> None:
        for level in LEVELS:
            text = warnings.get(level, "")
            if text != self.shown.get(level, ""):
                self.alarm(f"pool.{level}", text)
                self.shown[level] = text
