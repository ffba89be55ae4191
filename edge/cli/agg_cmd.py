"""``codeline agg``: packing and rework of cases and pallets (each change audited)."""

from __future__ import annotations

import typer

from edge.cli.commands import summary
from edge.cli.context import console, ctx_of
from edge.domain import aggregation

app = typer.Typer(help=summary("agg"),
                  no_args_is_help=True)

ReasonOpt = typer.Option(None, "--reason", help="why (recorded in the audit log)")


@app.command("pack")
def pack(
    ctx: typer.Context,
    container: str = typer.Argument(..., help="case or pallet code (serial or payload)"),
    children: list[str] = typer.Argument(..., help="codes one level below"),
    close: bool = typer.Option(False, "--close", help="close the container once it is full"),
) -> None:
    """Pack CHILDREN into CONTAINER."""
    c = ctx_of(ctx)
    with c.store() as store:
        box = aggregation.pack(store, c.serial_of(container), [c.serial_of(x) for x in children],
                               operator=c.operator, close=close)
    console.print(f"{box.code.serial}: {box.child_count}/{box.capacity}, {box.status}")


@app.command("unpack")
def unpack(ctx: typer.Context, child: str = typer.Argument(...),
           reason: str | None = ReasonOpt) -> None:
    """Take CHILD out of its container (rework)."""
    c = ctx_of(ctx)
    with c.store() as store:
        parent = aggregation.unpack(store, c.serial_of(child), operator=c.operator, reason=reason)
    console.print(f"unpacked from {parent}; {parent} is open again")


@app.command("replace")
def replace(ctx: typer.Context, old: str = typer.Argument(...), new: str = typer.Argument(...),
            reason: str | None = ReasonOpt) -> None:
    """Put NEW in OLD's place in its container (rework)."""
    c = ctx_of(ctx)
    with c.store() as store:
        parent = aggregation.replace(store, c.serial_of(old), c.serial_of(new),
                                     operator=c.operator, reason=reason)
    console.print(f"replaced in {parent}")


@app.command("close")
def close(
    ctx: typer.Context,
    container: str = typer.Argument(...),
    reason: str | None = typer.Option(None, "--reason", help="required when partial"),
) -> None:
    """Close CONTAINER: full, or partial with a reason."""
    c = ctx_of(ctx)
    with c.store() as store:
        box = aggregation.close(store, c.serial_of(container), operator=c.operator, reason=reason)
    console.print(f"{box.code.serial} closed with {box.child_count}/{box.capacity}")


@app.command("reopen")
def reopen(ctx: typer.Context, container: str = typer.Argument(...),
           reason: str | None = ReasonOpt) -> None:
    """Reopen a closed CONTAINER for rework."""
    c = ctx_of(ctx)
    with c.store() as store:
        aggregation.reopen(store, c.serial_of(container), operator=c.operator, reason=reason)
    console.print("reopened")


@app.command("decommission")
def decommission(ctx: typer.Context, code: str = typer.Argument(...),
                 reason: str | None = ReasonOpt) -> None:
    """Take an unpacked COMMISSIONED code out of circulation (samples, damage)."""
    c = ctx_of(ctx)
    with c.store() as store:
        aggregation.decommission(store, c.serial_of(code), operator=c.operator, reason=reason)
    console.print("decommissioned")
