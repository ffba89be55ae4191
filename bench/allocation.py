"""Allocation as the database grows: ``python -m bench.allocation [--steps N] [--grow M]``.

At each step: ``pool generate`` of 1M item codes and ``pool import`` of a 1M-line segment
file (codes/s, and the longest write-lock hold of each: a running line's commit waits at most
that long), then M million more codes generated untimed so the database grows. The unique
serial index is what slows both as it outgrows the page cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.store import SITE
from edge.domain import pool, pool_import
from edge.domain.segment_loading import LoadFigures
from edge.domain.serials import SerialScheme
from edge.store.database import Store
from line_config.loading import parse_config

STEP = 1_000_000


def segment_file(path: Path, scheme: SerialScheme, count: int) -> None:
    width = scheme.total_length
    block = scheme.draw_sorted(count)
    path.write_bytes(b"".join(block[i:i + width] + b"\n" for i in range(0, len(block), width)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--grow", type=int, default=4, help="million codes added per step")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    site = parse_config(SITE)
    line = site.lines[0]
    scheme = SerialScheme.from_config(line.codes.item.serial)
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="codeline-bench-"))
    store = Store(workdir / "bench.db", create=True)
    segment = workdir / "segment.txt"
    print(f"database {store.path}")
    print(f"{'codes in the DB':>16} {'generate/s':>11} {'hold ms':>8} {'import/s':>10} "
          f"{'hold ms':>8} {'file MB':>8}")
    codes = 0
    for _ in range(args.steps):
        generated = LoadFigures()
        t = time.perf_counter()
        pool.generate(store, line, "item", STEP, operator="bench", figures=generated)
        generate_rate = STEP / (time.perf_counter() - t)
        segment_file(segment, scheme, STEP)
        t = time.perf_counter()
        report = pool_import.import_file(store, line, site.products, "item", segment,
                                         operator="bench")
        import_rate = STEP / (time.perf_counter() - t)
        print(f"{codes:>16,} {generate_rate:>11,.0f} {generated.longest_hold_s * 1000:>8.1f} "
              f"{import_rate:>10,.0f} {report.load.longest_hold_s * 1000:>8.1f} "
              f"{store.path.stat().st_size / 1e6:>8.0f}", flush=True)
        codes += 2 * STEP
        if args.grow:
            pool.generate(store, line, "item", args.grow * STEP, operator="bench")
            codes += args.grow * STEP
    store.close()


if __name__ == "__main__":
    main()
