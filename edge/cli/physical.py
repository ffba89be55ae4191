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
    def container(level: str, label: str | None, children: list[str | None]) -> None:
        """A case or pallet as it left the line: its label, and each child's parent in the
        database (an item must also be COMMISSIONED)."""
        if label is None:
            problems.append(f"a {level} left without a label")
            return
        parent = serial(label)
        for code in children:
            child = serial(code or "")
            if level == "case" and state.get(child, (None, None))[0] is not State.COMMISSIONED:
                problems.append(f"{child} accepted but {state.get(child)}")
            if parent_of.get(child) != parent:
                what = child if level == "case" else f"case {child}"
                problems.append(f"{what} is {'in' if level == 'case' else 'on'} {level} "
                                f"{parent} but the database says {parent_of.get(child)}")

    for case in record["cases"]:
        container("case", case["label"], case["items"])
    if record["not_shipped_cases"]:
        problems.append(f"{record['not_shipped_cases']} released cases never left on a pallet")
    for pallet in record["pallets"]:
        container("pallet", pallet["label"], pallet["cases"])
    return Findings(problems, stranded)
