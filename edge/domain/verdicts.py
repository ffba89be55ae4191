"""The reject rule (invariant 2) as pure code: the item the line expects at the reader, what
the reader read and the line's rules give the verdict. No I/O: the one question that needs
the database (is a foreign serial in the pool at all?) is handed back to the caller.

An item is accepted only when its own serial was read, once, at a grade the line accepts;
everything else is a reject with its reason. A run of rejects longer than the line allows
holds the line.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edge.domain.lifecycle import Reason
from line_config.grades import Grade, grade_value


@dataclass(frozen=True)
class Expected:
    """The item at the head of the line between printer and reader."""

    seq: int
    serial: str
    first_print: bool = True  # False: a second print of a code already on another item


@dataclass(frozen=True)
class Reading:
    """What the reader saw: nothing (``data`` None), something that is not a code of this
    line (``serial`` None), or a code of this line and its serial; with its print grade."""

    data: str | None
    serial: str | None = None
    grade: Grade | None = None


@dataclass(frozen=True)
class Verdict:
    """Accepted (``reject`` None) or rejected with a reason; with a one-off alarm to raise,
    and, for a serial that is not the expected one, the serial whose presence in the pool
    tells a misread (a code of ours, out of place) from a foreign code."""

    reject: Reason | None
    alarm: str | None = None
    pool_check: str | None = None


class RejectRule:
    """The verdicts of one line's reader, in the order the items pass it. It remembers the
    serials it accepted lately (a second read of one is a duplicate) and counts rejects in a
    row."""

    def __init__(self, min_grade: Grade | None, consecutive_limit: int,
                 memory: int = 200_000) -> None:
        self.min_grade = grade_value(min_grade) if min_grade else 0
        self.consecutive_limit = consecutive_limit
        self.memory = memory
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.consecutive = 0

    def judge(self, expected: Expected, reading: Reading) -> Verdict:
        """The verdict of ``reading`` for the item ``expected``."""
        if reading.data is None:
            return Verdict(Reason.NO_READ)
        read = reading.serial
        if read is None:
            return Verdict(Reason.UNKNOWN, alarm=f"item {expected.seq}: read a code that is "
                                                 "not of this line")
        if read == expected.serial:
            if not expected.first_print or read in self.recent:
                return Verdict(Reason.DUPLICATE)
            self._remember(read)
            if reading.grade is not None and grade_value(reading.grade) < self.min_grade:
                return Verdict(Reason.GRADE)
            return Verdict(None)
        if read in self.recent:
            return Verdict(Reason.DUPLICATE)
        return Verdict(Reason.MISREAD, pool_check=read)

    def not_in_pool(self, expected: Expected, serial: str) -> Verdict:
        """The verdict once the pool says a misread serial is not one of the site's."""
        return Verdict(Reason.UNKNOWN, alarm=f"item {expected.seq}: serial {serial} is not in "
                                             "the pool (counterfeit or mix-up)")

    def count(self, verdict: Verdict) -> str | None:
        """Count a verdict given; the alarm that holds the line when the rejects in a row
        reach the limit (the count then starts again)."""
        if verdict.reject is None:
            self.consecutive = 0
            return None
        self.consecutive += 1
        if self.consecutive < self.consecutive_limit:
            return None
        run, self.consecutive = self.consecutive, 0
        return (f"{run} rejects in a row (last: {verdict.reject.label}): check printer and "
                "camera")

    def _remember(self, serial: str) -> None:
        self.recent[serial] = None
        while len(self.recent) > self.memory:
            self.recent.popitem(last=False)
