"""Notices a station that stopped working: its children keep coming and none is packed for
longer than the packaging and the rate allow (a blind camera, a stopped conveyor). Without
it the line would print on, commissioning items that never reach a case."""

from __future__ import annotations

from collections.abc import Callable

from edge.daemon.stations import ContainerStation

MIN_WAIT_S = 20.0
MAX_WAIT_S = 600.0


class PackingWatch:
    """Notices a station that stopped working: children (items for a case station, cases
    for a pallet station) keep coming and none is packed for longer than the packaging and
    the rate allow. Alarms once (standing, without holding: the operator decides), cleared
    when the station packs again. Time in Held or Suspended does not count."""

    def __init__(self, station: ContainerStation, produced: Callable[[], int],
                 rate: Callable[[], float], items_per_container: int) -> None:
        self.station = station
        self.produced = produced
        self.rate = rate
        self.items_per_container = items_per_container
        self.capacity = station.capacity
        self.sealed = 0
        self.baseline = produced()
        self.waited = 0.0
        self.fastest = 0.0
        self.alarmed = False

    @property
    def limit(self) -> int:
        """Children that may wait: two cases' worth of items, or a pallet and two cases."""
        return 2 * self.capacity if self.station.level == "case" else self.capacity + 2

    def allowance(self) -> float:
        """Seconds without a seal allowed: three containers' worth at the rate seen."""
        if self.fastest <= 0:
            return MAX_WAIT_S
        return min(MAX_WAIT_S, max(MIN_WAIT_S, 3 * self.items_per_container / self.fastest))

    def tick(self, seconds: float, running: bool) -> str | None:
        """Advance by ``seconds`` (counted only while ``running``): the alarm text when the
        station has just been found stuck, "" when an alarmed station packs again."""
        if self.station.sealed != self.sealed:
            self.sealed = self.station.sealed
            self.baseline, self.waited, self.fastest = self.produced(), 0.0, 0.0
            if self.alarmed:
                self.alarmed = False
                return ""
            return None
        if not running or self.station.held is not None or self.station.ctx.ending():
            return None
        self.waited += seconds
        self.fastest = max(self.fastest, self.rate())
        waiting = self.produced() - self.baseline
        if self.alarmed or waiting < self.limit or self.waited < self.allowance():
            return None
        self.alarmed = True
        child = self.station.child_level
        return (f"{waiting} {child}s waiting for a {self.station.level}: the "
                f"{self.station.level} station sealed none for {self.waited:.0f} s "
                f"(reader or camera blind? conveyor stopped?)")
