"""A long run of a real ``codeline run`` process against the simulated line: does anything grow?

The controller and ``codeline sim line`` (devices, conveyor, PLC) run as their own processes,
as on a plant's box. Every ``--every`` seconds the controller's resident memory, open file
descriptors and threads, the database's WAL file and the items commissioned so far are
sampled from /proc, the database folder and the status file. At the end: the table, memory
per item over the whole run and over its second half (a plateau shows as ~0 B/item there),
and whether the controller was still alive.

    python -m bench.soak [--minutes 10] [--rate 700] [--every 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import line
from edge.daemon.site import status_path
from line_config.loading import example_path, load_config
from line_config.models import SiteConfig


@dataclass
class Sample:
    at: float
    rss_mb: float
    fds: int
    threads: int
    wal_mb: float
    items: int


def prepare(workdir: Path, items: int) -> tuple[SiteConfig, Path]:
    """bench.line's set-up, with pools for ``items`` items and their cases and pallets."""
    packaging = load_config(example_path("simulated")).lines[0].packaging
    cases = items // packaging.items_per_case + 100
    return line.prepare(workdir, items, {"item": items + 20_000, "case": cases,
                                         "pallet": cases // packaging.cases_per_pallet + 20},
                        "SOAK")


def codeline(config_path: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", "from edge.cli.main import run; run()",
                                 "--config", str(config_path), *args],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def sample(pid: int, db_path: Path, started: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    wal = db_path.with_name(db_path.name + "-wal")
    wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
    items = 0
    try:
        snapshot = json.loads(status_path(db_path).read_text())
        items = int(snapshot["lines"][0]["counts"]["batch"]["commissioned"])
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return Sample(time.monotonic() - started, rss_kb / 1024, fds, threads, wal_mb, items)


def per_item(first: Sample, last: Sample) -> str:
    items = last.items - first.items
    if items <= 0:
        return "n/a"
    return f"{(last.rss_mb - first.rss_mb) * 1024 * 1024 / items:,.0f} B/item"


def run(minutes: float, rate: float, every: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="codeline-soak-"))
    items = int(rate * minutes * 60 * 1.2) + 1000
    print(f"preparing {items:,} item codes in {workdir} …", flush=True)
    config, config_path = prepare(workdir, items)
    db_path = Path(config.store.path)
    controller = codeline(config_path, "run", log=workdir / "controller.log")
    simulated = codeline(config_path, "sim", "line", "--batch", "SOAK", "--set",
                         f"rate={rate}", "--set", "transit_ms=1500", "--set",
                         "noread_rate=0.01", log=workdir / "line.log")
    samples: list[Sample] = []
    started = time.monotonic()
    try:
        print(f"{'s':>6} {'RSS MB':>8} {'fds':>5} {'threads':>7} {'WAL MB':>7} {'items':>9}",
              flush=True)
        while time.monotonic() - started < minutes * 60:
            time.sleep(every)
            if controller.poll() is not None:
                print(f"the controller ended with {controller.returncode}: see "
                      f"{workdir / 'controller.log'}")
                break
            s = sample(controller.pid, db_path, started)
            samples.append(s)
            print(f"{s.at:6.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.threads:7d} {s.wal_mb:7.1f} "
                  f"{s.items:9,d}", flush=True)
    finally:
        alive = controller.poll() is None
        for process in (simulated, controller):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (simulated, controller):
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        middle = samples[len(samples) // 2]
        span = last.at - first.at
        print(f"items/s over the run: {(last.items - first.items) / span:,.0f}")
        print(f"RSS {first.rss_mb:.1f} → {last.rss_mb:.1f} MB: {per_item(first, last)} over the "
              f"run, {per_item(middle, last)} over its second half")
        print(f"fds {first.fds} → {last.fds}, threads {first.threads} → {last.threads}, "
              f"WAL max {max(s.wal_mb for s in samples):.1f} MB")
    print(f"controller alive at the end: {'yes' if alive else 'NO'}; "
          f"stopped with {controller.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=700.0, help="infeed, items/s")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    run(args.minutes, args.rate, args.every)


if __name__ == "__main__":
    main()
