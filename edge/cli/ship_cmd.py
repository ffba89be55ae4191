"""``codeline ship``: shipments at the dock; confirming one activates its codes."""

from __future__ import annotations

import sqlite3
import sys
from typing import TYPE_CHECKING

import typer

from edge.cli.commands import summary
from edge.cli.context import JSON_HELP, Ctx, console, ctx_of, emit, ms_text
from edge.cli.i18n import _, error_text, ngettext
from edge.domain import activation, shipment_contents, shipments
from edge.domain.errors import CodelineError, ShipmentError
from edge.domain.shipment_contents import Loaded
from edge.store.database import Store
from line_config.levels import Level

if TYPE_CHECKING:
    from sync import manifest

app = typer.Typer(help=summary("ship"),
                  no_args_is_help=True)


def manifest_sealer(c: Ctx) -> activation.Sealer | None:
    """Seals the manifest a confirm or cancel issues, with the site's key, in the same
    transaction. Without a config (``--db`` alone) the key is unknown: the manifest is then
    sealed when it is first pulled or pushed."""
    from sync import keys, manifest

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


def _counted(codes: dict[Level, int]) -> str:
    """"40 cases, 960 items": the codes under a container, itself left out."""
    parts = [ngettext("{n:,} {level}", "{n:,} {level}s", n).format(n=n, level=_(level))
             for level, n in reversed(codes.items()) if n]
    return ", ".join(parts) or _("nothing")


def _added_line(loaded: Loaded) -> str:
    under = dict(loaded.codes)
    under[loaded.level] -= 1
    return _("added {level} {serial} (lot {lot}): {contents}; {total:,} codes").format(
        level=_(loaded.level), serial=loaded.serial, lot=loaded.lot or "-", total=loaded.total,
        contents=_counted(under) if any(under.values()) else _("empty"))


@app.command("add")
def add(
    ctx: typer.Context,
    shipment_id: int = typer.Argument(..., min=1),
    codes: list[str] | None = typer.Argument(
        None, help="pallet/case payloads, taken all or none; none: scan one per line on stdin"),
) -> None:
    """Add pallets or cases by their scanned payloads. Given as arguments they are taken all
    or none; read from stdin (a scanner) each scan is taken or refused on its own, with a
    line of feedback as it happens and a summary at the end."""
    c = ctx_of(ctx)
    allow_mixed = c.config.sync.allow_mixed_batches if c.has_config else False
    if codes:
        with c.store() as store:
            try:
                rows = shipments.add_all(store, shipment_id, [c.serial_of(x) for x in codes],
                                         operator=c.operator, allow_mixed_batches=allow_mixed)
            except CodelineError as exc:
                raise ShipmentError("nothing was added: {exc}", exc=exc) from None
            for row in rows:
                console.print(_added_line(shipment_contents.loaded(store.read(), row)),
                              markup=False, soft_wrap=True)
            _summary(store, shipment_id, len(rows), 0)
        return
    _scanning_station(c, shipment_id, allow_mixed)


def _scanning_station(c: Ctx, shipment_id: int, allow_mixed: bool) -> None:
    """One scan per line from stdin, each answered at once; a refused scan loses nothing."""
    added = refused = 0
    with c.store() as store:
        shipments.get(store.read(), shipment_id)  # an unknown shipment: one error, at once
        for raw in sys.stdin:
            scan = raw.strip().lstrip("\ufeff")
            if not scan:
                continue
            try:
                row = shipments.add(store, shipment_id, c.serial_of(scan), operator=c.operator,
                                    allow_mixed_batches=allow_mixed)
            except CodelineError as exc:
                refused += 1
                console.print(_("refused {scan}: {why}").format(scan=_shown(scan),
                                                                 why=error_text(exc)),
                              markup=False, soft_wrap=True)
            else:
                added += 1
                console.print(_added_line(shipment_contents.loaded(store.read(), row)),
                              markup=False, soft_wrap=True)
            sys.stdout.flush()
        if not added and not refused:
            raise typer.BadParameter(_("no codes given: pass payloads or scan one per line"))
        _summary(store, shipment_id, added, refused)
    if refused:
        raise typer.Exit(1)


def _shown(scan: str) -> str:
    return scan if len(scan) <= 60 and scan.isprintable() else repr(scan[:60])


def _summary(store: Store, shipment_id: int, added: int, refused: int) -> None:
    held = shipment_contents.contents(store.read(), shipment_id)
    console.print(_("{added} added, {refused} refused; shipment {shipment} holds "
                    "{containers} container(s): {contents}").format(
                      added=added, refused=refused, shipment=shipment_id,
                      containers=len(held.loaded), contents=_counted(held.per_level)),
                  markup=False, soft_wrap=True)


@app.command("show")
def show(ctx: typer.Context, shipment_id: int = typer.Argument(..., min=1),
         json: bool = typer.Option(False, "--json", help="as JSON")) -> None:
    """What is on a shipment: each pallet and case, and its codes counted per level."""
    from rich.table import Table

    from sync import vocabulary

    c = ctx_of(ctx)
    with c.reader() as store:
        held = shipment_contents.contents(store.read(), shipment_id)

    def human() -> None:
        s = held.shipment
        console.print(f"shipment {s.id} to {s.distributor} in {s.region}: {s.status}"
                      + (f", {s.reference_type} {s.reference}" if s.reference else ""),
                      markup=False, soft_wrap=True)
        table = Table("container", "level", "lot", "pallets", "cases", "items", "codes")
        for row in held.loaded:
            table.add_row(row.serial, row.level, row.lot or "-",
                          *(f"{row.codes[level]:,}" for level in ("pallet", "case", "item")),
                          f"{row.total:,}")
        console.print(table)
        totals = held.per_level
        console.print(f"in all: {_counted(totals)} ({sum(totals.values()):,} codes)",
                      markup=False)

    emit({"shipment": vocabulary.shipment(held.shipment),
          "containers": [{"serial": r.serial, "level": r.level, "batch": r.batch_id,
                          "lot": r.lot, "codes": r.codes, "total": r.total}
                         for r in held.loaded],
          "codes": held.per_level}, json, human)


@app.command("remove")
def remove(ctx: typer.Context, shipment_id: int = typer.Argument(..., min=1),
           code: str = typer.Argument(..., help="the pallet or case payload")) -> None:
    """Take a pallet or case off an open shipment."""
    c = ctx_of(ctx)
    with c.store() as store:
        row = shipments.remove(store, shipment_id, c.serial_of(code), operator=c.operator)
        console.print(f"removed {row.level_name} {row.serial} from shipment {shipment_id}",
                      markup=False)
        _summary(store, shipment_id, 0, 0)


@app.command("confirm")
def confirm(ctx: typer.Context, shipment_id: int = typer.Argument(..., min=1)) -> None:
    """Confirm: every code under the shipment becomes ACTIVE; a manifest is issued."""
    c = ctx_of(ctx)
    seal = manifest_sealer(c)
    with c.store() as store:
        shipment = shipments.confirm(store, shipment_id, operator=c.operator, seal=seal)
        issued = _latest_manifest(store.read(), shipment_id)
    console.print(f"shipment {shipment_id} confirmed: {shipment.code_count or 0:,} codes "
                  f"activated; {_queued(issued)}", markup=False, soft_wrap=True)


def _latest_manifest(conn: sqlite3.Connection, shipment_id: int) -> manifest.ManifestInfo | None:
    from sync import manifest

    return manifest.latest_of_shipment(conn, shipment_id)


def _queued(issued: manifest.ManifestInfo | None) -> str:
    if issued is None:
        return "no manifest issued"
    return (f"{issued.kind} manifest {issued.seq} ({issued.manifest_id}, {issued.code_count:,} "
            "codes) queued for the cloud")


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
        before = shipments.get(store.read(), shipment_id)
        shipments.cancel(store, shipment_id, operator=c.operator, reason=reason, seal=seal)
        issued = _latest_manifest(store.read(), shipment_id)
    if before.status == "open":
        console.print(f"shipment {shipment_id} cancelled: it was open, no code had been "
                      "activated and no manifest is issued", markup=False, soft_wrap=True)
    else:
        console.print(f"shipment {shipment_id} cancelled: {issued.code_count if issued else 0:,}"
                      f" codes back to COMMISSIONED (not activated); {_queued(issued)}",
                      markup=False, soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """All shipments."""
    from rich.table import Table

    from sync import vocabulary

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
