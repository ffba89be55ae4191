"""The case station: a camera above the open case reads every item code in it at once; a
full case (or, at batch end, the last one) is labelled, sealed and released to the pallet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from drivers.errors import DriverError
from drivers.interfaces import ReadResult
from drivers.registry import MultiReader
from edge.daemon.failpoints import failpoint
from edge.daemon.stations import (
    END_OF_BATCH,
    GIVE_UP_S,
    POLL_S,
    SETTLE_S,
    ContainerStation,
    Halted,
    LabelBench,
    StationContext,
    StationHeld,
    log,
)
from edge.domain import station_packing
from line_config.models import Level


class CaseStation(ContainerStation):
    """A camera above the open case reads every item code in it at once."""

    level: Level = "case"

    def __init__(self, ctx: StationContext, bench: LabelBench, station_id: str,
                 camera: MultiReader, on_sealed: Callable[[str], None]) -> None:
        super().__init__(ctx, bench)
        self.station_id = station_id
        self.camera = camera
        self.on_sealed = on_sealed
        self.leaving: set[str] = set()
        self._odd_view: frozenset[str] | None = None
        self._view: frozenset[str] | None = None
        self._since = 0.0

    async def run(self) -> None:
        while True:
            await self.active.wait()
            failpoint("station.case")
            try:
                reads = await self.camera.read_all()
            except DriverError as exc:
                self.hold(f"case camera: {exc}")
                continue
            serials = []
            for result in reads:
                serial = self._serial(result)
                if serial is not None:
                    serials.append(serial)
            if self.leaving & set(serials):
                await asyncio.sleep(POLL_S)  # the sealed case has not left the station yet
                continue
            self.leaving = set()
            if self._unconfirmed_oddity(reads, serials):
                await asyncio.sleep(POLL_S)
                continue
            partial: str | None = None
            if len(serials) < self.capacity:
                if not self.ctx.ending():
                    await asyncio.sleep(POLL_S)
                    continue
                # The batch is ending: a part-filled case is sealed once the view is steady
                # (the packer pushed it out); an empty, steady view ends the station's work.
                view = frozenset(serials)
                now = asyncio.get_running_loop().time()
                if view != self._view:
                    self._view, self._since = view, now
                left = await self.ctx.db.call(lambda store: station_packing.unpacked_count(
                    store.read(), self.ctx.batch_id, 0))
                steady = now - self._since
                if not serials and (left == 0 or steady >= GIVE_UP_S):
                    if left:
                        self.ctx.alarm(self.station_id, f"{left} commissioned items never "
                                       "reached the case station (rejected at the gate "
                                       "after a restart?)", False)
                    self.finished.set()
                    return
                if not serials or steady < SETTLE_S:
                    await asyncio.sleep(POLL_S)
                    continue
                partial = END_OF_BATCH
            if len(serials) > self.capacity:
                self.hold(self._too_many(reads, serials))
                continue
            try:
                async with self.step():
                    await self._pack(serials, partial)
            except Halted:
                continue

    async def _pack(self, serials: list[str], partial: str | None) -> None:
        """Seal the case in view and release it towards the pallet."""
        resealed = await self.ctx.db.call(
            lambda store: station_packing.sealed_together(store.read(), serials))
        if resealed is not None:
            # Sealed before a restart, never released: release it now.
            self.leaving = set(serials)
            self.ctx.outputs.released("case")
            self.on_sealed(resealed)
            return
        try:
            case = await self.label_and_seal(serials, partial)
        except StationHeld as exc:
            self.hold(str(exc))
            return
        self.leaving = set(serials)
        self.on_sealed(case)


    def _too_many(self, reads: list[ReadResult], serials: list[str]) -> str:
        """The alarm for a view with more codes than a case holds, saying what is odd."""
        strays = [r.data for r in reads if r.data is not None and not self._ours(r.data)]
        twice = len(serials) - len(set(serials))
        log.warning("too many codes in the case view", extra={
            "line": self.ctx.line.id, "station": self.station_id, "batch": self.ctx.batch_id,
            "codes": serials, "strays": strays})
        detail = [f"{len(strays)} not of this line ({strays[0][:24]!r}…)" if strays else "",
                  f"{twice} read twice" if twice else ""]
        return (f"{len(serials)} items in a case of {self.capacity}"
                + (f": {', '.join(d for d in detail if d)}" if any(detail) else ""))

    def _unconfirmed_oddity(self, reads: list[ReadResult], serials: list[str]) -> bool:
        """A view with more codes than a case holds, or a code that is not one of ours, is
        acted on (held for) only when the next frame shows the same: a decoder's stray
        symbol in one frame is not a 25th item."""
        odd = len(serials) > self.capacity or any(
            not self._ours(r.data) for r in reads if r.data is not None)
        if not odd:
            self._odd_view = None
            return False
        view = frozenset(serials)
        if view == self._odd_view:
            return False
        self._odd_view = view
        log.info("odd case view, reading again", extra={
            "line": self.ctx.line.id, "station": self.station_id, "batch": self.ctx.batch_id,
            "codes": len(serials)})
        return True
