"""Store throughput on a file database: ``python -m bench.store [--items N] [--dir DIR]``.

Prints generate and import codes/s, reserve+print+commission items/s (blocks of 500 in
batched transactions), pack items/s, the activation time of one pallet (1 + 60 + 1,440
codes) and of a whole batch, and bytes per code on disk; then the activation of single
pallets, cold and warm, in the realistic layouts R1 and R2 (``bench.layouts``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import layouts
from edge.domain import aggregation, batches, flow, pool, pool_import, shipments
from edge.domain.serials import SerialScheme
from edge.store.database import Store
from line_config.loading import parse_config
from line_config.models import SiteConfig

SITE = """
site: {id: bench, gln: "6901234000009", timezone: Asia/Shanghai}
products: [{id: p1, name: Bench, gtin_item: "06901234567892", gtin_case: "16901234567899"}]
lines:
  - id: L1
    codes:
      item: {symbology: qr, url_base: "https://c.example.com/q/"}
      case: {symbology: datamatrix}
      pallet: {symbology: sscc, extension_digit: 3, company_prefix: "6901234"}
    packaging: {items_per_case: 24, cases_per_pallet: 60}
    pool: {reserve_block: 500}
"""
PER_CASE, PER_PALLET = 24, 60


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}/s  ({n:,} in {seconds:.2f} s)"


def produce(store: Store, batch: int, level: str, count: int, block: int = 500) -> list[str]:
    """Reserve, print and commission ``count`` codes in blocks; their serials."""
    out: list[str] = []
    while len(out) < count:
        n = min(block, count - len(out))
        res = flow.reserve(store, batch, "bench", level, n)  # type: ignore[arg-type]
        ids = [c.id for c in res.codes]
        flow.mark_printed(store, batch, level, ids)  # type: ignore[arg-type]
        flow.record_verdicts(store, batch, level, [flow.Verdict(i) for i in ids])  # type: ignore[arg-type]
        out.extend(c.serial for c in res.codes)
    return out


def pack_all(store: Store, items: list[str], cases: list[str], pallets: list[str],
             per_case: int, per_pallet: int, operator: str) -> None:
    """Full cases of ``items`` in ``cases``, full pallets of those cases in ``pallets``."""
    for k, case in enumerate(cases):
        aggregation.pack(store, case, items[k * per_case:(k + 1) * per_case],
                         operator=operator, close=True)
    for k, pallet in enumerate(pallets):
        aggregation.pack(store, pallet, cases[k * per_pallet:(k + 1) * per_pallet],
                         operator=operator, close=True)


def packed_pallets(store: Store, site: SiteConfig, pallets: int, lot: str,
                   produce_items: Callable[[Store, int, str, int], list[str]] = produce,
                   ) -> tuple[list[str], list[str]]:
    """A started batch on the site's first line with ``pallets`` full, closed pallets:
    (its items, its pallets)."""
    line = site.lines[0]
    per_case, per_pallet = line.packaging.items_per_case, line.packaging.cases_per_pallet
    pool.generate(store, line, "item", pallets * per_pallet * per_case, operator="b")
    pool.generate(store, line, "case", pallets * per_pallet, operator="b")
    pool.generate(store, line, "pallet", pallets, operator="b")
    batch = batches.create(store, site, line.id, site.products[0].id, lot, operator="b")
    batches.start(store, batch.id, operator="b")
    items = produce_items(store, batch.id, "item", pallets * per_pallet * per_case)
    cases = produce(store, batch.id, "case", pallets * per_pallet)
    made = produce(store, batch.id, "pallet", pallets)
    pack_all(store, items, cases, made, per_case, per_pallet, "b")
    return items, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the big batch")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    parser.add_argument("--pallets-per-line", type=int, default=30,
                        help="full pallets each of the four lines of R1 and R2 makes")
    parser.add_argument("--cold", type=int, default=100,
                        help="pallets activated cold in each layout (then 20 warm)")
    args = parser.parse_args()
    site = parse_config(SITE)
    line = site.lines[0]
    pallets = max(6, args.items // (PER_CASE * PER_PALLET))
    cases = pallets * PER_PALLET
    items = cases * PER_CASE
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="codeline-bench-"))
    store = Store(workdir / "bench.db", create=True)
    print(f"database {store.path}; batch of {items:,} items, {cases:,} cases, {pallets} pallets")

    t = time.perf_counter()
    pool.generate(store, line, "item", items, operator="bench")
    print("generate           ", rate(items, time.perf_counter() - t))
    pool.generate(store, line, "case", cases, operator="bench")
    pool.generate(store, line, "pallet", pallets, operator="bench")

    segment = workdir / "segment.txt"
    fresh = SerialScheme.from_config(line.codes.item.serial).draw(items)
    segment.write_text("\n".join(fresh) + "\n")
    t = time.perf_counter()
    pool_import.import_file(store, line, site.products, "item", segment, operator="bench")
    print("import             ", rate(items, time.perf_counter() - t))

    batch = batches.create(store, site, "L1", "p1", "BENCH", operator="bench")
    batches.start(store, batch.id, operator="bench")
    t = time.perf_counter()
    item_serials = produce(store, batch.id, "item", items)
    print("reserve+print+comm.", rate(items, time.perf_counter() - t))
    case_serials = produce(store, batch.id, "case", cases)
    pallet_serials = produce(store, batch.id, "pallet", pallets)

    t = time.perf_counter()
    pack_all(store, item_serials, case_serials, pallet_serials, PER_CASE, PER_PALLET, "bench")
    print("pack               ", rate(items + cases, time.perf_counter() - t))

    single: list[float] = []
    for pallet in pallet_serials[:5]:
        shipment = shipments.create(store, "D1", "east", operator="bench")
        shipments.add(store, shipment.id, pallet, operator="bench", allow_mixed_batches=False)
        t = time.perf_counter()
        shipments.confirm(store, shipment.id, operator="bench")
        single.append(time.perf_counter() - t)
    print(f"activate 1 pallet   p50 {statistics.median(single) * 1000:.1f} ms, "
          f"min {min(single) * 1000:.1f} ms, max {max(single) * 1000:.1f} ms "
          f"({len(single)} pallets of 1 + {PER_PALLET} + {PER_PALLET * PER_CASE} codes)")

    rest = pallet_serials[5:]
    shipment = shipments.create(store, "D2", "west", operator="bench")
    for pallet in rest:
        shipments.add(store, shipment.id, pallet, operator="bench", allow_mixed_batches=False)
    t = time.perf_counter()
    done = shipments.confirm(store, shipment.id, operator="bench")
    took = time.perf_counter() - t
    print(f"activate batch      {took:.2f} s for {done.code_count:,} codes "
          f"({len(rest)} pallets)")

    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    codes = store.read().execute("SELECT count(*) FROM codes").fetchone()[0]
    print(f"bytes per code      {store.size_bytes() / codes:.1f}  ({codes:,} codes, "
          f"{store.size_bytes() / 1e6:.1f} MB, everything included)")
    store.close()

    for layout in ("R1", "R2"):
        layouts.report(workdir / f"{layout}.db", layout, args.pallets_per_line, args.cold)


if __name__ == "__main__":
    main()
