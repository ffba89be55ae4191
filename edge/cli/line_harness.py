"""A simulated line and its controller on loopback, in one process: what ``codeline demo``
runs, and what tests and benchmarks start around a real ``codeline run`` process.

:func:`loopback_config` moves every device, the PLC server and the pull API of a config onto
free loopback ports and the database into a work folder, so that several runs never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.daemon.site import Site
from edge.domain import batches, pool
from edge.domain.batches import Batch
from edge.store.database import Store
from line_config.models import Level, SiteConfig
from simulators.line import LineSimSettings, SimLine
from simulators.plc import PlcSim
from sync import serving


def loopback_config(config: SiteConfig, workdir: Path,
                    sync_in_run: tuple[str, ...] | None = None) -> SiteConfig:
    """``config`` with free loopback ports and its database in ``workdir`` (and, when given,
    the sync parts ``codeline run`` serves)."""
    data: dict[str, Any] = config.model_dump(mode="python", exclude_none=False)
    data["store"]["path"] = str(workdir / "codeline.db")
    free_port = serving.free_port
    for line in data["lines"]:
        for device in line["devices"]:
            transport = device.get("transport", {})
            if transport.get("kind") in ("tcp", "modbus_tcp"):
                transport["host"] = "127.0.0.1"
                transport["port"] = free_port()
            if "endpoint" in transport:
                path = urlsplit(transport["endpoint"]).path
                transport["endpoint"] = f"opc.tcp://127.0.0.1:{free_port()}{path}"
                if transport.get("client_cert_file"):
                    pki = workdir / "pki" / "devices"
                    transport["client_cert_file"] = str(pki / "client-cert.der")
                    transport["client_key_file"] = str(pki / "client-key.pem")
        if line.get("plc"):
            line["plc"]["host"] = "127.0.0.1"
            line["plc"]["port"] = free_port()
            line["plc"]["cert_dir"] = str(workdir / "pki")
    data["sync"]["api"]["port"] = free_port()
    data["sync"]["signing_key_file"] = str(workdir / "keys" / "manifest-signing.key")
    if sync_in_run is not None:
        data["sync"]["in_run"] = sync_in_run
    return SiteConfig.model_validate(data)


def stock_line(config: SiteConfig, db_path: Path, pools: dict[Level, int], lot: str,
               planned: int, operator: str) -> Batch:
    """A fresh database for the first line of ``config``: code pools of these sizes per
    level, and one created batch of ``planned`` items of the first product."""
    line = config.lines[0]
    with Store(db_path, create=True) as store:
        for level, count in pools.items():
            pool.generate(store, line, level, count, operator=operator)
        return batches.create(store, config, line.id, config.products[0].id, lot,
                              operator=operator, planned_qty=planned)


def plc_endpoint(config: SiteConfig, line_index: int = 0) -> str:
    plc = config.lines[line_index].plc
    if plc is None:
        raise ValueError(f"line {config.lines[line_index].id} has no plc section")
    return f"opc.tcp://{plc.host}:{plc.port}/codeline/"


@dataclass
class RunningLine:
    """The controller, the simulated line and its PLC, all in this process."""

    site: Site
    sim: SimLine
    plc: PlcSim
    daemon: asyncio.Task[None]

    def check_alive(self) -> None:
        """Raise if the controller stopped on its own."""
        if self.daemon.done():
            self.daemon.result()
            raise RuntimeError("the controller stopped unexpectedly")


@contextlib.asynccontextmanager
async def running_line(config: SiteConfig, db_path: Path, workdir: Path,
                       settings: LineSimSettings) -> AsyncIterator[RunningLine]:
    """Start the first line of ``config`` simulated, the controller and the PLC; stop all
    three on the way out (the controller cleanly, as on SIGTERM)."""
    line = config.lines[0]
    sim = SimLine(line, settings)
    await sim.start()
    site = Site(config, db_path, workdir)
    stop = asyncio.Event()
    daemon = asyncio.create_task(site.run(stop))
    plc = PlcSim(plc_endpoint(config), line.id, sim)
    plc_task = asyncio.create_task(plc.run())
    try:
        await site.ready.wait()
        yield RunningLine(site, sim, plc, daemon)
    finally:
        # The PLC hangs up first: an OPC-UA server stopped under a connected client leaves
        # that session's tasks behind in this process.
        plc_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plc_task
        stop.set()
        with contextlib.suppress(Exception):
            await daemon
        await sim.stop()
