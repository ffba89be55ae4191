"""Start-up of the everyday commands: ``python -m bench.cli [--runs N]``.

Prints the wall time (median and worst of N runs, each a new process, as a person at the
terminal or a script starts it) of ``codeline --help``, ``inspect CODE``, ``ship add`` of one
pallet and ``pool stats``, on a small site database, against the 0.3 s target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.store import SITE, packed_pallets
from edge.domain import shipments
from edge.store.database import Store
from line_config.loading import parse_config

TARGET_S = 0.3


def site_db(workdir: Path, pallets: int) -> tuple[Path, Path, str, list[str]]:
    """A database with ``pallets`` packed pallets: (db, config, an item, the pallets)."""
    db = workdir / "cli.db"
    with Store(db, create=True) as store:
        items, made = packed_pallets(store, parse_config(SITE), pallets, "CLI")
    config = workdir / "site.yaml"
    config.write_text(SITE)
    return db, config, items[0], made


def timed(argvs: list[list[str]]) -> list[float]:
    """Wall seconds of each ``codeline ARGV``, each in a new process."""
    out: list[float] = []
    for argv in argvs:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "edge.cli.main", *argv],
                              capture_output=True, timeout=600)
        out.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"codeline {' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="codeline-cli-bench-"))
    db, config, item, pallets = site_db(workdir, args.runs)
    base = ["--db", str(db), "--config", str(config)]
    with Store(db) as store:
        shipment = shipments.create(store, "D1", "east", operator="b").id
    commands = {
        "codeline --help": [["--help"]] * args.runs,
        "codeline inspect CODE": [[*base, "inspect", item]] * args.runs,
        "codeline ship add ID PALLET": [[*base, "ship", "add", str(shipment), p]
                                        for p in pallets],
        "codeline pool stats": [[*base, "pool", "stats"]] * args.runs,
    }
    for name, argvs in commands.items():
        runs = timed(argvs)
        print(f"{name:<30} median {statistics.median(runs):.3f} s, worst {max(runs):.3f} s "
              f"(target <= {TARGET_S} s)")


if __name__ == "__main__":
    main()
