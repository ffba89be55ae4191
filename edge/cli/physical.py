"""The physical line against the database, item by item, case by case, pallet by pallet.

The simulated line records what physically happened (:meth:`simulators.line.SimLine.record`:
which items the gate let through, what is in each case, which cases are on each pallet and
the labels on them); the database says what the controller recorded. ``codeline demo``,
the tests and ``bench.line --runs N`` compare the two after a batch completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.domain.lifecycle import State
from edge.domain.payloads import PayloadCodec
from edge.store.database import Store
from line_config.models import Line, Product


@dataclass
class Findings:
    """What the comparison of line and database found: each disagreement in words, and how
    many commissioned items are physically off the line (rejected at the gate)."""

    problems: list[str]
    stranded: int


def compare(db_path: Path, line: Line, products: list[Product],
            record: dict[str, Any]) -> Findings:
    """Every printed, accepted and rejected item, every case and every pallet of ``record``
    against the database at ``db_path``."""
    codec = PayloadCodec(line, products)

    def serial(code: str) -> str:
        return codec.parse(code).serial

    problems: list[str] = []
    printed: list[str] = record["printed"]
    if len(printed) != len(set(printed)):
        problems.append("a code was printed on two items")
    with Store(db_path) as store:
        conn = store.read()
        state = {row[0]: (State(row[1]), row[2]) for row in conn.execute(
            "SELECT serial, state, parent_id FROM codes WHERE level = 0 AND state > 0")}
        serial_of_id = dict(conn.execute("SELECT id, serial FROM codes WHERE level > 0"))
        parent_of = {row[0]: serial_of_id.get(row[1]) for row in conn.execute(
            "SELECT serial, parent_id FROM codes WHERE parent_id IS NOT NULL")}
    rejected = {serial(code) for code in record["rejected"]}
    accepted = {serial(code) for code in record["accepted"]}
    for item, (st, _) in state.items():
        if st is State.REJECTED and item not in rejected and item in accepted:
            problems.append(f"{item} judged bad but not rejected at the gate")
    stranded = 0
    for item, (st, parent) in state.items():
        if st is State.COMMISSIONED and item not in accepted:
            stranded += 1
            if parent is not None:
                problems.append(f"{item} packed but physically rejected")
    for case in record["cases"]:
        if case["label"] is None:
            problems.append("a case left without a label")
            continue
        case_serial = serial(case["label"])
        for code in case["items"]:
            item = serial(code)
            if state.get(item, (None, None))[0] is not State.COMMISSIONED:
                problems.append(f"{item} accepted but {state.get(item)}")
            if parent_of.get(item) != case_serial:
                problems.append(f"{item} is in case {case_serial} but the database says "
                                f"{parent_of.get(item)}")
    if record["not_shipped_cases"]:
        problems.append(f"{record['not_shipped_cases']} released cases never left on a pallet")
    for pallet in record["pallets"]:
        if pallet["label"] is None:
            problems.append("a pallet left without a label")
            continue
        pallet_serial = serial(pallet["label"])
        for label in pallet["cases"]:
            case_serial = serial(label or "")
            if parent_of.get(case_serial) != pallet_serial:
                problems.append(f"case {case_serial} is on pallet {pallet_serial} but the "
                                f"database says {parent_of.get(case_serial)}")
    return Findings(problems, stranded)
