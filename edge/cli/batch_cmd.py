"""``codeline batch``: create, start, stop, close, list and show batches; the batch report."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from edge.cli.commands import summary
from edge.cli.context import JSON_HELP, LINE_HELP, console, ctx_of, emit, ms_text
from edge.cli.i18n import N_, _
from edge.domain import batches
from sync import vocabulary

app = typer.Typer(help=summary("batch"), no_args_is_help=True)
report_app = typer.Typer(help=summary("report"), no_args_is_help=True)


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"expected a date as YYYY-MM-DD, got {text!r}") from None


@app.command("create")
def create(
    ctx: typer.Context,
    product: str = typer.Option(..., "--product", help="product id from the config"),
    lot: str = typer.Option(..., "--lot", help="lot number printed in GS1 codes (AI 10)"),
    line: str | None = typer.Option(None, "--line", help=LINE_HELP),
    expiry: str | None = typer.Option(None, "--expiry", help="YYYY-MM-DD (default: shelf life)"),
    planned: int | None = typer.Option(None, "--planned", min=1, help="planned item quantity"),
) -> None:
    """Create a batch of PRODUCT on a line."""
    c = ctx_of(ctx)
    target = c.line(line)
    with c.store() as store:
        batch = batches.create(store, c.config, target.id, product, lot, operator=c.operator,
                               expiry=_date(expiry), planned_qty=planned)
    console.print(f"created batch {batch.id}: {batch.product_id} lot {batch.lot} on "
                  f"{batch.line_id}")


@app.command("start")
def start(ctx: typer.Context, batch_id: int = typer.Argument(..., min=1)) -> None:
    """Make a batch its line's running batch (one per line); the line prints it once the
    line is started (`codeline line start`)."""
    from edge.cli.line_cmd import what_the_line_needs

    c = ctx_of(ctx)
    with c.store() as store:
        batch = batches.start(store, batch_id, operator=c.operator)
    console.print(_("batch {batch} ({lot}) is now the running batch of line {line}").format(
        batch=batch_id, lot=batch.lot, line=batch.line_id), soft_wrap=True)
    console.print(what_the_line_needs(ctx, batch.line_id), markup=False, soft_wrap=True)


@app.command("stop")
def stop(ctx: typer.Context, batch_id: int = typer.Argument(..., min=1)) -> None:
    """Stop a running batch."""
    c = ctx_of(ctx)
    with c.store() as store:
        batches.stop(store, batch_id, operator=c.operator)
    console.print(_("batch {batch} stopped").format(batch=batch_id))


@app.command("close")
def close(
    ctx: typer.Context,
    batch_id: int = typer.Argument(..., min=1),
    force: bool = typer.Option(False, "--force", help="close although counts do not reconcile"),
    reason: str | None = typer.Option(None, "--reason", help="why (required with --force)"),
) -> None:
    """Close a stopped batch; refused unless its counts reconcile."""
    c = ctx_of(ctx)
    with c.store() as store:
        rep = batches.close(store, batch_id, operator=c.operator, force=force, reason=reason)
    console.print(f"batch {batch_id} closed" + (" (forced)" if force else "") +
                  (", counts reconciled" if rep.reconciled else ""))
    for finding in rep.containment:
        console.print(f"[yellow]not packed:[/yellow] {finding}")


@app.command("list")
def list_(ctx: typer.Context, json: bool = typer.Option(False, "--json", help=JSON_HELP),
          line: str | None = typer.Option(None, "--line", help=LINE_HELP)) -> None:
    """All batches, newest last."""
    c = ctx_of(ctx)
    with c.reader() as store:
        rows = batches.list_batches(store.read(), line)

    def human() -> None:
        table = Table("id", "line", "product", "lot", "expiry", "state", "created")
        for b in rows:
            table.add_row(str(b.id), b.line_id, b.product_id, b.lot,
                          b.expiry.isoformat() if b.expiry else "-", b.state,
                          ms_text(b.created_at))
        console.print(table)

    emit([vocabulary.batch(b) for b in rows], json, human)


REPORT_COLUMNS = (N_("level"), N_("reserved"), N_("in buffer"), N_("void"), N_("printed"),
                  N_("in transit"), N_("commissioned"), N_("rejected"), N_("packed"),
                  N_("active"), N_("decommissioned"))


def show_report(ctx: typer.Context, batch_id: int, json: bool) -> None:
    """Print a batch's figures and its reconciliation."""
    from edge.cli.status_view import duration
    from edge.domain.production import production

    c = ctx_of(ctx)
    with c.reader() as store:
        rep = batches.report(store.read(), batch_id)
        ran = production(store.read(), batch_id)
    good = rep.levels["item"].commissioned if "item" in rep.levels else 0
    rate = ran.average_rate(good)

    def human() -> None:
        b = rep.batch
        console.print("[bold]" + _("batch {batch}").format(batch=b.id) + "[/bold] "
                      + _("{product} lot {lot} on {line}: {state}").format(
                          product=b.product_id, lot=b.lot, line=b.line_id, state=_(b.state))
                      + (_(" (forced: {reason})").format(reason=b.close_reason)
                         if b.forced else ""))
        who = ", ".join(_("{action} by {operator}").format(
            action=_(action.removeprefix("batch.")), operator=name)
            for action, name in ran.operators.items())
        console.print("  " + _("started {at}").format(at=ms_text(ran.first_start)) + ", "
                      + (_("running now") if ran.running_now
                         else _("stopped {at}").format(at=ms_text(ran.last_stop)))
                      + "; " + _("ran {time}").format(time=duration(ran.running_ms / 1000))
                      + (_(" at {rate:.1f} good items/s on average").format(rate=rate)
                         if rate else "")
                      + (f"; {who}" if who else ""), markup=False, soft_wrap=True)
        if b.planned_qty:
            console.print("  " + _("{good:,} good items of {planned:,} planned ({share:.1f} %)"
                                   ).format(good=good, planned=b.planned_qty,
                                            share=100 * good / b.planned_qty), markup=False)
        table = Table(*(_(h) for h in REPORT_COLUMNS))
        for level, n in rep.levels.items():
            table.add_row(_(level), *(f"{v:,}" for v in (
                n.reserved, n.in_buffer, n.void, n.printed, n.in_transit, n.commissioned,
                n.rejected, n.packed, n.active, n.decommissioned)))
        console.print(table)
        for level, n in rep.levels.items():
            if n.rejected_by_reason:
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(n.rejected_by_reason.items()))
                console.print("  " + _("{level} rejects: {reasons}").format(
                    level=_(level), reasons=reasons))
        if rep.reconciled:
            console.print("[green]" + _("reconciled") + "[/green]: " + _(
                "reserved = printed + void + in buffer; printed = commissioned + rejected + "
                "in transit"))
        else:
            console.print("[red]" + _("NOT reconciled") + "[/red]")
            for problem in rep.problems:
                console.print(f"  {problem}")
        for finding in rep.containment:
            console.print("[yellow]" + _("not packed:") + f"[/yellow] {finding}")

    emit({"batch": vocabulary.batch(rep.batch), "levels": rep.levels,
          "production": {"started_at": ran.first_start, "stopped_at": ran.last_stop,
                         "running_s": round(ran.running_ms / 1000, 3),
                         "running_now": ran.running_now,
                         "average_rate": None if rate is None else round(rate, 3),
                         "operators": ran.operators},
          "reconciled": rep.reconciled, "problems": rep.problems,
          "containment": rep.containment}, json, human)


@app.command("show")
def show(ctx: typer.Context, batch_id: int = typer.Argument(..., min=1),
         json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """One batch with its figures and reconciliation."""
    show_report(ctx, batch_id, json)


@report_app.command("batch")
def report_batch(
    ctx: typer.Context,
    batch_id: int = typer.Argument(..., min=1),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Reconciliation report of a batch."""
    show_report(ctx, batch_id, json)
