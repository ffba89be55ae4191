"""``codeline pool import`` of large segment files: ``python -m bench.pool_import [--lines
N ...]``. Prints, per file size, the wall time, codes/s and the importing process's peak
memory (its own VmHWM, read while it runs): memory should stay flat as files grow.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.store import SITE
from bench.sync import run_measured
from edge.domain.serials import SerialScheme
from edge.store.database import Store
from line_config.loading import parse_config


def segment_file(path: Path, lines: int) -> None:
    """A segment of ``lines`` fresh item serials of the bench site, one per line."""
    scheme = SerialScheme.from_config(parse_config(SITE).lines[0].codes.item.serial)
    with path.open("w") as f:
        for start in range(0, lines, 1_000_000):
            f.write("\n".join(scheme.draw(min(1_000_000, lines - start))) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 3_000_000])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="codeline-import-bench-"))
    config = workdir / "site.yaml"
    config.write_text(SITE)
    for lines in args.lines:
        db = workdir / f"import-{lines}.db"
        Store(db, create=True).close()
        segment = workdir / f"segment-{lines}.txt"
        segment_file(segment, lines)
        took, peak = run_measured(["--db", str(db), "--config", str(config), "pool", "import",
                                   str(segment), "--level", "item"])
        print(f"pool import of {lines:>11,} lines ({segment.stat().st_size / 1e6:,.0f} MB): "
              f"{took:6.1f} s, {lines / took:>9,.0f} codes/s, peak RSS {peak:,.0f} MB")
        segment.unlink()
        db.unlink()


if __name__ == "__main__":
    main()
