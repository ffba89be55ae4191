"""A line that never stops: reserve, print, judge, pack, palletize, ship, in a loop.

Run as a child process by the crash test, which kills it with SIGKILL at random instants.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from edge.domain import aggregation, flow, shipments
from edge.domain.errors import DomainError
from edge.domain.lifecycle import Reason
from edge.store.database import Store
from line_config.loading import parse_config
from tests.conftest import SMALL_SITE


def main(db: Path, batch_id: int) -> None:
    site = parse_config(SMALL_SITE)
    per_case = site.lines[0].packaging.items_per_case
    per_pallet = site.lines[0].packaging.cases_per_pallet
    rng = random.Random()
    store = Store(db)
    flow.recover(store)
    cases: list[str] = []
    while True:
        items = _produce(store, batch_id, "item", per_case + 2, rng)
        case = _produce(store, batch_id, "case", 1, rng)
        if len(items) >= per_case and case:
            aggregation.pack(store, case[0], items[:per_case], operator="worker", close=True)
            cases.append(case[0])
        if len(cases) >= per_pallet:
            pallet = _produce(store, batch_id, "pallet", 1, rng)
            if pallet:
                aggregation.pack(store, pallet[0], cases[:per_pallet], operator="worker",
                                 close=True)
                cases = cases[per_pallet:]
                shipment = shipments.create(store, "D1", "east", operator="worker")
                shipments.add(store, shipment.id, pallet[0], operator="worker",
                              allow_mixed_batches=False)
                shipments.confirm(store, shipment.id, operator="worker")
                if rng.random() < 0.3:
                    shipments.cancel(store, shipment.id, operator="worker", reason="recalled")
        sys.stdout.write(".")
        sys.stdout.flush()


def _produce(store: Store, batch_id: int, level: str, n: int, rng: random.Random) -> list[str]:
    try:
        block = flow.reserve(store, batch_id, "st", level, n)  # type: ignore[arg-type]
    except DomainError:
        sys.exit(3)  # pool exhausted: the test sized it so this does not happen
    printed = block.codes[: n - 1] if rng.random() < 0.3 else block.codes
    flow.mark_printed(store, batch_id, level, [c.id for c in printed])  # type: ignore[arg-type]
    verdicts = [flow.Verdict(c.id, Reason.NO_READ if rng.random() < 0.05 else None)
                for c in printed]
    flow.record_verdicts(store, batch_id, level, verdicts)  # type: ignore[arg-type]
    return [c.serial for c, v in zip(printed, verdicts, strict=True) if v.reject is None]


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
