"""Line throughput and reject decision latency against the simulated line on loopback.

The physical line (CLARiTY printer and DMCC reader simulators, conveyor, case and pallet
devices) and the PLC simulator run in their own process, ``codeline sim line``, as the
hardware would; the controller runs in this one so its figures can be read. Prints items/s
(commissioned per second of Execute), the reject decision latency p50/p99 (camera result
received → reject request published on the OPC-UA server; a reject is told ahead of its
commit, in the fail-safe direction), the group commit's duration and the longest
event-loop stall in each PackML state (Resetting: devices connecting; Execute: the batch).

After each batch the physical line is compared with the database (``--runs N`` repeats the
batch N times, to see a rare mismatch; exit status 1 if any run differed).

    python -m bench.line [--items 6000] [--rate 3000] [--noread 0.02] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from edge.cli import physical
from edge.cli.line_harness import loopback_config, stock_line
from edge.cli.physical import Findings
from edge.daemon.packml import State
from edge.daemon.site import Site
from line_config.loading import example_path, load_config
from line_config.models import Level, SiteConfig


def prepare(workdir: Path, items: int, pools: dict[Level, int] | None = None,
            lot: str = "BENCH") -> tuple[SiteConfig, Path]:
    """The simulated example on free ports with a deep printer buffer; pools and a batch of
    ``items`` (lot ``lot``)."""
    config = loopback_config(load_config(example_path("simulated")), workdir, sync_in_run=())
    data = config.model_dump(mode="python")
    data["lines"][0]["stations"][0]["buffer_ahead"] = 400
    data["lines"][0]["devices"][0]["high_water"] = 400
    data["lines"][0]["devices"][0]["low_water"] = 200
    config = SiteConfig.model_validate(data)
    stock_line(config, Path(config.store.path),
               pools or {"item": items * 2, "case": items, "pallet": 100 + items // 100},
               lot, items, "bench")
    config_path = workdir / "line.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return config, config_path


async def start_physical_line(config_path: Path, rate: float, noread: float,
                              record: Path | None = None) -> asyncio.subprocess.Process:
    """``codeline sim line`` with its PLC, which starts the batch once the controller is up
    (and, given ``record``, writes what physically happened there at exit)."""
    recording = ["--record", str(record)] if record is not None else []
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from edge.cli.main import run; run()",
        "--config", str(config_path), "sim", "line", "--batch", "BENCH", *recording,
        "--set", f"rate={rate}", "--set", "transit_ms=2000", "--set", f"noread_rate={noread}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    assert sim.stdout is not None
    async with asyncio.timeout(30):
        said = b""
        while b"simulated" not in (line := await sim.stdout.readline()):
            said += line
            if not line:
                raise RuntimeError("the simulated line did not start: "
                                   + said.decode(errors="replace")[-2000:])
    return sim


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (polled: the runtime has no event for it)
            await asyncio.sleep(0.005)


class StallMeter:
    """The event loop's longest stall per PackML state: a task that asks to wake every 5 ms
    and records how late it woke, under the state the line was in."""

    def __init__(self, state: Callable[[], State]) -> None:
        self.state = state
        self.longest: dict[str, float] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(0.005)
            late = loop.time() - asked - 0.005
            name = self.state().label
            self.longest[name] = max(self.longest.get(name, 0.0), late)


def percentiles(seconds: Iterable[float]) -> str:
    ms = sorted(x * 1000 for x in seconds)
    if len(ms) < 2:
        return "too few samples"
    p = statistics.quantiles(ms, n=100)
    return f"p50 {p[49]:.2f} ms, p99 {p[98]:.2f} ms, max {ms[-1]:.2f} ms"


async def run(items: int, rate: float, noread: float, quiet: bool = False) -> Findings:
    """One batch of ``items``: prints its figures (unless ``quiet``) and returns what the
    comparison of the physical line with the database found."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="codeline-bench-"))
    config, config_path = prepare(workdir, items)
    record = workdir / "physical.json"
    sim = await start_physical_line(config_path, rate, noread, record)
    site = Site(config, Path(config.store.path), workdir)
    stop = asyncio.Event()
    daemon = asyncio.create_task(site.run(stop))
    stalls = StallMeter(lambda: site.lines[0].state)
    metering = asyncio.create_task(stalls.run())
    try:
        line = site.lines[0]
        await until(lambda: line.flow is not None and line.state is State.EXECUTE, 60)
        flow = line.flow
        assert flow is not None
        started, cpu, sim_cpu = time.perf_counter(), time.process_time(), cpu_seconds(sim.pid)
        await flow.settled(lambda: flow.commissioned >= items)
        elapsed = time.perf_counter() - started
        cpu, sim_cpu = time.process_time() - cpu, cpu_seconds(sim.pid) - sim_cpu
        rejects, commits = list(flow.latencies), list(flow.committer.durations)
        await until(lambda: line.state is State.COMPLETE, 120)
    finally:
        metering.cancel()
        stop.set()
        with contextlib.suppress(Exception):
            await daemon
        with contextlib.suppress(ProcessLookupError):
            sim.send_signal(signal.SIGTERM)
        out, _ = await sim.communicate()
    found = physical.compare(Path(config.store.path), config.lines[0], config.products,
                             json.loads(record.read_text()))
    if not quiet:
        report(items, elapsed, rate, rejects, commits, cpu, sim_cpu, stalls, out)
    shutil.rmtree(workdir, ignore_errors=True)
    return found


def report(items: int, elapsed: float, rate: float, rejects: list[float],
           commits: list[float], cpu: float, sim_cpu: float, stalls: StallMeter,
           out: bytes) -> None:
    print(f"items commissioned: {items:,} in {elapsed:.2f} s = {items / elapsed:,.0f} items/s "
          f"(infeed {rate:,.0f}/s)")
    print(f"reject decision latency over {len(rejects)} rejects: {percentiles(rejects)}")
    print(f"group commit (durable, on the database thread) over {len(commits)} commits: "
          f"{percentiles(commits)}")
    print(f"CPU during Execute: controller {cpu / elapsed:.0%} of a core (its decoding process "
          f"not counted), simulated line and PLC {sim_cpu / elapsed:.0%}")
    print("longest event-loop stall: " + ", ".join(
        f"{name} {seconds * 1000:.1f} ms" for name, seconds in stalls.longest.items()
        if name in ("Stopped", "Resetting", "Idle", "Starting", "Execute", "Completing")))
    gate = [x for x in out.decode().splitlines() if "rejected at the gate" in x]
    print("physical line: " + (gate[-1].strip() if gate else "no summary"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=3000)
    parser.add_argument("--noread", type=float, default=0.02, help="share of no-reads")
    parser.add_argument("--runs", type=int, default=1,
                        help="batches in a row, each compared with the physical line item by "
                        "item, case by case, pallet by pallet (figures printed for the first)")
    args = parser.parse_args()
    failed = 0
    for number in range(1, args.runs + 1):
        found = asyncio.run(run(args.items, args.rate, args.noread, quiet=number > 1))
        if found.problems or found.stranded:
            failed += 1
            print(f"run {number}: the physical line differs from the database "
                  f"({found.stranded} commissioned items off the line): "
                  + "; ".join(found.problems[:5]), flush=True)
    print(f"physical line against the database: {args.runs - failed} of {args.runs} runs "
          f"equal item by item, case by case, pallet by pallet")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
