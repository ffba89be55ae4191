"""Print grades of a 2D code, as ISO/IEC 15415 scores them: A (best) to F (fail)."""

from __future__ import annotations

from typing import Literal

Grade = Literal["A", "B", "C", "D", "F"]
GRADES: tuple[Grade, ...] = ("F", "D", "C", "B", "A")  # worst to best


def grade_value(grade: Grade) -> int:
    """A = 4 ... F = 0."""
    return GRADES.index(grade)
