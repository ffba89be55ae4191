"""``codeline demo``: a simulated line and the controller on loopback, one batch of two
pallets end to end.

The simulated line (printer, verification reader, case camera, label printer and readers,
conveyor and PLC) and the controller (``codeline run``'s runtime with its OPC-UA server) start
in this process on free loopback ports. The PLC starts a batch of two pallets with a small
rate of injected faults; the live view runs until the line reports Complete; the batch is
closed and reconciled, the physical line is compared with the database, then a simulated
cloud answers scans before shipment (not activated), one pallet ships, the cloud pulls its
signed manifest over the edge's API, and the same scans answer activated.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live

from edge.cli.context import console

if TYPE_CHECKING:
    from line_config.models import Level, SiteConfig
    from simulators.line import LineSimSettings, SimLine
    from simulators.plc import PlcSim


def demo(
    db: Path | None = typer.Option(None, "--db", help="where to keep the demo database "
                                   "(default: a new temporary folder)"),
    pallets: int = typer.Option(2, "--pallets", min=1, max=20, help="pallets to produce"),
    rate: float = typer.Option(150.0, "--rate", min=1, max=5000, help="items per second"),
    fault_rate: float = typer.Option(0.01, "--fault-rate", min=0.0, max=0.2,
                                     help="share of no-reads (half as many misreads)"),
    seed: int = typer.Option(7, "--seed", help="seed of the injected faults"),
    live: bool | None = typer.Option(None, "--live/--plain", help="live view (default: on a "
                                     "terminal) or plain progress lines"),
) -> None:
    """Run a simulated line and the controller: two pallets printed, verified, packed,
    palletized, reconciled; then one pallet ships and the cloud sees it activated."""
    # The line, its simulators and the cloud load here, not with every command.
    from edge.cli import demo_cloud, physical
    from edge.cli.line_harness import loopback_config, stock_line
    from edge.domain import audit, batches, shipments
    from edge.domain.payloads import BatchLabel, PayloadCodec
    from edge.store.database import Store
    from line_config.loading import example_path, load_config
    from simulators.line import LineSimSettings
    from sync import keys, manifest

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    workdir = db.parent if db else Path(tempfile.mkdtemp(prefix="codeline-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # The demo plays the cloud itself: it serves the pull API beside its own controller.
    config = loopback_config(load_config(example_path("simulated")), workdir, sync_in_run=())
    path = db or Path(config.store.path)
    line = config.lines[0]
    product = config.products[0]
    per_case = line.packaging.items_per_case
    per_pallet = line.packaging.cases_per_pallet
    planned = pallets * per_pallet * per_case
    operator = "demo"
    console.print(f"[bold]codeline demo[/bold]: line {line.id}, {product.name}, "
                  f"{pallets} pallets of {per_pallet} cases of {per_case} items, "
                  f"{rate:.0f} items/s")
    # Pools as a plant keeps them: above their low-water marks to the end, so no pool alarm.
    wanted: dict[Level, int] = {"item": planned * 2, "case": pallets * per_pallet * 2,
                                "pallet": pallets * 2}
    batch = stock_line(config, path, {level: n + line.low_water(level) + 1
                                      for level, n in wanted.items()},
                       "DEMO01", planned, operator)
    settings = LineSimSettings(seed=seed, rate=rate, transit_ms=800, noread_rate=fault_rate,
                               misread_rate=fault_rate / 2, repeat_rate=fault_rate / 5)
    show_live = sys.stdout.isatty() if live is None else live
    sim, plc = asyncio.run(_run_line(config, path, workdir, settings, batch.lot, show_live))
    with Store(path) as store:
        closed = batches.close(store, batch.id, operator=operator)
        conn = store.read()
        pallet_serials = [r[0] for r in conn.execute(
            "SELECT serial FROM codes WHERE batch_id = ? AND level = 2 AND state = 3 "
            "ORDER BY id", (batch.id,))]
        good = [r[0] for r in conn.execute(
            "SELECT serial FROM codes WHERE batch_id = ? AND level = 0 AND state = 3 "
            "AND parent_id IS NOT NULL ORDER BY id LIMIT 3", (batch.id,))]
        items = closed.levels["item"]
        console.print(f"[bold]batch {batch.id}[/bold]: {items.printed} items printed, "
                      f"{items.commissioned} commissioned, {items.rejected} rejected ("
                      + ", ".join(f"{k} {v}" for k, v in sorted(items.rejected_by_reason.items()))
                      + f"), {items.packed} packed, {items.void} void")
        console.print(f"  the line: {len(sim.rejected)} items rejected at the gate "
                      f"({plc.rejected_requested} on request, {plc.rejected_no_verdict} without "
                      f"verdict), {len(sim.cases)} cases and {len(sim.pallets)} pallets left")
        found = physical.compare(path, line, config.products, sim.record())
        if found.problems:
            console.print("[red]the physical line differs from the database:[/red] "
                          + "; ".join(found.problems[:5]))
            raise typer.Exit(1)
        console.print("  the physical line equals the database: every item, case and pallet"
                      + (f" ({found.stranded} good items rejected at the gate without a "
                         "verdict, decommissioned)" if found.stranded else ""))
        status = "[green]reconciled[/green]" if closed.reconciled else "[red]NOT reconciled[/red]"
        console.print(f"reconciliation: {status}" + ("" if closed.reconciled else
                                                      ": " + "; ".join(closed.problems)))
        if not pallet_serials:
            console.print("[red]no pallet was built[/red]")
            raise typer.Exit(1)
        console.print("[bold]the cloud[/bold] (simulated) before shipment:")
        cloud = demo_cloud.prepare(path.parent, store)
        codec = PayloadCodec(line, config.products)
        label = BatchLabel(batch.lot, closed.batch.expiry)
        scanned = [codec.render("item", s, product, label) for s in good]
        demo_cloud.scan_all(cloud, scanned, "east", "inside the factory")
        shipment = shipments.create(store, "DIST-EAST-01", "east", operator=operator)
        shipments.add(store, shipment.id, pallet_serials[0], operator=operator,
                      allow_mixed_batches=False)
        site_key = keys.load_private(path.parent / "keys" / "manifest-signing.key")
        confirmed = shipments.confirm(store, shipment.id, operator=operator,
                                      seal=manifest.sealer(config.site.id, site_key))
        console.print(f"  shipped pallet {pallet_serials[0]}: {confirmed.code_count:,} codes "
                      "activated, one activation manifest queued")
        chain = audit.verify(store.read())
    demo_cloud.sync(path.parent, path, config, cloud)
    demo_cloud.scan_all(cloud, scanned[:2], "east", "after shipment")
    demo_cloud.scan_all(cloud, scanned[2:], "west", "after shipment")
    demo_cloud.reports(cloud)
    console.print(f"audit chain verifies ({chain.entries} entries)")
    console.print(f"database: {path}")
    console.print(f"  try: codeline --db {path} inspect {pallet_serials[0]}")
    if not closed.reconciled:
        raise typer.Exit(1)


async def _run_line(config: SiteConfig, path: Path, workdir: Path,
                    settings: LineSimSettings, lot: str,
                    show_live: bool) -> tuple[SimLine, PlcSim]:
    from edge.cli.line_harness import running_line
    from edge.cli.status_view import plain_line, site_view
    from edge.daemon.packml import State

    complete = State.COMPLETE.value
    async with running_line(config, path, workdir, settings) as run:
        site, plc = run.site, run.plc
        await plc.run_batch(lot)
        if show_live:
            with Live(site_view(site.snapshot()), console=console,
                      refresh_per_second=4) as view:
                while plc.state != complete:
                    await asyncio.sleep(0.25)
                    view.update(site_view(site.snapshot()))
                    run.check_alive()
        else:
            last = 0.0
            loop = asyncio.get_running_loop()
            while plc.state != complete:
                await asyncio.sleep(0.1)
                run.check_alive()
                if loop.time() - last >= 1.0:
                    last = loop.time()
                    console.print("  " + plain_line(site.lines[0].snapshot()))
        console.print("  " + plain_line(site.lines[0].snapshot()))
        return run.sim, plc
