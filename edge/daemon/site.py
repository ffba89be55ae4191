"""``codeline run``: one asyncio process for the site's lines, under one TaskGroup.

Start-up settles codes of unknown fate (``recover``) before any line may print; SIGTERM or
SIGINT brings every line to Stopped (printer buffers settled, unknown codes voided) before
the process ends. A status snapshot is written beside the database for ``codeline status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.daemon.dbworker import DbWorker
from edge.daemon.line import LineRuntime
from edge.daemon.plc_server import PlcServerRunner
from edge.domain import flow
from edge.store.database import Store
from line_config.models import SiteConfig

log = logging.getLogger("codeline.run")

STATUS_EVERY_S = 0.5


def status_path(db_path: Path) -> Path:
    """Where the running daemon writes its status snapshot."""
    return db_path.with_name(db_path.name + ".status.json")


class Site:
    """The lines of one site, their PLC servers and the status writer."""

    def __init__(self, config: SiteConfig, db_path: Path, base_dir: Path) -> None:
        self.config = config
        self.db_path = db_path
        self.base_dir = base_dir
        self.store = Store(db_path, create=True)
        self.db = DbWorker(self.store)
        self.lines = [LineRuntime(config, line, self.db) for line in config.lines]
        self.plcs = [PlcServerRunner(line.line.plc, line, base_dir)
                     for line in self.lines if line.line.plc is not None]
        self.started = time.time()
        self.ready = asyncio.Event()
        self.recovered: flow.RecoveryReport | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"site": self.config.site.id, "pid": os.getpid(), "started": self.started,
                "at": time.time(), "database": str(self.db_path),
                "plc": [p.endpoint for p in self.plcs],
                "lines": [line.snapshot() for line in self.lines]}

    def write_status(self) -> None:
        path = status_path(self.db_path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, path)

    async def _status_forever(self) -> None:
        while True:
            await asyncio.to_thread(self.write_status)
            await asyncio.sleep(STATUS_EVERY_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop every line cleanly."""
        self.recovered = await self.db.call(flow.recover, operator="startup")
        if self.recovered.voided or self.recovered.rejected:
            log.warning("recovered codes of unknown fate", extra={
                "voided": self.recovered.voided, "rejected": self.recovered.rejected})
        try:
            for plc in self.plcs:
                await plc.start()
            async with asyncio.TaskGroup() as tasks:
                workers = [tasks.create_task(line.run(), name=f"line-{line.line.id}")
                           for line in self.lines]
                workers += [tasks.create_task(plc.run()) for plc in self.plcs]
                workers.append(tasks.create_task(self._status_forever()))
                self.ready.set()
                await stop.wait()
                log.info("stopping", extra={"site": self.config.site.id})
                for line in self.lines:
                    await line.shutdown()
                await self.db.call(flow.recover, operator="shutdown")
                await asyncio.to_thread(self.write_status)
                for worker in workers:
                    worker.cancel()
        finally:
            for plc in self.plcs:
                await plc.stop()
            self.db.close()
            self.store.close()
            with contextlib.suppress(OSError):
                status_path(self.db_path).unlink()


async def run_site(config: SiteConfig, db_path: Path, base_dir: Path,
                   on_ready: Callable[[Site], None] | None = None) -> None:
    """``codeline run``: serve until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    site = Site(config, db_path, base_dir)
    if on_ready is not None:
        async def announce() -> None:
            await site.ready.wait()
            on_ready(site)
        waiter = asyncio.create_task(announce())
    try:
        await site.run(stop)
    finally:
        if on_ready is not None:
            waiter.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
