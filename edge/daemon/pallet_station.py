"""The pallet station: a reader sees each released case arrive on the pallet being built;
the arrival is recorded, and a full pallet (or, at batch end, the last) gets its SSCC label."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from drivers.errors import DriverError
from drivers.interfaces import CodeReader, ReadResult
from edge.daemon.failpoints import failpoint
from edge.daemon.stations import (
    END_OF_BATCH,
    POLL_S,
    ContainerStation,
    Halted,
    LabelBench,
    StationContext,
    StationHeld,
)
from edge.domain import station_packing
from edge.domain.errors import DomainError
from line_config.models import Level


class PalletStation(ContainerStation):
    """A reader sees each case arrive on the pallet; a full pallet gets its SSCC label.

    Only a case read arriving is put on the pallet being built, and its arrival is recorded
    in the database in the same step, so that a restart knows which sealed cases are on the
    open pallet and which are still on their way to it.
    """

    level: Level = "pallet"

    def __init__(self, ctx: StationContext, bench: LabelBench, station_id: str,
                 reader: CodeReader, cases_done: Callable[[], bool]) -> None:
        super().__init__(ctx, bench)
        self.station_id = station_id
        self.reader = reader
        self.cases_done = cases_done
        self.expected: list[str] = []
        self.collected: list[str] = []
        self.arrive_timeout = 10.0
        self.more = asyncio.Event()

    def case_sealed(self, serial: str) -> None:
        """The case station released ``serial`` towards the pallet."""
        if serial not in self.expected and serial not in self.collected:
            self.expected.append(serial)
            self.more.set()

    async def load_open_pallet(self) -> None:
        """After a restart: the sealed cases seen arriving are on the open pallet; the other
        sealed cases are awaited, in the order they were sealed."""
        found = await self.ctx.db.call(
            lambda store: station_packing.open_pallet(store.read(), self.ctx.batch_id))
        self.collected = found.arrived
        self.expected = found.awaited

    def carry_over(self, before: PalletStation) -> None:
        """Production starts again in the same controller (Stop, then Start): the pallet
        being built and the cases released towards it are still where they were, so this
        station goes on from what the one before it saw, not from a guess."""
        self.collected = list(before.collected)
        self.expected = list(before.expected)

    async def run(self) -> None:
        while True:
            await self.active.wait()
            failpoint("station.pallet")
            try:
                async with self.step():
                    await self._next()
            except Halted:
                continue

    async def _next(self) -> None:
        """One step: seal a full (or, at the end, the last) pallet, or read the next case."""
        last = self.ctx.ending() and self.cases_done() and not self.expected
        if self.collected and (len(self.collected) == self.capacity or last):
            try:
                await self.label_and_seal(self.collected,
                                          None if len(self.collected) == self.capacity
                                          else END_OF_BATCH)
            except StationHeld as exc:
                self.hold(str(exc))
                return
            self.collected = []
            return
        if last:
            self.finished.set()
            await asyncio.sleep(POLL_S)
            return
        if not self.expected:
            self.more.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self.more.wait()
            return
        await self._arrival(self.expected[0])

    async def _arrival(self, waiting: str) -> None:
        """Trigger the pallet reader until ``waiting`` is seen on the pallet (recorded
        arrived), another case is (hold), or nothing is within the arrival time (hold).
        Should production halt meanwhile, it gives way between two triggers: the case is
        still awaited by whoever carries on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.arrive_timeout
        while True:
            try:
                read = await self.reader.read()
            except DriverError:
                read = ReadResult(None)
            seen = self._serial(read)
            if seen is not None:
                break
            if loop.time() >= deadline:
                self.hold(f"case {waiting} did not reach the pallet reader")
                return
            if self.halting:
                return
            await asyncio.sleep(POLL_S)
        if seen != waiting:
            self.hold(f"pallet reader read case {seen}, expected {waiting}")
            return
        try:
            await self.ctx.db.call(station_packing.record_arrival, seen, station=self.station_id)
        except DomainError as exc:
            self.hold(f"case {seen} arrived but cannot go on the pallet: {exc}")
            return
        self.expected.remove(seen)
        self.collected.append(seen)
