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

from drivers.vision.decode_process import DecodePool
from edge.daemon import sync_parts
from edge.daemon.control import ControlServer
from edge.daemon.controller_lock import ControllerLock
from edge.daemon.dbworker import DbWorker
from edge.daemon.failpoints import stall_point
from edge.daemon.line import LineRuntime
from edge.daemon.metrics import SiteMetrics, read_store
from edge.daemon.plc_server import PlcServerRunner
from edge.daemon.service import ServiceManager
from edge.domain import flow
from edge.domain.segment_loading import purge_abandoned
from edge.store.database import Checkpointer, Store, now_ms
from edge.store.files import write_replacing
from line_config.models import SiteConfig

log = logging.getLogger("codeline.run")

STATUS_EVERY_S = 0.5
STATUS_MODE = 0o640
SHUTDOWN_TIMEOUT_S = 45.0


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
        self.checkpointer: Checkpointer | None = None
        self.db = DbWorker(self.store)
        self.metrics = SiteMetrics(config.site.id)
        self.store.lock_waits = self.metrics.lock_wait_seconds.observe
        self.decoding = DecodePool()
        self.lines = [LineRuntime(config, line, self.db, self.decoding,
                                  commit_times=self.metrics.commit_observer(line.id))
                      for line in config.lines]
        self.plcs = [PlcServerRunner(line.line.plc, line, base_dir)
                     for line in self.lines if line.line.plc is not None]
        self.control = ControlServer(db_path, {line.line.id: line for line in self.lines},
                                     self.db)
        self.started = time.time()
        self.ready = asyncio.Event()
        self.recovered: flow.RecoveryReport | None = None
        self.lock = ControllerLock(db_path)
        self.service = ServiceManager()

    def snapshot(self) -> dict[str, Any]:
        return {"site": self.config.site.id, "pid": os.getpid(),
                "started_at": round(self.started * 1000), "at": now_ms(),
                "database": str(self.db_path),
                "plc": [p.endpoint for p in self.plcs],
                "lines": [line.snapshot().as_dict() for line in self.lines]}

    async def scrape(self) -> bytes:
        """``GET /metrics``: the lines' snapshots taken here on the event loop, the
        database's figures read in a worker thread."""
        lines = [line.snapshot() for line in self.lines]
        store = await asyncio.to_thread(read_store, self.db_path,
                                        [line.line.id for line in self.lines])
        return self.metrics.render(lines, store)

    async def _status_forever(self) -> None:
        """Every half second, the snapshot taken here on the event loop (where the lines'
        figures live) is written by a worker thread. A failed write is logged once per
        cause and never ends the controller: the line matters more than its status file."""
        failure: int | None = None
        path = status_path(self.db_path)
        while True:
            stall_point("loop.stall")
            data = json.dumps(self.snapshot()).encode()
            try:
                await asyncio.to_thread(write_replacing, path, data, STATUS_MODE)
            except OSError as exc:
                if exc.errno != failure:
                    failure = exc.errno
                    log.error("status not written to %s: %s", path, exc.strerror or exc,
                              extra={"site": self.config.site.id})
            else:
                failure = None
            await asyncio.sleep(STATUS_EVERY_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop every line cleanly. Nothing is touched
        before this controller holds the database's lock."""
        try:
            self.lock.acquire()
        except BaseException:
            self.db.close()
            self.store.close()
            raise
        try:
            self.checkpointer = await self.db.call(Store.checkpoint_elsewhere)
            await self.db.call(purge_abandoned)  # loads whose process was killed
            self.recovered = await self.db.call(flow.recover, operator="startup")
            if self.recovered.voided or self.recovered.rejected:
                log.warning("recovered codes of unknown fate", extra={
                    "voided": self.recovered.voided, "rejected": self.recovered.rejected})
            for plc in self.plcs:
                await plc.start()
            await self.control.start()
            async with asyncio.TaskGroup() as tasks:
                workers = [tasks.create_task(line.run(), name=f"line-{line.line.id}")
                           for line in self.lines]
                workers += [tasks.create_task(plc.run()) for plc in self.plcs]
                workers.append(tasks.create_task(self._status_forever()))
                workers.append(tasks.create_task(self.service.watchdog()))
                for name, part in sync_parts.parts(self.config, self.db_path,
                                                   self.base_dir, self.scrape).items():
                    workers.append(tasks.create_task(
                        sync_parts.supervised(name, part, self.config.site.id), name=name))
                self.ready.set()
                self.service.ready(f"{len(self.lines)} line(s) up: "
                                   + ", ".join(line.line.id for line in self.lines))
                await stop.wait()
                log.info("stopping", extra={"site": self.config.site.id})
                self.service.stopping()
                for line in self.lines:
                    try:
                        async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                            await line.shutdown()
                    except TimeoutError:
                        log.error("line did not stop within %.0f s: its codes of unknown "
                                  "fate are settled by recovery", SHUTDOWN_TIMEOUT_S,
                                  extra={"line": line.line.id})
                await self.db.call(flow.recover, operator="shutdown")
                for worker in workers:
                    worker.cancel()
        finally:
            await self.control.stop()
            for plc in self.plcs:
                await plc.stop()
            await asyncio.to_thread(self.decoding.close)
            if self.checkpointer is not None:
                await asyncio.to_thread(self.checkpointer.stop)
            self.db.close()
            self.store.close()
            with contextlib.suppress(OSError):
                status_path(self.db_path).unlink()
            self.lock.release()


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
