"""Printers that count their prints (the Modbus laser, the OPC-UA printer).

Such a device holds a queue of codes and a print counter. The host books every code the
device took, in order, and accounts each increase of the counter to the oldest booked codes.
A code taken off the queue without the counter moving (a mark that timed out) and every code
in the device's queue when the host cannot tell what happened to it (reconnect with a queue
that is not the one booked, a clear, a stop that discards) is reported lost, so the runtime
voids it: never reported printed twice, never silently dropped.

A subclass supplies the link and five device operations; this class keeps the link up,
keeps the queue filled, and turns counter snapshots into events.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from drivers.errors import CommandRefused, ConnectionLost, DeviceFault, DeviceTimeout
from drivers.interfaces import FaultCleared, FaultRaised, Printed, PrinterEvent, PrinterStatus
from drivers.link import DeviceLink
from drivers.printers.base import HostQueue, PrinterEvents
from drivers.transport import until_one_ends

log = logging.getLogger("codeline.drivers.printer")


@dataclass(frozen=True)
class Snapshot:
    """The device's counter and queue, read together, and what it reports about itself."""

    count: int
    depth: int
    state: str
    faults: dict[str, str] = field(default_factory=dict)


class CountedPrinter(DeviceLink):
    """The bookkeeping over a supervised link; see the module docstring."""

    family = "printer"

    #: the device empties its queue when it stops (its codes are then lost)
    STOP_DISCARDS = False
    #: codes sent in one load operation
    LOAD_CHUNK = 1

    def __init__(self, name: str, target: int, reconnect_min_ms: int,
                 reconnect_max_ms: int) -> None:
        super().__init__(name, reconnect_min_ms, reconnect_max_ms)
        self.target = target
        self.event_stream = PrinterEvents()
        self.queue = HostQueue()
        self.in_device: deque[str] = deque()
        self.counter: int | None = None
        self.faults: dict[str, str] = {}
        self.state = "offline"
        self.job: str | None = None
        self.configured_job: str | None = None  # set by a driver whose device has jobs
        self.want_running = False
        self.online = False
        self.total_printed = 0
        self.identity = ""
        self._in_flight = 0  # codes in a load request not yet answered
        self._lock = asyncio.Lock()
        self._refill = asyncio.Event()

    # --- what a device supplies ---
    async def _open(self) -> None:
        """Open the link (raise ConnectionLost if the device cannot be reached)."""
        raise NotImplementedError

    async def _close_link(self) -> None:
        raise NotImplementedError

    async def _snapshot(self) -> Snapshot:
        """Counter, queue depth, state and faults in one atomic read."""
        raise NotImplementedError

    async def _load(self, codes: Sequence[str]) -> int:
        """Queue ``codes`` on the device; how many it took (the first ones)."""
        raise NotImplementedError

    async def _discard(self) -> None:
        """Empty the device's queue."""
        raise NotImplementedError

    async def _arm(self) -> None:
        raise NotImplementedError

    async def _disarm(self) -> None:
        raise NotImplementedError

    async def _select(self, job: str) -> None:
        raise NotImplementedError

    async def _clear_errors(self) -> None:
        raise NotImplementedError

    async def _wait_for_change(self) -> None:
        """Return when the counter may have moved (a poll interval, a notification)."""
        raise NotImplementedError

    # --- link ---
    async def open_link(self) -> None:
        await self._open()

    async def close_link(self) -> None:
        await self._close_link()

    async def on_connected(self) -> None:
        await self._set_up()
        self.online = True

    async def on_disconnected(self, why: str) -> None:
        self.online = False
        self.state = "offline"

    async def session(self) -> None:
        await self._session()

    async def _session(self) -> None:
        feeder = asyncio.create_task(self._feed_loop(), name=f"{self.name}-feeder")
        watcher = asyncio.create_task(self._watch_loop(), name=f"{self.name}-watch")
        await until_one_ends(feeder, watcher)

    async def _set_up(self) -> None:
        """After (re)connecting: settle what was booked, select the job, arm if wanted."""
        async with self._lock:
            snap = await self._snapshot()
            if self.counter is None:
                # A new controller session: whatever the device still holds is not ours.
                if snap.depth:
                    await self._discard()
                    snap = await self._snapshot()
                self.counter = snap.count
            elif snap.count < self.counter:
                self._lose_all("the device restarted (its print counter went back)")
                self.counter = snap.count
            else:
                # Codes booked while the link failed may or may not be in the device: only
                # a queue exactly as booked is kept; otherwise it is emptied and what did
                # not print is lost.
                self._apply(snap, settle_consumed=False)
                if snap.depth != len(self.in_device):
                    await self._discard()
                    self._apply(await self._snapshot(), settle_consumed=False)
                    self._lose_all("device queue discarded after reconnect")
            self.state = snap.state
            self._faults_seen(snap.faults)
        if self.job is not None:
            await self._select(self.job)
        if self.want_running:
            try:
                await self._arm()
            except CommandRefused:
                log.warning("printer will not run after reconnect", extra={"device": self.name})
        self._refill.set()

    # --- bookkeeping ---
    def _apply(self, snap: Snapshot, settle_consumed: bool = True) -> None:
        """Account the counter's increase, then the codes taken without a print (the
        oldest: the device works its queue in order)."""
        assert self.counter is not None
        for _ in range(max(0, snap.count - self.counter)):
            if not self.in_device:
                log.warning("a print counted with no code booked", extra={"device": self.name})
                break
            self.total_printed += 1
            self.event_stream.emit(Printed(self.in_device.popleft()))
        self.counter = max(self.counter, snap.count)
        consumed = len(self.in_device) - snap.depth
        if settle_consumed and consumed > 0:
            lost = [self.in_device.popleft() for _ in range(consumed)]
            self.event_stream.lost(lost, "taken off the queue without a print")
        if len(self.in_device) < max(1, self.target // 2):
            self._refill.set()

    def _lose_all(self, why: str) -> None:
        lost = list(self.in_device)
        self.in_device.clear()
        self.event_stream.lost(lost, why)

    def _faults_seen(self, faults: dict[str, str]) -> None:
        new = {code: text for code, text in faults.items() if code not in self.faults}
        for code, text in new.items():
            self.event_stream.emit(FaultRaised(code, text))
        if self.faults and not faults:
            self.event_stream.emit(FaultCleared())
        self.faults = dict(faults)

    async def _watch_loop(self) -> None:
        while True:
            await self._wait_for_change()
            async with self._lock:
                snap = await self._snapshot()
                self._apply(snap)
            self.state = snap.state
            self._faults_seen(snap.faults)

    async def _feed_loop(self) -> None:
        while True:
            await self._refill.wait()
            self._refill.clear()
            while self.queue.codes and len(self.in_device) < self.target:
                if self.faults:
                    break  # a device in fault refuses codes: wait until it clears
                rows = self.queue.take(min(self.target - len(self.in_device), self.LOAD_CHUNK))
                async with self._lock:
                    self._in_flight = len(rows)
                    try:
                        taken = await self._load(rows)
                    except CommandRefused:
                        taken = 0
                    except (ConnectionLost, DeviceTimeout, OSError):
                        # Whether the device took them is unknown: booked, so that the
                        # reconnect either finds them queued or reports them lost.
                        self.in_device.extend(rows)
                        raise
                    finally:
                        self._in_flight = 0
                self.in_device.extend(rows[:taken])
                if taken < len(rows):
                    self.queue.codes.extendleft(reversed(rows[taken:]))
                    self.queue.ready.set()
                    self._refill.set()
                    await asyncio.sleep(0.02)
                    break
            if self.queue.codes and len(self.in_device) < self.target and not self.faults:
                self._refill.set()
            elif self.faults:
                await asyncio.sleep(0.05)
                self._refill.set()

    # --- Printer interface ---
    async def select_job(self, name: str) -> None:
        await self._select(name)
        self.job = name

    async def start(self) -> None:
        self.want_running = True
        try:
            await self._arm()
        except CommandRefused as exc:
            detail = ", ".join(self.faults.values()) or str(exc)
            raise DeviceFault("START_REFUSED", f"{self.name} refused to run: {detail}") from None
        self.state = "running"
        self._refill.set()

    async def stop(self) -> None:
        self.want_running = False
        async with self._lock:
            await self._disarm()
            if self.STOP_DISCARDS:
                self._apply(await self._snapshot())
                self._lose_all("the device discards its queue when it stops")
        self.state = "stopped"

    async def clear(self) -> None:
        async with self._lock:
            await self._discard()
            self._apply(await self._snapshot())
            lost = list(self.in_device) + self.queue.drain()
            self.in_device.clear()
        self.event_stream.lost(lost, "buffer cleared")

    async def clear_faults(self) -> None:
        async with self._lock:
            await self._clear_errors()
            snap = await self._snapshot()
            self._apply(snap)
        self._faults_seen(snap.faults)
        self._refill.set()

    async def send(self, codes: Sequence[str]) -> None:
        for code in codes:
            self._check_code(code)
        self.queue.extend(codes)
        self._refill.set()

    def _check_code(self, code: str) -> None:
        if not code or not code.isascii():
            raise ValueError(f"{self.name}: a code is non-empty ASCII: {code!r}")

    @property
    def pending(self) -> int:
        return len(self.queue.codes) + self._in_flight + len(self.in_device)

    def events(self) -> AsyncIterator[PrinterEvent]:
        return self.event_stream.__aiter__()

    async def status(self) -> PrinterStatus:
        if not self.online:
            return PrinterStatus(False, "offline", self.job, self.pending, self.total_printed,
                                 identity=self.identity)
        async with self._lock:
            snap = await self._snapshot()
            self._apply(snap)
        self._faults_seen(snap.faults)
        self.state = snap.state
        return PrinterStatus(True, "fault" if snap.faults else snap.state, self.job,
                             self.pending, self.total_printed, tuple(snap.faults),
                             identity=self.identity)
