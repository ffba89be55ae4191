"""A real ``codeline run`` process against the simulated line and PLC in the test process,
and the checks that compare what physically happened with the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.cli import physical
from edge.cli.line_harness import loopback_config, plc_endpoint, stock_line
from edge.cli.physical import Findings
from edge.daemon.plc_security import hash_password
from edge.domain import batches
from edge.domain.batches import BatchReport
from edge.domain.lifecycle import State
from edge.domain.payloads import PayloadCodec
from edge.store.database import Store
from line_config.loading import example_path, load_config
from line_config.models import SiteConfig
from simulators.line import LineSimSettings, SimLine
from simulators.plc import HELD, PlcSecurity, PlcSim
from tests.waiting import until

COMPLETING, COMPLETE = 16, 17


@dataclass
class Rig:
    """The config, the physical line, the PLC and the daemon process."""

    config: SiteConfig
    config_path: Path
    db_path: Path
    sim: SimLine
    plc: PlcSim
    daemon: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    env: dict[str, str] | None = None

    def start_daemon(self) -> None:
        assert self.log_path is not None
        self.daemon = start_controller(self.config_path, self.log_path, self.env)

    def kill_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait(10)

    async def stop_daemon(self) -> int:
        """SIGTERM, and its exit code. The simulated line keeps running meanwhile: the
        controller judges what is in transit before it exits."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.daemon.wait, 60)


async def operator(plc: PlcSim) -> None:
    """An operator at the HMI: acknowledges every hold (after removing a wrong label)."""
    while True:
        await asyncio.sleep(0.3)
        if plc.state == HELD or (plc.state == COMPLETING and plc.alarm):
            with contextlib.suppress(Exception):
                await plc.call("Unhold")


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, settings: LineSimSettings, planned: int,
              security: PlcSecurity | None = None,
              plc_overrides: dict[str, object] | None = None,
              example: str = "simulated", env: dict[str, str] | None = None,
              item_pool: int | None = None, db_dir: Path | None = None,
              case_pool: int | None = None, sync_in_run: tuple[str, ...] = (),
              pallet_pool: int = 20, reject: dict[str, object] | None = None
              ) -> AsyncIterator[Rig]:
    """Pool and batch in a fresh database (in ``db_dir``, or ``tmp_path``), the simulated
    line with its PLC, the daemon."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    config, config_path = site_config(tmp_path, plc_overrides, example, db_dir, sync_in_run,
                                      reject)
    line = config.lines[0]
    db_path = Path(config.store.path)
    stock_line(config, db_path, {"item": item_pool or planned * 2,
                                 "case": case_pool or planned, "pallet": pallet_pool},
               "LOT1", planned, "test")
    sim = SimLine(line, settings)
    await sim.start()
    plc = PlcSim(plc_endpoint(config), line.id, sim, security)
    plc_task = asyncio.create_task(plc.run())
    the_rig = Rig(config, config_path, db_path, sim, plc, log_path=tmp_path / "daemon.log",
                  env=env)
    the_rig.start_daemon()
    try:
        yield the_rig
    finally:
        if the_rig.daemon is not None and the_rig.daemon.poll() is None:
            the_rig.daemon.kill()
            the_rig.daemon.wait(10)
        plc_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plc_task
        await sim.stop()


PLC_PASSWORD = "s3cret-pass"


async def trusted_plc(tmp_path: Path, security: list[str]
                      ) -> tuple[PlcSecurity, dict[str, object]]:
    """A PLC as plants set it up: its own certificate, copied into the controller's trusted
    folder, and user ``plc1`` with a password in the users file. Returns the PLC's security
    and the ``plc`` overrides that configure the controller for it."""
    users = tmp_path / "plc-users"
    users.write_text(f"plc1:{hash_password(PLC_PASSWORD)}\n")
    plc = PlcSecurity("sign_encrypt", tmp_path / "plc-pki", "plc1", PLC_PASSWORD)
    cert, _ = await plc.certificate()
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(cert, trusted / cert.name)
    return plc, {"security": security, "users_file": str(users),
                 "trusted_certs_dir": str(trusted)}


@dataclass
class Controller:
    """A ``codeline run`` process alone (no simulated line): its config and PLC endpoint."""

    config: SiteConfig
    config_path: Path
    db_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return plc_endpoint(self.config)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def site_config(tmp_path: Path, plc_overrides: dict[str, object] | None = None,
                example: str = "simulated", db_dir: Path | None = None,
                sync_in_run: tuple[str, ...] = (), reject: dict[str, object] | None = None
                ) -> tuple[SiteConfig, Path]:
    """The example on free loopback ports with its database in ``tmp_path`` (or
    ``db_dir``), written to ``tmp_path/line.yaml``; the controller serves the sync parts
    ``sync_in_run`` names (none unless a test is about them)."""
    config = loopback_config(load_config(example_path(example)), tmp_path,
                             sync_in_run=sync_in_run)
    if plc_overrides or db_dir or reject:
        data = config.model_dump(mode="python")
        if plc_overrides:
            data["lines"][0]["plc"].update(plc_overrides)
        if reject:
            data["lines"][0]["reject"].update(reject)
        if db_dir:
            data["store"]["path"] = str(db_dir / "codeline.db")
        config = SiteConfig.model_validate(data)
    config_path = tmp_path / "line.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return config, config_path


def start_controller(config_path: Path, log_path: Path, env: dict[str, str] | None = None
                     ) -> subprocess.Popen[bytes]:
    """``codeline --config FILE run`` as its own process, output to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "from edge.cli.main import run; run()",
             "--config", str(config_path), "run"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


async def wait_listening(host: str, port: int, process: subprocess.Popen[bytes],
                         within: float = 30) -> None:
    """Until something accepts on ``host:port``; fails if ``process`` ends first."""
    async with asyncio.timeout(within):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the controller exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


@contextlib.asynccontextmanager
async def lone_controller(tmp_path: Path, plc_overrides: dict[str, object] | None = None,
                          env: dict[str, str] | None = None) -> AsyncIterator[Controller]:
    """A stocked database and a real ``codeline run`` whose PLC server listens; no devices
    (a controller connects them only on Reset)."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    config, config_path = site_config(tmp_path, plc_overrides)
    db_path = Path(config.store.path)
    stock_line(config, db_path, {"item": 20, "case": 4, "pallet": 2}, "LOT1", 10, "test")
    log_path = tmp_path / "controller.log"
    process = start_controller(config_path, log_path, env)
    the_controller = Controller(config, config_path, db_path, process, log_path)
    try:
        plc = config.lines[0].plc
        assert plc is not None
        await wait_listening(plc.host, plc.port, process)
        yield the_controller
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def compare(r: Rig) -> Findings:
    """Physical line against the database, item by item, case by case, pallet by pallet."""
    return physical.compare(r.db_path, r.config.lines[0], r.config.products, r.sim.record())


async def printed(r: Rig, items: int, within: float = 60) -> None:
    """Let the line run until ``items`` products in all are printed."""
    await until(lambda: len(r.sim.items.items) >= items, f"the line prints {items} items",
                within)


async def conveyor_empty(r: Rig) -> None:
    """After the controller died: the PLC has lost its session (infeed off) and every item
    on the conveyor has reached the gate."""
    await until(lambda: not r.plc.connected.is_set() and not r.sim.infeed
                and r.sim.in_transit() == 0, "the PLC noticed and the conveyor ran empty")


def states(r: Rig) -> dict[str, State]:
    """Every printed-or-later item code's state in the database, by serial."""
    with Store(r.db_path) as store:
        return {serial: State(state) for serial, state in store.read().execute(
            "SELECT serial, state FROM codes WHERE level = 0")}


def gate_against_database(r: Rig) -> tuple[list[State], list[State]]:
    """The database state of each item the gate rejected on request, and of each it let
    through; asserts the invariant on both."""
    codec = PayloadCodec(r.config.lines[0], r.config.products)
    db = states(r)
    requested = [db[codec.parse(item.code).serial] for item, why in r.sim.rejected
                 if why == "requested" and item.code is not None]
    accepted = [db[codec.parse(item.code).serial] for item in r.sim.accepted
                if item.code is not None]
    assert State.COMMISSIONED not in requested
    assert set(accepted) <= {State.COMMISSIONED}
    return requested, accepted


async def restart(r: Rig) -> None:
    """A new controller process (it recovers codes of unknown fate at start); the PLC
    reconnects, resets and starts production again."""
    assert not r.plc.connected.is_set(), "the PLC still holds the old session"
    r.start_daemon()
    await r.plc.connected.wait()
    await r.plc.wait_state(2, within=30)  # Stopped: a new controller process
    await r.plc.call("Reset")
    await r.plc.wait_state(4, within=30)
    await r.plc.call("Start")


async def until_alarm(plc: PlcSim, words: str, within: float = 60) -> str:
    """The PLC's alarm text once it holds ``words`` (the last text seen if it never does)."""
    for _ in range(int(within / 0.1)):
        if words in plc.alarm:
            break
        await asyncio.sleep(0.1)
    return plc.alarm


async def wait_complete(plc: PlcSim, within: float) -> None:
    await plc.wait_state(COMPLETE, within=within)


async def complete_and_close(r: Rig, within: float = 180) -> tuple[Findings, BatchReport]:
    """An operator acknowledges holds until the batch is complete; the daemon stops cleanly,
    the line matches the database, and the batch closes reconciled."""
    acknowledging = asyncio.create_task(operator(r.plc))
    await wait_complete(r.plc, within)
    acknowledging.cancel()
    assert await r.stop_daemon() == 0
    found = compare(r)
    assert found.problems == []
    with Store(r.db_path) as store:
        closed = batches.close(store, 1, operator="test")
    assert closed.reconciled, closed.problems
    return found, closed


async def run_batch_to_close(r: Rig, within: float = 180) -> BatchReport:
    """The PLC starts the batch and it runs to a reconciled close (complete_and_close),
    with nothing stranded and every commissioned code in a container."""
    await r.plc.run_batch("LOT1")
    found, closed = await complete_and_close(r, within)
    assert found.stranded == 0
    assert closed.contained, closed.containment
    return closed
