"""What a line tells the outside world (the PLC server, the status view), and its figures."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge.daemon.snapshot import Counters, Figures
from edge.domain import batches


class LineOutputs(Protocol):
    """Receives a line's news; the OPC-UA server publishes it to the PLC."""

    async def verdicts(self, through_seq: int, rejects: Sequence[int]) -> None:
        """Items up to ``through_seq`` are judged (committed); ``rejects`` must be rejected."""
        ...

    async def numbering_restarted(self) -> None:
        """Item numbers start again at 1 (a new production run): the PLC must learn it before
        the first item of the new numbering, together with an empty reject list."""
        ...

    def changed(self) -> None:
        """State, counters or alarms changed: refresh what is published."""
        ...

    def released(self, level: str) -> None:
        """A case or pallet is sealed and may leave its station."""
        ...


class NoOutputs:
    """A line without a PLC server."""

    async def verdicts(self, through_seq: int, rejects: Sequence[int]) -> None:
        pass

    async def numbering_restarted(self) -> None:
        pass

    def changed(self) -> None:
        pass

    def released(self, level: str) -> None:
        pass


@dataclass
class Counts:
    """PackML-style admin counters of one scope (a batch, or everything since start)."""

    printed: int = 0
    commissioned: int = 0
    rejected: int = 0
    cases: int = 0
    pallets: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def reset_to(self, other: Counts) -> None:
        """Take ``other``'s figures, in place (the flow and stations hold this object)."""
        self.printed, self.commissioned, self.rejected = (other.printed, other.commissioned,
                                                          other.rejected)
        self.cases, self.pallets = other.cases, other.pallets
        self.rejected_by_reason = Counter(other.rejected_by_reason)

    def add_report(self, report: batches.BatchReport) -> None:
        """Add a batch's figures from its reconciliation report."""
        empty = batches.LevelCounts()
        item = report.levels.get("item", empty)
        self.printed += item.printed
        self.commissioned += item.commissioned
        self.rejected += item.rejected
        self.rejected_by_reason.update(item.rejected_by_reason)
        self.cases += report.levels.get("case", empty).commissioned
        self.pallets += report.levels.get("pallet", empty).commissioned

    def figures(self) -> Figures:
        """The counters now, frozen."""
        return Figures(self.printed, self.commissioned, self.rejected, self.cases,
                       self.pallets, dict(self.rejected_by_reason))


class LineCounters:
    """A line's admin counters, this batch's and all batches', moved only by the events that
    count (an item printed, judged, a container sealed) or reloaded from the database."""

    def __init__(self) -> None:
        self.batch = Counts()
        self.total = Counts()

    def printed(self) -> None:
        self.batch.printed += 1
        self.total.printed += 1

    def commissioned(self) -> None:
        self.batch.commissioned += 1
        self.total.commissioned += 1

    def rejected(self, reason: str) -> None:
        for scope in (self.batch, self.total):
            scope.rejected += 1
            scope.rejected_by_reason[reason] += 1

    def sealed(self, level: str) -> None:
        for scope in (self.batch, self.total):
            if level == "case":
                scope.cases += 1
            else:
                scope.pallets += 1

    def reload(self, batch: Counts, total: Counts) -> None:
        """Take the database's figures (at start, at a new batch, after decommissioning)."""
        self.batch.reset_to(batch)
        self.total.reset_to(total)

    def counters(self) -> Counters:
        """Both scopes now, frozen."""
        return Counters(self.batch.figures(), self.total.figures())


@dataclass(frozen=True)
class Alarm:
    """One alarm: where, what, when (epoch seconds)."""

    source: str
    text: str
    at: float
    active: bool = True


class RateMeter:
    """Items per second over a sliding window."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window = window_s
        self.stamps: deque[tuple[float, int]] = deque()

    def add(self, n: int = 1) -> None:
        now = time.monotonic()
        self.stamps.append((now, n))
        while self.stamps and self.stamps[0][0] < now - self.window:
            self.stamps.popleft()

    def rate(self) -> float:
        now = time.monotonic()
        while self.stamps and self.stamps[0][0] < now - self.window:
            self.stamps.popleft()
        if not self.stamps:
            return 0.0
        span = max(now - self.stamps[0][0], 1.0)
        return sum(n for _, n in self.stamps) / span
