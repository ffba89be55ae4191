"""Helpers for driver tests: configs pointing at simulators, event collection, bookkeeping."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from drivers.interfaces import BufferLost, DoublePrint, FaultRaised, Printed, PrinterEvent
from drivers.printers.base import PrinterEvents


def tcp(where: str) -> dict[str, object]:
    host, port = where.rsplit(":", 1)
    return {"kind": "tcp", "host": host, "port": int(port), "connect_timeout_ms": 1000}


@dataclass
class Ledger:
    """What a printer driver reported, checked against what was sent."""

    printed: list[str] = field(default_factory=list)
    doubles: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def take(self, event: PrinterEvent) -> None:
        if isinstance(event, Printed):
            self.printed.append(event.code)
        elif isinstance(event, DoublePrint):
            self.doubles.append(event.code)
        elif isinstance(event, BufferLost):
            self.lost.extend(event.codes)
        elif isinstance(event, FaultRaised):
            self.faults.append(event.code)

    def settled(self) -> set[str]:
        return set(self.printed) | set(self.lost)

    def check(self, sent: list[str]) -> None:
        """Never a code reported printed twice, or both printed and lost, or unknown."""
        assert len(self.printed) == len(set(self.printed)), "a code reported printed twice"
        assert not set(self.printed) & set(self.lost), "a code both printed and lost"
        assert self.settled() <= set(sent)
        order = [c for c in sent if c in set(self.printed)]
        assert self.printed == order, "prints reported out of order"


async def collect(events: PrinterEvents, ledger: Ledger, until: int, seconds: float = 10.0,
                  faults: int = 0) -> None:
    """Take events until ``until`` codes are settled (or ``faults`` faults are seen)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while len(ledger.settled()) < until or len(ledger.faults) < faults:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"only {len(ledger.settled())} of {until} codes settled: "
                                 f"{ledger}")
        try:
            ledger.take(await events.next(remaining))
        except TimeoutError:
            continue
