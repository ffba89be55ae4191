"""Realistic database layouts for activation figures, and the cold and warm timing of a
pallet's activation in them.

* **R1**: four lines, each with its own pool generated in one segment, printing alternately
  in blocks of 1-50 items with 1% rejects; each case is packed from 24 items printed minutes
  apart (drawn from the line's oldest good items), 60 cases to a pallet.
* **R2**: the same, with the four lines' pools generated in alternating small segments, so
  their rows interleave in the table.

Cold means a fresh connection and the database file dropped from the OS page cache
(``posix_fadvise(DONTNEED)``) before each activation.

``python -m bench.layouts [--layout R1|R2] [--pallets-per-line N] [--cold N] [--dir DIR]``
prints them alone; ``bench.store`` prints them after its own figures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from edge.domain import aggregation, batches, flow, pool, shipments
from edge.domain.lifecycle import Reason
from edge.store.database import Store
from line_config.loading import parse_config
from line_config.models import SiteConfig

LINES = ("L1", "L2", "L3", "L4")
PER_CASE, PER_PALLET = 24, 60
SEGMENT_R2 = 600
"""Codes in each of R2's alternating pool segments."""
MINUTES_APART = 2_000
"""A case takes its items at random among the line's oldest this many good items."""


def site_config() -> SiteConfig:
    lines = "\n".join(
        f"""  - id: {line}
    codes:
      item: {{symbology: qr, url_base: "https://c.example.com/q/"}}
      case: {{symbology: datamatrix}}
      pallet: {{symbology: sscc, extension_digit: {n + 1}, company_prefix: "6901234"}}
    packaging: {{items_per_case: {PER_CASE}, cases_per_pallet: {PER_PALLET}}}
    pool: {{reserve_block: 500}}""" for n, line in enumerate(LINES))
    return parse_config(f"""
site: {{id: bench, gln: "6901234000009", timezone: Asia/Shanghai}}
products: [{{id: p1, name: Bench, gtin_item: "06901234567892", gtin_case: "16901234567899"}}]
lines:
{lines}
""")


@dataclass
class _Line:
    batch: int
    good: deque[str]
    cases: list[str]
    pallets: list[str]


def _fill_pools(store: Store, site: SiteConfig, layout: str, pallets_per_line: int) -> None:
    items = int(pallets_per_line * PER_PALLET * PER_CASE * 1.02) + MINUTES_APART + 100
    cases = int(pallets_per_line * PER_PALLET * 1.05) + 10  # 1% of labels are rejected too
    for line in site.lines:
        pool.generate(store, line, "pallet", pallets_per_line + 5, operator="bench")
    if layout == "R1":
        for line in site.lines:
            pool.generate(store, line, "item", items, operator="bench")
            pool.generate(store, line, "case", cases, operator="bench")
        return
    left = {line.id: [items, cases] for line in site.lines}
    while any(n > 0 for pair in left.values() for n in pair):
        for line in site.lines:
            for k, level in enumerate(("item", "case")):
                n = min(SEGMENT_R2 if level == "item" else SEGMENT_R2 // 24, left[line.id][k])
                if n > 0:
                    pool.generate(store, line, level, n, operator="bench")  # type: ignore[arg-type]
                    left[line.id][k] -= n


def _print(store: Store, batch: int, level: str, count: int, rng: random.Random) -> list[str]:
    """Reserve, print and judge ``count`` codes (1% rejected); the good serials."""
    res = flow.reserve(store, batch, "bench", level, count)  # type: ignore[arg-type]
    ids = [c.id for c in res.codes]
    verdicts = [flow.Verdict(i, Reason.NO_READ if rng.random() < 0.01 else None) for i in ids]
    flow.record_line(store, batch, level, ids, verdicts)  # type: ignore[arg-type]
    rejected = {v.code_id for v in verdicts if v.reject}
    return [c.serial for c in res.codes if c.id not in rejected]


def _print_one(store: Store, batch: int, level: str, rng: random.Random) -> str:
    """One good code of ``level``, printing again after a reject."""
    while not (good := _print(store, batch, level, 1, rng)):
        pass
    return good[0]


def _pack_case(store: Store, state: _Line, rng: random.Random) -> None:
    window = list(state.good)[:MINUTES_APART]
    chosen = rng.sample(window, PER_CASE)
    for serial in chosen:
        state.good.remove(serial)
    case = _print_one(store, state.batch, "case", rng)
    aggregation.pack(store, case, chosen, operator="bench", close=True)
    state.cases.append(case)
    if len(state.cases) == PER_PALLET:
        pallet = _print_one(store, state.batch, "pallet", rng)
        aggregation.pack(store, pallet, state.cases, operator="bench", close=True)
        state.pallets.append(pallet)
        state.cases = []


def build(path: Path, layout: str, pallets_per_line: int, seed: int = 1) -> list[str]:
    """A database at ``path`` in ``layout`` (R1 or R2); the serials of its full pallets."""
    if layout not in ("R1", "R2"):
        raise ValueError(f"layout is R1 or R2, not {layout}")
    rng = random.Random(seed)
    site = site_config()
    store = Store(path, create=True)
    _fill_pools(store, site, layout, pallets_per_line)
    lines: dict[str, _Line] = {}
    for line in site.lines:
        batch = batches.create(store, site, line.id, "p1", f"LOT-{line.id}", operator="bench")
        batches.start(store, batch.id, operator="bench")
        lines[line.id] = _Line(batch.id, deque(), [], [])
    while any(len(s.pallets) < pallets_per_line for s in lines.values()):
        state = lines[rng.choice([k for k, s in lines.items()
                                  if len(s.pallets) < pallets_per_line])]
        state.good.extend(_print(store, state.batch, "item", rng.randint(1, 50), rng))
        while len(state.good) >= MINUTES_APART and len(state.pallets) < pallets_per_line:
            _pack_case(store, state, rng)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return [p for s in lines.values() for p in s.pallets]


def drop_from_page_cache(path: Path) -> None:
    """Evict the database's files from the OS page cache, so the next reads go to disk."""
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@dataclass(frozen=True)
class Timing:
    """Activation times of single pallets, in milliseconds."""

    cold: list[float]
    warm: list[float]

    @staticmethod
    def line(label: str, times: list[float]) -> str:
        q = statistics.quantiles(times, n=100, method="inclusive")
        return (f"{label:<20} p50 {statistics.median(times):6.1f} ms  p99 {q[98]:6.1f} ms  "
                f"max {max(times):6.1f} ms  ({len(times)} pallets)")


def activation_times(path: Path, pallets: list[str], *, cold: int, warm: int) -> Timing:
    """Confirm shipments of one pallet each: ``cold`` of them after dropping the caches,
    then ``warm`` with the connection and page cache kept."""
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    todo = list(pallets)
    random.Random(7).shuffle(todo)
    store = Store(path)
    for kind, count in (("cold", cold), ("warm", warm)):
        for pallet in todo[:count]:
            shipment = shipments.create(store, "D1", "east", operator="bench")
            shipments.add(store, shipment.id, pallet, operator="bench",
                          allow_mixed_batches=False)
            if kind == "cold":
                store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                store.close()
                drop_from_page_cache(path)
                store = Store(path)
            t = time.perf_counter()
            shipments.confirm(store, shipment.id, operator="bench")
            times[kind].append((time.perf_counter() - t) * 1000)
        del todo[:count]
    store.close()
    return Timing(times["cold"], times["warm"])


def report(path: Path, layout: str, pallets_per_line: int, cold: int) -> None:
    """Build ``layout`` at ``path`` and print its size and activation figures."""
    t = time.perf_counter()
    made = build(path, layout, pallets_per_line)
    size = path.stat().st_size
    print(f"layout {layout}: {len(made)} pallets from {len(LINES)} lines, {size / 1e6:.0f} MB, "
          f"built in {time.perf_counter() - t:.0f} s")
    timing = activation_times(path, made, cold=min(cold, len(made) - 20), warm=20)
    print(Timing.line(f"  activate {layout} cold", timing.cold))
    print(Timing.line(f"  activate {layout} warm", timing.warm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=("R1", "R2"), action="append")
    parser.add_argument("--pallets-per-line", type=int, default=30)
    parser.add_argument("--cold", type=int, default=100, help="pallets activated cold")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="codeline-layouts-"))
    for layout in args.layout or ["R1", "R2"]:
        report(workdir / f"{layout}.db", layout, args.pallets_per_line, args.cold)


if __name__ == "__main__":
    main()
