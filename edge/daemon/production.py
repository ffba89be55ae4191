"""What a running batch is made of: its item flow and its case and pallet stations, wired to
the line's devices, database calls and outputs. Built at every Start; the PackML loop in
:mod:`edge.daemon.line` only runs and halts it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from drivers.errors import DriverError
from edge.daemon.case_station import CaseStation
from edge.daemon.dbworker import StorageGuard
from edge.daemon.devices import Devices
from edge.daemon.errors import describe_error, root_error
from edge.daemon.item_flow import ItemFlow
from edge.daemon.packing_watch import PackingWatch
from edge.daemon.pallet_station import PalletStation
from edge.daemon.pool_watch import PoolWatch
from edge.daemon.signals import LineCounters, LineOutputs
from edge.daemon.stations import StationContext
from edge.domain import batches
from edge.domain.payloads import BatchLabel
from edge.store.database import StorageFailure
from line_config.models import CasePackStation, Line, PalletBuildStation, Product

log = logging.getLogger("codeline.line")

WATCH_S = 1.0
DRAIN_TIMEOUT_S = 10.0
Station = CaseStation | PalletStation
HALT_TIMEOUT_S = 8.0  # a label printed, read back and sealed


class ProductionHost(Protocol):
    """What a running batch asks of its line."""

    def in_execute(self) -> bool: ...

    async def complete(self) -> None:
        """Ask the line to complete the batch and wait until the command is settled."""
        ...

    def standing_alarm(self, source: str, text: str) -> None:
        """Show (``text``) or clear ("") an alarm that never holds the line."""
        ...

    def production_failed(self, text: str) -> None:
        """A production task failed: alarm and abort the line."""
        ...


@dataclass
class Production:
    """One batch's flow and stations."""

    line: Line
    batch: batches.Batch
    flow: ItemFlow
    case_station: CaseStation | None
    pallet_station: PalletStation | None
    storage: StorageGuard
    counters: LineCounters
    db_path: Path
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def stations(self) -> list[Station]:
        return [s for s in (self.case_station, self.pallet_station) if s is not None]

    @classmethod
    async def wire(cls, line: Line, product: Product, batch: batches.Batch, commissioned: int,
                   devices: Devices, storage: StorageGuard, outputs: LineOutputs,
                   counters: LineCounters, alarm: Callable[[str, str, bool], None],
                   ending: Callable[[], bool], commit_times: Callable[[float], None],
                   previous_pallet: PalletStation | None, db_path: Path) -> Production:
        """The flow and stations of ``batch``. A pallet station of the same batch (a Start
        after Stop) hands its open pallet over; otherwise the open pallet is loaded from
        the database."""
        label = BatchLabel(batch.lot, batch.expiry)
        flow = ItemFlow(line, product, label, batch.id, devices.printer, devices.reader,
                        storage, outputs, counters, target=batch.planned_qty,
                        commissioned=commissioned, on_alarm=alarm, commit_times=commit_times)
        ctx = StationContext(line, product, label, batch.id, storage, outputs, counters, alarm,
                             ending)
        case_station: CaseStation | None = None
        pallet_station: PalletStation | None = None
        for station in line.stations:
            if isinstance(station, PalletBuildStation) and devices.pallet_reader:
                pallet_station = PalletStation(
                    ctx, devices.bench_for(station), station.id, devices.pallet_reader,
                    lambda: case_station is None or case_station.finished.is_set())
        for station in line.stations:
            if isinstance(station, CasePackStation) and devices.case_camera:
                pallet = pallet_station
                case_station = CaseStation(
                    ctx, devices.bench_for(station), station.id, devices.case_camera,
                    pallet.case_sealed if pallet else (lambda serial: None))
        if pallet_station is not None:
            if previous_pallet is not None and previous_pallet.ctx.batch_id == batch.id:
                pallet_station.carry_over(previous_pallet)
            else:
                await pallet_station.load_open_pallet()
        return cls(line, batch, flow, case_station, pallet_station, storage, counters,
                   db_path)

    def start(self, host: ProductionHost) -> None:
        """Run the production tasks in the background (until :meth:`halt`)."""
        self.task = asyncio.create_task(self.run(host), name=f"{self.line.id}-flow")

    async def halt(self) -> None:
        """End the production tasks; the stations first end the step they are in."""
        if self.task is None:
            return
        for station in self.stations:
            if not await station.halt(HALT_TIMEOUT_S):
                log.warning("station did not reach a safe point: halted mid-step",
                            extra={"line": self.line.id, "station": station.station_id})
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None

    async def wind_down(self, host: ProductionHost) -> None:
        """Stop printing, judge what is in transit, void what the printer still holds, then
        halt."""
        flow = self.flow
        flow.feeding = False
        with contextlib.suppress(DriverError):
            await flow.printer.stop()
        try:
            if not await flow.drain(DRAIN_TIMEOUT_S):
                await flow.abandon_in_transit()
            with contextlib.suppress(DriverError):
                await flow.printer.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await flow.settled(lambda: not flow.sent)
            await flow.void_unsent()
        except StorageFailure as exc:
            # recover() at the next start settles them: printed without a verdict is
            # rejected (so did the gate), sent and never printed is void
            host.standing_alarm("database", f"{exc}: the items in transit are settled when "
                                "the controller next starts")
        await self.halt()

    async def abort(self) -> None:
        """Printer stopped and emptied, items in transit rejected, tasks halted, the codes
        the printer held voided."""
        self.storage.stop_waiting()
        flow = self.flow
        flow.feeding = False
        with contextlib.suppress(DriverError):
            await flow.printer.stop()
            await flow.printer.clear()
        with contextlib.suppress(Exception):
            await flow.abandon_in_transit()
        await self.halt()
        with contextlib.suppress(Exception):
            # print confirmations that came in while the stations halted: their items get
            # no verdict either
            await flow.abandon_in_transit()
        try:
            await flow.void_abandoned()
        except StorageFailure as exc:  # recover() at the next start voids them
            log.warning("codes left to the next start: %s", exc, extra={"line": self.line.id})

    async def run(self, host: ProductionHost) -> None:
        """The batch's production tasks, until cancelled. Should one of them fail
        unexpectedly, the line does not stay in Execute judging nothing: the failure is
        logged with its traceback and the host aborts the line (printer stopped and
        emptied, items in transit rejected); Clear, Reset and Start bring it back with fresh
        tasks."""
        # The pool watch only warns: it runs beside the production tasks, never among them,
        # so nothing it meets can end or delay production.
        watch = asyncio.create_task(PoolWatch(self.line, self.db_path, self.items_left,
                                              host.standing_alarm).run(), name="pool-watch")
        try:
            await self._tasks(host)
        except Exception as exc:
            if not self.storage.waiting and isinstance(root_error(exc), StorageFailure):
                log.warning("production tasks ended: %s", root_error(exc),
                            extra={"line": self.line.id})
                return  # the line is stopping or aborting already
            text = f"production stopped: {describe_error(exc)}"
            log.error("%s", text, exc_info=exc, extra={"line": self.line.id,
                                                       "batch": self.batch.id})
            host.production_failed(text)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _tasks(self, host: ProductionHost) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.flow.printer_events())
            tasks.create_task(self.flow.feed())
            tasks.create_task(self.flow.verify())
            tasks.create_task(self.flow.committer.run())
            tasks.create_task(self._watch_target(host))
            tasks.create_task(self._watch_packing(host))
            for station in self.stations:
                tasks.create_task(station.run())

    def items_left(self) -> int | None:
        """Good items the batch still needs to meet its plan (None: no plan)."""
        if self.batch.planned_qty is None:
            return None
        return max(0, self.batch.planned_qty - self.counters.batch.commissioned)

    async def _watch_target(self, host: ProductionHost) -> None:
        """Once the batch's target is met, complete it, as soon as the line is in Execute:
        a target met while a Hold is queued or in force completes after the Unhold (a
        completion asked in Held would otherwise be dropped and the line stay in Execute)."""
        await self.flow.done.wait()
        while True:
            if host.in_execute():
                await host.complete()
            await asyncio.sleep(0.2)

    async def _watch_packing(self, host: ProductionHost) -> None:
        """Alarm when a station stops working while its children pile up (PackingWatch)."""
        per_case = self.line.packaging.items_per_case
        watches = []
        if self.case_station is not None:
            watches.append(PackingWatch(self.case_station,
                                        lambda: self.counters.batch.commissioned,
                                        self.flow.rate.rate, per_case))
        if self.pallet_station is not None:
            watches.append(PackingWatch(self.pallet_station, lambda: self.counters.batch.cases,
                                        self.flow.rate.rate,
                                        per_case * self.line.packaging.cases_per_pallet))
        while True:
            await asyncio.sleep(WATCH_S)
            for watch in watches:
                text = watch.tick(WATCH_S, host.in_execute())
                if text is not None:  # "" clears: the station packs again
                    host.standing_alarm(watch.station.station_id, text)
