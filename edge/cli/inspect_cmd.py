"""``codeline inspect CODE``: everything the site knows about one code."""

from __future__ import annotations

import typer

from edge.cli.context import JSON_HELP, console, ctx_of, emit, ms_text
from edge.cli.i18n import _
from edge.domain import inspection
from edge.domain.errors import UnknownCode


def inspect_(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="serial or scanned payload"),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Everything about one code: state, history, parent, children, batch, shipment."""
    c = ctx_of(ctx)
    with c.reader() as store:
        try:
            view = inspection.inspect(store.read(), code.strip())
        except UnknownCode:
            view = inspection.inspect(store.read(), c.serial_of(code))

    def human() -> None:
        console.print(f"[bold]{_(view.level)} {view.serial}[/bold]: {view.state}"
                      + (f" ({view.reason})" if view.reason else ""))
        if view.batch:
            console.print("  " + _("batch {id} {product} lot {lot} on {line}").format(
                **view.batch))
        if view.parent:
            console.print("  " + _("in {parent}").format(parent=view.parent))
        if view.container:
            k = view.container
            console.print("  " + _("holds {children}/{capacity} ({status})").format(
                children=k["children"], capacity=k["capacity"], status=_(k["status"])))
        for child in view.children:
            console.print(f"    {child}")
        if view.children_total > len(view.children):
            console.print("    " + _("... {n} more").format(
                n=view.children_total - len(view.children)))
        if view.shipment:
            s = view.shipment
            console.print("  " + _("shipment {id} to {distributor} ({region}), {status}").format(
                id=s["id"], distributor=s["distributor"], region=s["region"],
                status=_(s["status"])))
        for h in view.history:
            console.print(f"  {ms_text(h['at'])}  {h['what']}", markup=False, soft_wrap=True)

    emit(view, json, human)
