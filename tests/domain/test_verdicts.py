"""The reject rule (invariant 2) as a pure function, over sequences of reads: an item is
accepted only when its own serial was read, for the first time, at a grade the line takes;
every other read is a reject with the reason a plant engineer expects."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.domain.lifecycle import Reason
from edge.domain.verdicts import Expected, Reading, RejectRule, Verdict
from line_config.grades import GRADES, grade_value

SERIALS = st.sampled_from(["AAAA", "BBBB", "CCCC", "DDDD", "EEEE"])
GRADE = st.sampled_from(GRADES)


@st.composite
def passes(draw: st.DrawFn) -> tuple[Expected, Reading]:
    """An item at the reader and what was read: nothing, a foreign code, its own serial or
    another serial of the line, at some grade."""
    seq = draw(st.integers(1, 10_000))
    expected = Expected(seq, draw(SERIALS), first_print=draw(st.booleans()))
    kind = draw(st.sampled_from(["no-read", "foreign", "own", "other"]))
    grade = draw(st.none() | GRADE)
    if kind == "no-read":
        return expected, Reading(None)
    if kind == "foreign":
        return expected, Reading("https://elsewhere.example/x", None, grade)
    serial = expected.serial if kind == "own" else draw(SERIALS)
    return expected, Reading(f"payload/{serial}", serial, grade)


@settings(max_examples=300)
@given(st.lists(passes(), max_size=60), st.sampled_from(GRADES), st.integers(1, 10))
def test_an_item_is_accepted_only_on_its_own_first_read_at_an_accepted_grade(
        seq: list[tuple[Expected, Reading]], min_grade: str, limit: int) -> None:
    rule = RejectRule(min_grade, limit)  # type: ignore[arg-type]
    accepted: set[str] = set()
    read_before: set[str] = set()  # own serials read on their item (accepted or low grade)
    for expected, reading in seq:
        verdict = rule.judge(expected, reading)
        serial = reading.serial
        if verdict.reject is None:  # the invariant itself
            assert serial == expected.serial and expected.first_print
            assert reading.grade is None or grade_value(reading.grade) >= grade_value(
                min_grade)  # type: ignore[arg-type]
            assert serial not in accepted  # never commissioned twice
            accepted.add(serial)
        # and the reason a plant engineer expects for each kind of read
        if reading.data is None:
            assert verdict.reject is Reason.NO_READ
        elif serial is None:
            assert verdict.reject is Reason.UNKNOWN and verdict.alarm is not None
        elif serial in read_before or (serial == expected.serial and not expected.first_print):
            assert verdict.reject is Reason.DUPLICATE
        elif serial != expected.serial:
            assert verdict.reject is Reason.MISREAD and verdict.pool_check == serial
        else:
            read_before.add(serial)
            low = reading.grade is not None and grade_value(reading.grade) < grade_value(
                min_grade)  # type: ignore[arg-type]
            assert verdict.reject is (Reason.GRADE if low else None)
        assert verdict.pool_check is None or verdict.reject is Reason.MISREAD


@given(st.lists(passes(), max_size=80), st.integers(1, 8))
def test_a_run_of_rejects_holds_the_line_exactly_at_the_limit(
        seq: list[tuple[Expected, Reading]], limit: int) -> None:
    rule = RejectRule("F", limit)
    run = 0
    for expected, reading in seq:
        verdict = rule.judge(expected, reading)
        hold = rule.count(verdict)
        run = 0 if verdict.reject is None else run + 1
        if run == limit:
            assert hold is not None and f"{limit} rejects in a row" in hold
            run = 0
        else:
            assert hold is None


def test_the_same_serial_read_on_the_next_item_is_a_duplicate_not_a_misread() -> None:
    rule = RejectRule("C", 8)
    assert rule.judge(Expected(1, "AAAA"), Reading("p/AAAA", "AAAA", "A")) == Verdict(None)
    assert rule.judge(Expected(2, "BBBB"), Reading("p/AAAA", "AAAA", "A")).reject \
        is Reason.DUPLICATE


def test_a_low_grade_rejects_the_item_and_its_serial_is_not_taken_again() -> None:
    rule = RejectRule("C", 8)
    assert rule.judge(Expected(1, "AAAA"), Reading("p/AAAA", "AAAA", "D")).reject is Reason.GRADE
    assert rule.judge(Expected(2, "AAAA"), Reading("p/AAAA", "AAAA", "A")).reject \
        is Reason.DUPLICATE


def test_a_serial_not_in_the_pool_is_a_foreign_code_with_an_alarm() -> None:
    rule = RejectRule("C", 8)
    verdict = rule.judge(Expected(7, "AAAA"), Reading("p/ZZZZ", "ZZZZ", "A"))
    assert verdict == Verdict(Reason.MISREAD, pool_check="ZZZZ")
    foreign = rule.not_in_pool(Expected(7, "AAAA"), "ZZZZ")
    assert foreign.reject is Reason.UNKNOWN and "ZZZZ is not in the pool" in str(foreign.alarm)
