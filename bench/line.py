"""Line throughput and reject decision latency against the simulated line on loopback.

CLARiTY printer and DMCC reader simulators, the controller's runtime and the PLC simulator
(an OPC-UA client) in one process; case and pallet stations run too. Prints items/s
(commissioned per second of Execute) and reject latency p50/p99 (camera result received →
reject request published on the OPC-UA server, after its commit).

    python -m bench.line [--items 6000] [--rate 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from edge.cli.line_harness import loopback_config, running_line
from edge.domain import batches, pool
from edge.store.database import Store
from line_config.loading import example_path, load_config
from simulators.line import LineSimSettings


async def run(items: int, rate: float) -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="codeline-bench-"))
    config = loopback_config(load_config(example_path("simulated")), workdir)
    data = config.model_dump(mode="python")
    data["lines"][0]["stations"][0]["buffer_ahead"] = 400
    data["lines"][0]["devices"][0]["high_water"] = 400
    data["lines"][0]["devices"][0]["low_water"] = 200
    config = type(config).model_validate(data)
    line = config.lines[0]
    path = Path(config.store.path)
    with Store(path, create=True) as store:
        for level, count in (("item", items * 2), ("case", items), ("pallet", 100)):
            pool.generate(store, line, level, count, operator="bench")  # type: ignore[arg-type]
        batches.create(store, config, line.id, "tea-500", "BENCH", operator="bench",
                       planned_qty=items)
    settings = LineSimSettings(rate=rate, transit_ms=2000, noread_rate=0.02)
    async with running_line(config, path, workdir, settings) as run:
        plc = run.plc
        await plc.run_batch("BENCH")
        await plc.wait_state(6, within=30)
        started = time.perf_counter()
        flow = run.site.lines[0].flow
        assert flow is not None
        await flow.settled(lambda: flow.commissioned >= items)
        elapsed = time.perf_counter() - started
        latencies = sorted(x * 1000 for x in flow.latencies)
        await plc.wait_state(17, within=120)
        commits = flow.committer.commits
        sim = run.sim
    print(f"items commissioned: {items:,} in {elapsed:.2f} s = {items / elapsed:,.0f} items/s "
          f"(infeed {rate:,.0f}/s, {commits} group commits)")
    if latencies:
        p = statistics.quantiles(latencies, n=100)
        print(f"reject decision latency over {len(latencies)} rejects: p50 {p[49]:.2f} ms, "
              f"p99 {p[98]:.2f} ms, max {latencies[-1]:.2f} ms")
    print(f"gate: {plc.rejected_requested} rejected on request, {plc.rejected_no_verdict} "
          f"without verdict; {len(sim.cases)} cases, {len(sim.pallets)} pallets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=3000)
    args = parser.parse_args()
    asyncio.run(run(args.items, args.rate))


if __name__ == "__main__":
    main()
