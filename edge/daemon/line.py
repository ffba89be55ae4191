"""One line at run time: its PackML state, its devices, the item flow and the stations.

Commands (from the PLC over OPC-UA, or from inside: an alarm holds, a met target completes)
are applied one at a time, in order; each moves the line into an acting state, does that
state's work (connect devices, fill the printer, drain the in-transit items, void what is
left in the printer) and settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from drivers.errors import DriverError
from drivers.vision.decode_process import DecodePool
from edge.daemon.case_station import CaseStation
from edge.daemon.dbworker import DbWorker, StorageGuard
from edge.daemon.devices import Devices, device_health
from edge.daemon.item_flow import ItemFlow
from edge.daemon.packml import Command, CommandRefused, PackML, State
from edge.daemon.pallet_station import PalletStation
from edge.daemon.production import DRAIN_TIMEOUT_S, Production, Station
from edge.daemon.signals import Alarm, Counts, LineCounters, LineOutputs, NoOutputs
from edge.daemon.snapshot import AlarmRecord, BatchInfo, Buffers, LineSnapshot
from edge.domain import aggregation, batches
from edge.domain.errors import DomainError
from edge.store.database import Store
from line_config.models import (
    ItemPrintStation,
    Line,
    SiteConfig,
)

log = logging.getLogger("codeline.line")

CONNECT_TIMEOUT_S = 10.0
PRE_EMPTING = (Command.STOP, Command.ABORT)
FINISH_TIMEOUT_S = 120.0
UNPACKED_REASON = "accepted but never packed: off the line before the case station"


class LineRuntime:
    """The runtime of one configured line."""

    def __init__(self, config: SiteConfig, line: Line, db: DbWorker, decoding: DecodePool,
                 commit_times: Callable[[float], None]) -> None:
        self.config = config
        self.commit_times = commit_times
        self.line = line
        self.db = db
        self.packml = PackML()
        self.outputs: LineOutputs = NoOutputs()
        self.devices = Devices.build(line, decoding)
        self.connected = False
        self.batch: batches.Batch | None = None
        self.counters = LineCounters()
        self.alarms: deque[Alarm] = deque(maxlen=50)
        self.active_alarms: dict[str, str] = {}
        self.warnings: set[str] = set()  # active alarms that do not hold the line
        self.speed = line.speed  # items per second the line is asked to run at
        self.stop_reason = ""
        self.production: Production | None = None  # the running (or last) batch's
        self._commands: asyncio.Queue[tuple[Command | str, str | None,
                                            asyncio.Future[str]]] = asyncio.Queue()
        self._acting: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._completing = False

    # --- what the PLC and the status view read ---
    @property
    def state(self) -> State:
        return self.packml.state

    @property
    def flow(self) -> ItemFlow | None:
        return self.production.flow if self.production else None

    @property
    def storage(self) -> StorageGuard | None:
        return self.production.storage if self.production else None

    @property
    def case_station(self) -> CaseStation | None:
        return self.production.case_station if self.production else None

    @property
    def pallet_station(self) -> PalletStation | None:
        return self.production.pallet_station if self.production else None

    def _stations(self) -> list[Station]:
        return self.production.stations if self.production else []

    def snapshot(self) -> LineSnapshot:
        f = self.flow
        batch = self.batch
        return LineSnapshot(
            line=self.line.id, state=self.packml.state.value,
            state_name=self.packml.state.label,
            batch=None if batch is None else BatchInfo(
                batch.id, batch.lot, batch.product_id, batch.planned_qty, batch.started_at),
            rate=round(f.rate.rate(), 1) if f else 0.0, speed=self.speed,
            counts=self.counters.counters(),
            buffers=Buffers(
                printer=self.devices.printer.pending,
                buffer_ahead=next(s.buffer_ahead for s in self.line.stations
                                  if isinstance(s, ItemPrintStation)),
                in_transit=f.in_fifo if f else 0, item_seq=f.seq if f else 0,
                judged_through=f.judged_through if f else 0),
            devices={name: device_health(dev) for name, dev in self.devices.all.items()},
            alarms=tuple(AlarmRecord(a.source, a.text, round(a.at * 1000), a.active)
                         for a in list(self.alarms)[-10:]),
            active_alarms=dict(self.active_alarms),
            warnings=tuple(sorted(self.warnings & self.active_alarms.keys())),
            stop_reason=self.stop_reason)

    # --- commands ---
    async def command(self, command: Command | str, argument: str | None = None) -> str:
        """Apply a command; answers once it is accepted (PackML commands: the acting state is
        entered, e.g. "Resetting") while the state machine goes on by itself, or raises
        CommandRefused at once when the current state does not take it. Stop and Abort
        pre-empt the acting state in progress (a slow Reset, say)."""
        if command is Command.UNHOLD and self.packml.state is State.COMPLETING:
            # A station held while the batch finishes: released at once (the completing
            # work is waiting for it).
            self._resume_stations()
            self.outputs.changed()
            return self.packml.state.label
        if command == "start_batch":
            async with self._batch_lock:
                return await self._start_batch(argument or "")
        if command == "complete" and self.packml.state is not State.EXECUTE:
            raise CommandRefused(f"ToComplete is not accepted in state {self.packml.state.label}")
        if isinstance(command, Command) and self._busy():
            if not self.packml.allowed(command):
                raise CommandRefused(
                    f"{command.label} is not accepted in state {self.packml.state.label}")
            if command in PRE_EMPTING and self._acting is not None:
                log.info("%s interrupts %s", command.label, self.packml.state.label,
                         extra={"line": self.line.id})
                self._acting.cancel()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._enqueue(command, argument, future)
        return await future

    def _busy(self) -> bool:
        return self._acting is not None and not self._acting.done()

    async def settled(self) -> None:
        """Until no command is waiting or being carried out."""
        await self._idle.wait()

    def _enqueue(self, command: Command | str, argument: str | None,
                 future: asyncio.Future[str] | None = None) -> None:
        self._idle.clear()
        self._commands.put_nowait(
            (command, argument, future or asyncio.get_running_loop().create_future()))

    def alarm(self, source: str, text: str, hold: bool, *, standing: bool = False) -> None:
        """An alarm from a device or station; ``hold`` holds the line, ``standing`` keeps it
        shown (to the PLC and in the status) without holding. Empty text clears."""
        if not text:
            if self.active_alarms.pop(source, None) is not None:
                self.alarms.append(Alarm(source, "cleared", time.time(), active=False))
                self.outputs.changed()
            return
        self.alarms.append(Alarm(source, text, time.time()))
        if hold or standing:
            self.active_alarms[source] = text
        if hold:
            self.warnings.discard(source)
        elif standing:
            self.warnings.add(source)
        log.warning("alarm: %s", text, extra={"line": self.line.id, "station": source,
                                              "batch": self.batch.id if self.batch else None})
        self.outputs.changed()
        if hold and self.packml.state in (State.EXECUTE, State.STARTING, State.UNHOLDING):
            self.stop_reason = text
            self._enqueue(Command.HOLD, text)

    async def run(self) -> None:
        """Apply commands in order until cancelled: each is answered when it is accepted,
        then its acting state's work runs (as a task a Stop or Abort may cancel)."""
        await self._load_counts()
        self.outputs.changed()
        while True:
            if self._commands.empty():
                self._idle.set()
            command, argument, future = await self._commands.get()
            self._idle.clear()
            try:
                work = self._accept(command, argument)
            except (CommandRefused, DomainError) as exc:
                if not future.done():
                    future.set_exception(exc)
                self.outputs.changed()
                continue
            if not future.done():
                future.set_result(self.packml.state.label)
            self.outputs.changed()
            if work is None:
                continue
            acting = self.packml.state
            self._acting = asyncio.create_task(work, name=f"{self.line.id}-{acting.label}")
            try:
                await asyncio.wait({self._acting})
            except asyncio.CancelledError:
                self._acting.cancel()
                raise
            task, self._acting = self._acting, None
            if task.cancelled():
                log.info("%s interrupted", acting.label, extra={"line": self.line.id})
            elif isinstance(task.exception(), (CommandRefused, DomainError)):
                log.info("%s ended: %s", acting.label, task.exception(),
                         extra={"line": self.line.id})
            elif task.exception() is not None:
                error = task.exception()
                log.error("%s failed: %s", acting.label, error, exc_info=error,
                          extra={"line": self.line.id})
                self.alarm("line", f"{acting.label} failed: {type(error).__name__}: {error}",
                           False)
            else:
                log.info("state %s", self.packml.state.label, extra={"line": self.line.id})
            self.outputs.changed()

    def _accept(self, command: Command | str, argument: str | None
                ) -> Coroutine[Any, Any, None] | None:
        """Enter the command's acting state (or refuse); the work that settles it."""
        if command == "complete":
            return self._complete_work()
        assert isinstance(command, Command)
        if command is Command.HOLD and argument and self.packml.state is not State.EXECUTE:
            return None  # an alarm after the line already left Execute
        self.packml.command(command, argument or "")
        handler = {
            Command.RESET: self._resetting,
            Command.START: self._starting,
            Command.STOP: self._stopping,
            Command.HOLD: self._holding,
            Command.UNHOLD: self._unholding,
            Command.SUSPEND: self._suspending,
            Command.UNSUSPEND: self._unsuspending,
            Command.ABORT: self._aborting,
            Command.CLEAR: self._clearing,
        }[command]
        return handler()

    # --- acting states ---
    async def _resetting(self) -> None:
        if not self.connected:
            try:
                await self.devices.connect_all(CONNECT_TIMEOUT_S)
            except (DriverError, OSError, TimeoutError) as exc:
                await self.devices.close_all()  # none stays half set up for the next Reset
                self.alarm("line", f"devices not reachable: {exc}", False)
                self.packml.fall_back(State.STOPPED, "reset failed")
                return
            except asyncio.CancelledError:
                await self.devices.close_all()  # interrupted by Stop or Abort
                raise
            self.connected = True
        self.active_alarms.clear()
        self.stop_reason = ""
        self.packml.done()

    async def _start_batch(self, ref: str) -> str:
        """Start a created or stopped batch (by id or lot) on this line."""
        batch = await self.db.call(batches.start_by_reference, self.line.id, ref,
                                   operator="plc")
        self.batch = batch
        await self._load_counts()
        return f"batch {batch.id} ({batch.lot}) running"

    async def _starting(self) -> None:
        batch = await self.db.call(lambda s: batches.running(s.read(), self.line.id))
        if batch is None:
            self.alarm("line", "no running batch: start one (StartBatch or `codeline batch "
                       "start`)", False)
            self.packml.fall_back(State.IDLE, "no batch")
            raise CommandRefused(f"line {self.line.id} has no running batch")
        self.batch = batch
        await self._load_counts()
        commissioned = await self.db.call(lambda store: _items_counting(
            batches.report(store.read(), batch.id)))
        await self.outputs.numbering_restarted()  # before the new flow numbers any item
        storage = StorageGuard(self.db, lambda text: self.alarm("database", text, True))
        production = await Production.wire(
            self.line, self.config.product(batch.product_id), batch, commissioned,
            self.devices, storage, self.outputs, self.counters, self.alarm,
            lambda: self._completing, self.commit_times, self.pallet_station,
            self.db.store.path)
        self.production = production
        flow = production.flow
        self._completing = False
        production.start(self)
        printer = self.devices.printer
        try:
            if printer.configured_job:
                await printer.select_job(printer.configured_job)
            await printer.clear()
            await printer.start()
        except DriverError as exc:
            self.alarm("printer", f"printer did not start: {exc}", False)
            await self._halt_production()
            self.packml.fall_back(State.IDLE, "printer did not start")
            raise CommandRefused(f"printer did not start: {exc}") from None
        flow.feeding = True
        flow.kick()
        for container in production.stations:
            container.resume()
        self.packml.done()

    # --- what a running batch asks of its line (ProductionHost) ---
    def in_execute(self) -> bool:
        return self.packml.state is State.EXECUTE

    async def complete(self) -> None:
        self._enqueue("complete", None)
        await self.settled()

    def standing_alarm(self, source: str, text: str) -> None:
        self.alarm(source, text, False, standing=True)

    def production_failed(self, text: str) -> None:
        self.alarm("line", text, hold=False)  # not Hold: the line aborts instead
        self.active_alarms["line"] = self.stop_reason = text
        self._enqueue(Command.ABORT, "production task failed")

    async def _holding(self) -> None:
        if self.flow is not None:
            self.flow.feeding = False
        with contextlib.suppress(DriverError):
            await self.devices.printer.stop()
        self.packml.done()

    async def _unholding(self) -> None:
        if self.storage is not None and self.storage.cause is not None:
            problem = await self.db.call(Store.storage_problem)
            if problem is not None:
                self.alarm("database", f"still not writable: {problem}", False,
                           standing=True)
                self.packml.fall_back(State.HELD, "database not writable")
                raise CommandRefused(f"the database is still not writable: {problem}")
            self.storage.resume()
        printer = self.devices.printer
        try:
            await printer.clear_faults()
            await printer.start()
        except DriverError as exc:
            self.alarm("printer", f"printer did not restart: {exc}", False)
            self.packml.fall_back(State.HELD, "printer did not restart")
            raise CommandRefused(f"printer did not restart: {exc}") from None
        self._resume_stations()
        if self.flow is not None:
            self.flow.feeding = True
            self.flow.kick()
        self.packml.done()

    async def _suspending(self) -> None:
        """Starved or blocked from outside: no products come, so the printer stays armed and
        keeps its buffer (nothing is voided); items already past it are judged and packed."""
        if self.flow is not None:
            self.flow.feeding = False
        self.packml.done()

    async def _unsuspending(self) -> None:
        if self.flow is not None:
            self.flow.feeding = True
            self.flow.kick()
        self.packml.done()

    def _resume_stations(self) -> None:
        self.active_alarms.clear()
        self.stop_reason = ""
        for station in self._stations():
            if station.held is not None:
                station.resume()

    async def _complete_work(self) -> None:
        if self.packml.state is not State.EXECUTE:
            return
        self.packml.complete()
        log.info("state %s", self.packml.state.label, extra={"line": self.line.id})
        self.outputs.changed()
        flow = self.flow
        assert flow is not None and self.batch is not None
        flow.feeding = False
        await flow.drain(DRAIN_TIMEOUT_S)
        self._completing = True
        for station in self._stations():
            try:
                async with asyncio.timeout(FINISH_TIMEOUT_S):
                    await station.finished.wait()
            except TimeoutError:
                self.alarm(station.station_id, "did not finish the last container", False)
        await self._wind_down()
        batch_id = self.batch.id
        if self.case_station is not None and self.case_station.finished.is_set():
            await self._decommission_unpacked(batch_id)
        self.batch = await self.db.call(batches.stop, batch_id, operator="line")
        self.packml.done()
        log.info("batch complete", extra={"line": self.line.id, "batch": batch_id})

    async def _decommission_unpacked(self, batch_id: int) -> None:
        """Good items that never reached a case are off the line: decommissioned, alarmed."""
        lost = await self.db.call(aggregation.decommission_unpacked, batch_id, operator="line",
                                  reason=UNPACKED_REASON)
        if lost:
            self.alarm("case", f"{lost} accepted items never reached a case (rejected at the "
                       "gate without a verdict after a controller restart, or taken off the "
                       "line): decommissioned", False)
            await self._load_counts()

    async def _stopping(self) -> None:
        if self.storage is not None:
            self.storage.stop_waiting()
        await self._wind_down()
        self.packml.done()

    async def _wind_down(self) -> None:
        """Stop printing, judge what is in transit, void what the printer still holds."""
        if self.production is None:
            with contextlib.suppress(DriverError):
                await self.devices.printer.stop()
            return
        await self.production.wind_down(self)

    async def _halt_production(self) -> None:
        if self.production is not None:
            await self.production.halt()

    async def _aborting(self) -> None:
        if self.production is None:
            with contextlib.suppress(DriverError):
                await self.devices.printer.stop()
                await self.devices.printer.clear()
        else:
            await self.production.abort()
        self.packml.done()

    async def _clearing(self) -> None:
        self.active_alarms.clear()
        self.packml.done()

    async def shutdown(self) -> None:
        """Bring the line to Stopped (SIGTERM): printer buffer settled, devices closed."""
        if self.packml.allowed(Command.STOP):
            with contextlib.suppress(CommandRefused):
                await self.command(Command.STOP, "shutdown")
        await self.settled()
        await self._halt_production()
        await self.devices.close_all()

    async def _load_counts(self) -> None:
        def load(store: Store) -> tuple[Counts, Counts]:
            conn = store.read()
            total = Counts()
            for b in batches.list_batches(conn, self.line.id):
                total.add_report(batches.report(conn, b.id))
            batch = Counts()
            if self.batch is not None:
                batch.add_report(batches.report(conn, self.batch.id))
            return batch, total
        fresh_batch, fresh_total = await self.db.call(load)
        self.counters.reload(fresh_batch, fresh_total)


def _items_counting(report: batches.BatchReport) -> int:
    """Items that count towards the planned quantity: commissioned, not decommissioned."""
    item = report.levels.get("item", batches.LevelCounts())
    return item.commissioned - item.decommissioned
