"""``codeline ship``: shipments at the dock; confirming one activates its codes."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from edge.cli.context import Ctx, console, ctx_of, emit, ms_text
from edge.domain import shipments
from sync import keys, manifest, vocabulary

app = typer.Typer(help="Shipments: create, add, confirm (activates), cancel, list.",
                  no_args_is_help=True)


def manifest_sealer(c: Ctx) -> shipments.Sealer | None:
    """Seals the manifest a confirm or cancel issues, with the site's key, in the same
    transaction. Without a config (``--db`` alone) the key is unknown: the manifest is then
    sealed when it is first pulled or pushed."""
    if not c.has_config:
        return None
    key = keys.load_private(c.resolve(c.config.sync.signing_key_file))
    return manifest.sealer(c.config.site.id, key)


@app.command("create")
def create(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="distributor id"),
    region: str = typer.Option(..., "--region", help="destination sales region"),
    ref: str | None = typer.Option(
        None, "--ref", help="despatch advice (or order) number: the shipping event's business "
        "transaction"),
    ref_type: str = typer.Option(
        "desadv", "--ref-type",
        help="what --ref numbers: " + ", ".join(shipments.REFERENCE_TYPES)),
    distributor_gln: str | None = typer.Option(
        None, "--distributor-gln", help="the distributor's GLN (13 digits), its name in EPCIS"),
) -> None:
    """Open a shipment to a distributor."""
    c = ctx_of(ctx)
    with c.store() as store:
        shipment = shipments.create(store, to, region, operator=c.operator, reference=ref,
                                    reference_type=ref_type, distributor_gln=distributor_gln)
    console.print(f"shipment {shipment.id} open: to {to} in {region}"
                  + (f", {ref_type} {ref}" if ref else ""))


@app.command("add")
def add(
    ctx: typer.Context,
    shipment_id: int = typer.Argument(..., min=1),
    codes: list[str] | None = typer.Argument(None, help="pallet/case payloads; none: read stdin"),
) -> None:
    """Add pallets or cases by their scanned payloads (arguments, or one per line on stdin)."""
    c = ctx_of(ctx)
    scans = codes if codes else [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not scans:
        raise typer.BadParameter("no codes given: pass payloads or pipe one per line")
    allow_mixed = c.config.sync.allow_mixed_batches if c.has_config else False
    with c.store() as store:
        for scan in scans:
            row = shipments.add(store, shipment_id, c.serial_of(scan), operator=c.operator,
                                allow_mixed_batches=allow_mixed)
            console.print(f"added {row.level_name} {row.serial}")


@app.command("confirm")
def confirm(ctx: typer.Context, shipment_id: int = typer.Argument(..., min=1)) -> None:
    """Confirm: every code under the shipment becomes ACTIVE; a manifest is issued."""
    c = ctx_of(ctx)
    seal = manifest_sealer(c)
    with c.store() as store:
        shipment = shipments.confirm(store, shipment_id, operator=c.operator, seal=seal)
    console.print(f"shipment {shipment_id} confirmed: {shipment.code_count:,} codes activated")


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    shipment_id: int = typer.Argument(..., min=1),
    reason: str | None = typer.Option(None, "--reason", help="why (required)"),
) -> None:
    """Cancel: discard an open shipment, or deactivate a confirmed one."""
    c = ctx_of(ctx)
    seal = manifest_sealer(c)
    with c.store() as store:
        shipments.cancel(store, shipment_id, operator=c.operator, reason=reason, seal=seal)
    console.print(f"shipment {shipment_id} cancelled")


@app.command("list")
def list_(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """All shipments."""
    c = ctx_of(ctx)
    with c.reader() as store:
        rows = shipments.list_shipments(store.read())

    def human() -> None:
        table = Table("id", "to", "region", "status", "containers", "codes", "created")
        for s in rows:
            table.add_row(str(s.id), s.distributor, s.region, s.status, str(s.containers),
                          f"{s.code_count:,}" if s.code_count else "-", ms_text(s.created_at))
        console.print(table)

    emit([vocabulary.shipment(s) for s in rows], json, human)
