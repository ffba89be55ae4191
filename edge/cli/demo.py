"""``codeline demo``: a batch of two pallets through the code store, end to end.

The demo drives the domain directly, the way the line runtime does: reserve blocks for the
printer, confirm prints, judge each item (with a small, seeded rate of rejects), pack full
cases and pallets, reconcile; then a simulated cloud answers scans before shipment (not
activated), one pallet ships, the cloud pulls its signed manifest over the edge's API, and
the same scans answer activated. No device is involved.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import typer

from edge.cli import demo_cloud
from edge.cli.context import console
from edge.domain import aggregation, audit, batches, flow, pool, shipments
from edge.domain.lifecycle import Reason
from edge.domain.payloads import BatchLabel, PayloadCodec
from edge.store.database import Store
from line_config.loading import example_path, load_config

REJECT_REASONS = (Reason.NO_READ, Reason.MISREAD, Reason.DUPLICATE, Reason.GRADE)


def demo(
    db: Path | None = typer.Option(None, "--db-file", help="where to keep the demo database "
                                   "(default: a new temporary folder)"),
    pallets: int = typer.Option(2, "--pallets", min=1, max=100, help="pallets to produce"),
    reject_rate: float = typer.Option(0.02, "--reject-rate", min=0.0, max=0.5),
    seed: int = typer.Option(7, "--seed", help="seed of the injected rejects"),
) -> None:
    """Run a batch through the code store: print, verify, pack, palletize, ship, reconcile."""
    config = load_config(example_path("simulated"))
    line = config.lines[0]
    product = config.products[0]
    per_case = line.packaging.items_per_case
    per_pallet = line.packaging.cases_per_pallet
    path = db or Path(tempfile.mkdtemp(prefix="codeline-demo-")) / "codeline.db"
    rng = random.Random(seed)
    operator = "demo"
    cases_needed = pallets * per_pallet
    items_needed = cases_needed * per_case
    with Store(path, create=True) as store:
        console.print(f"[bold]codeline demo[/bold]: line {line.id}, {product.name}, "
                      f"{pallets} pallets of {per_pallet} cases of {per_case} items")
        for level, count in (("item", items_needed * 2), ("case", cases_needed * 2),
                             ("pallet", pallets * 2)):
            pool.generate(store, line, level, count, operator=operator)  # type: ignore[arg-type]
        batch = batches.create(store, config, line.id, product.id, "DEMO01", operator=operator,
                               planned_qty=items_needed)
        batches.start(store, batch.id, operator=operator)
        good: list[str] = []
        rejected = 0
        while len(good) < items_needed:
            block = flow.reserve(store, batch.id, "print", "item", line.pool.reserve_block)
            ids = [c.id for c in block.codes]
            flow.mark_printed(store, batch.id, "item", ids)
            verdicts = []
            for c in block.codes:
                if len(good) < items_needed and rng.random() >= reject_rate:
                    verdicts.append(flow.Verdict(c.id))
                    good.append(c.serial)
                else:
                    verdicts.append(flow.Verdict(c.id, rng.choice(REJECT_REASONS)))
                    rejected += 1
            flow.record_verdicts(store, batch.id, "item", verdicts)
            console.print(f"  printed {len(ids)} items: {len(good)} good so far, "
                          f"{rejected} rejected")
        case_serials = _labels(store, batch.id, "case", cases_needed)
        for k, case in enumerate(case_serials):
            aggregation.pack(store, case, good[k * per_case:(k + 1) * per_case],
                             operator=operator, close=True)
        console.print(f"  packed {cases_needed} cases")
        pallet_serials = _labels(store, batch.id, "pallet", pallets)
        for k, pallet in enumerate(pallet_serials):
            aggregation.pack(store, pallet, case_serials[k * per_pallet:(k + 1) * per_pallet],
                             operator=operator, close=True)
        console.print(f"  built {pallets} pallets: SSCC {', '.join(pallet_serials)}")
        batches.stop(store, batch.id, operator=operator)
        closed = batches.close(store, batch.id, operator=operator)
        console.print("[bold]the cloud[/bold] (simulated) before shipment:")
        cloud = demo_cloud.prepare(path.parent, store)
        codec = PayloadCodec(line, config.products)
        label = BatchLabel(batch.lot, batch.expiry)
        scanned = [codec.render("item", s, product, label) for s in good[:3]]
        demo_cloud.scan_all(cloud, scanned, "east", "inside the factory")
        shipment = shipments.create(store, "DIST-EAST-01", "east", operator=operator)
        shipments.add(store, shipment.id, pallet_serials[0], operator=operator,
                      allow_mixed_batches=False)
        confirmed = shipments.confirm(store, shipment.id, operator=operator)
        console.print(f"  shipped pallet {pallet_serials[0]}: {confirmed.code_count:,} codes "
                      "activated, one activation manifest queued")
        chain = audit.verify(store.read())
    demo_cloud.sync(path.parent, path, config, cloud)
    demo_cloud.scan_all(cloud, scanned[:2], "east", "after shipment")
    demo_cloud.scan_all(cloud, scanned[2:], "west", "after shipment")
    demo_cloud.reports(cloud)
    items = closed.levels["item"]
    console.print(f"[bold]batch {batch.id}[/bold]: {items.printed} items printed, "
                  f"{items.commissioned} commissioned, {items.rejected} rejected "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(items.rejected_by_reason.items()))})"
                  f", {items.packed} packed")
    status = "[green]reconciled[/green]" if closed.reconciled else "[red]NOT reconciled[/red]"
    console.print(f"reconciliation: {status}; audit chain verifies ({chain.entries} entries)")
    console.print(f"database: {path}")
    console.print(f"  try: codeline --db {path} inspect {pallet_serials[0]}")


def _labels(store: Store, batch_id: int, level: str, count: int) -> list[str]:
    """Reserve, print and verify ``count`` container labels; their serials in order."""
    block = flow.reserve(store, batch_id, level, level, count)  # type: ignore[arg-type]
    ids = [c.id for c in block.codes]
    flow.mark_printed(store, batch_id, level, ids)  # type: ignore[arg-type]
    flow.record_verdicts(store, batch_id, level, [flow.Verdict(i) for i in ids])  # type: ignore[arg-type]
    return [c.serial for c in block.codes]
