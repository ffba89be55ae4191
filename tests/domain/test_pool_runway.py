"""Low-water marks per level, and the warning before a pool runs dry (from the batch's plan
and the packaging)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.domain.pool import needed_for, runway_warnings
from line_config.loading import parse_config
from line_config.models import LEVELS
from tests.conftest import SMALL_SITE

SITE = parse_config(SMALL_SITE.replace(
    "    packaging: {items_per_case: 4, cases_per_pallet: 2}",
    "    packaging: {items_per_case: 4, cases_per_pallet: 2}\n"
    "    pool: {low_water: {item: 400, pallet: 7}}"))
LINE = SITE.lines[0]


def test_a_level_left_out_gets_the_item_mark_divided_by_the_packaging() -> None:
    assert [LINE.low_water(level) for level in LEVELS] == [400, 100, 7]
    one_number = parse_config(SMALL_SITE.replace(
        "    packaging: {items_per_case: 4, cases_per_pallet: 2}",
        "    packaging: {items_per_case: 4, cases_per_pallet: 2}\n"
        "    pool: {low_water: 1001}")).lines[0]
    assert [one_number.low_water(level) for level in LEVELS] == [1001, 251, 126]


@given(available=st.fixed_dictionaries({level: st.integers(0, 5000) for level in LEVELS}),
       items_left=st.one_of(st.none(), st.integers(0, 8000)))
def test_a_level_is_warned_exactly_when_it_has_less_than_the_plan_or_its_mark(
        available: dict, items_left: int | None) -> None:  # type: ignore[type-arg]
    warnings = runway_warnings(LINE, available, items_left)
    needed = needed_for(LINE, items_left) if items_left is not None else dict.fromkeys(LEVELS, 0)
    for level in LEVELS:
        short = available[level] < needed[level]
        low = available[level] < LINE.low_water(level)
        assert (level in warnings) == (short or low)
        if short:
            assert "runs dry before the batch ends" in warnings[level]
            assert f"{needed[level]:,}" in warnings[level]
        elif low:
            assert "pool low" in warnings[level]


def test_the_plan_needs_whole_cases_and_pallets() -> None:
    assert needed_for(LINE, 9) == {"item": 9, "case": 3, "pallet": 2}
    assert needed_for(LINE, 0) == {"item": 0, "case": 0, "pallet": 0}
