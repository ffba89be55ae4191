"""``codeline inspect CODE``: everything the site knows about one code."""

from __future__ import annotations

import typer

from edge.cli.context import JSON_HELP, console, ctx_of, emit, ms_text
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
        console.print(f"[bold]{view.level} {view.serial}[/bold]: {view.state}"
                      + (f" ({view.reason})" if view.reason else ""))
        if view.batch:
            b = view.batch
            console.print(f"  batch {b['id']} {b['product']} lot {b['lot']} on {b['line']}")
        if view.parent:
            console.print(f"  in {view.parent}")
        if view.container:
            k = view.container
            console.print(f"  holds {k['children']}/{k['capacity']} ({k['status']})")
        for child in view.children:
            console.print(f"    {child}")
        if view.children_total > len(view.children):
            console.print(f"    ... {view.children_total - len(view.children)} more")
        if view.shipment:
            s = view.shipment
            console.print(f"  shipment {s['id']} to {s['distributor']} ({s['region']}), "
                          f"{s['status']}")
        for h in view.history:
            console.print(f"  {ms_text(h['at'])}  {h['what']}", markup=False, soft_wrap=True)

    emit(view, json, human)
