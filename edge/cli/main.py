"""The ``codeline`` command: operator commands over the store, config tools, the demo."""

from __future__ import annotations

import json as _json
import sqlite3
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

# typer carries its own click (0.29+): its usage errors, made one line here
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from edge.cli import (
    agg_cmd,
    backup_cmd,
    batch_cmd,
    config_cmd,
    demo,
    line_cmd,
    pool_cmd,
    probe_cmd,
    run_cmd,
    service_cmd,
    ship_cmd,
    sim_cmd,
    sync_cmd,
)
from edge.cli.context import (
    JSON_HELP,
    Ctx,
    UsageProblem,
    console,
    ctx_of,
    default_operator,
    emit,
    err_console,
    ms_text,
)
from edge.domain import audit, inspection
from edge.domain.errors import CodelineError, UnknownCode
from edge.store.database import StoreError
from line_config.loading import ConfigError
from sync.errors import SyncError

app = typer.Typer(
    name="codeline",
    help="Controller of serialized coding lines: codes, batches, packing, shipments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(pool_cmd.app, name="pool")
app.add_typer(batch_cmd.app, name="batch")
app.add_typer(line_cmd.app, name="line")
app.add_typer(agg_cmd.app, name="agg")
app.add_typer(ship_cmd.app, name="ship")
app.add_typer(sim_cmd.app, name="sim")
app.add_typer(sync_cmd.keys_app, name="keys")
app.add_typer(sync_cmd.manifests_app, name="manifests")
app.add_typer(sync_cmd.export_app, name="export")
app.add_typer(sync_cmd.tokens_app, name="tokens")
app.add_typer(sync_cmd.api_app, name="api")
app.add_typer(sync_cmd.sync_app, name="sync")
report_app = typer.Typer(help="Reports.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(audit_app, name="audit")
app.command("demo")(demo.demo)
app.command("run")(run_cmd.run)
app.command("backup")(backup_cmd.backup)
app.command("status")(run_cmd.status)
app.command("probe")(probe_cmd.probe_device)
app.add_typer(run_cmd.certs_app, name="certs")
app.add_typer(service_cmd.app, name="service")


@app.callback()
def main(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", envvar="CODELINE_DB",
                                   help="database file (default: the config's store.path)"),
    config: Path | None = typer.Option(None, "--config", "-c", envvar="CODELINE_CONFIG",
                                       help="site configuration (YAML)"),
    operator: str | None = typer.Option(None, "--operator", envvar="CODELINE_OPERATOR",
                                        help="who is acting (default: the OS user)"),
    version: bool = typer.Option(False, "--version", is_eager=True,
                                 callback=lambda shown: _print_version(shown),
                                 help="print the version and exit"),
) -> None:
    """Global options shared by every command."""
    ctx.obj = Ctx(db_option=db, config_option=config, operator=operator or default_operator())


def _print_version(shown: bool) -> None:
    if shown:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            typer.echo(f"codeline {installed('codeline')}")
        except PackageNotFoundError:
            typer.echo("codeline (not installed as a package)")
        raise typer.Exit(0)


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the database (or bring its schema up to date)."""
    c = ctx_of(ctx)
    with c.store(create=True) as store:
        version = store.schema_version()
    console.print(f"database {c.db_path} ready (schema version {version})")


@app.command("inspect")
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


@report_app.command("batch")
def report_batch(
    ctx: typer.Context,
    batch_id: int = typer.Argument(..., min=1),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Reconciliation report of a batch."""
    batch_cmd.show_report(ctx, batch_id, json)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    against: list[Path] = typer.Option([], "--against", help="a manifest as the cloud holds "
                                       "it (NDJSON, header first): the chain must still hold "
                                       "the audit head it carries (repeatable)"),
    json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check the audit log's hash chain from its first entry, against the checkpoints that
    manifests carry, and every code row for a state no operation leaves it in."""
    c = ctx_of(ctx)
    anchors = [_anchor_of(path) for path in against]
    with c.reader() as store:
        conn = store.read()
        rep = audit.verify(conn)
        for anchor in anchors:
            if anchor is not None:
                audit.check_anchor(conn, anchor)
        problems = audit.code_problems(conn)
    checked = sum(1 for a in anchors if a is not None)
    emit({"ok": not problems, "entries": rep.entries, "last_hash": rep.last_hash,
          "anchors_checked": checked, "code_problems": problems}, json,
         lambda: _print_audit(rep, checked, problems))
    if problems:
        raise typer.Exit(1)


def _anchor_of(path: Path) -> audit.Anchor | None:
    """The audit head a manifest file carries (None: issued before manifests carried it)."""
    try:
        with path.open("rb") as f:
            first = _json.loads(f.readline())
        anchor = first.get("audit")
        return None if anchor is None else audit.Anchor(int(anchor["seq"]), str(anchor["hash"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageProblem(f"--against {path}: not a manifest (NDJSON, header first): "
                           f"{exc}") from None


def _print_audit(rep: audit.AuditReport, checked: int, problems: list[str]) -> None:
    console.print(f"[green]audit chain verifies[/green]: {rep.entries} entries, last "
                  f"{rep.last_hash[:16]}" + (f"; it holds the {checked} checkpoint(s) of the "
                                             "manifests given" if checked else ""),
                  soft_wrap=True)
    if problems:
        console.print(f"[red]{len(problems)} code row(s) in a state no operation leaves "
                      "them in[/red] (changed by hand?):", soft_wrap=True)
        for problem in problems:
            console.print(f"  {problem}", markup=False, soft_wrap=True)
    else:
        console.print("every code row is in a state the operations leave it in")


@audit_app.command("list")
def audit_list(ctx: typer.Context,
               last: int = typer.Option(20, "--last", min=1, help="how many entries"),
               json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The latest audit entries."""
    c = ctx_of(ctx)
    with c.reader() as store:
        rows = store.read().execute(
            "SELECT id, at, operator, action, target, reason, detail FROM audit "
            "ORDER BY id DESC LIMIT ?", (last,)).fetchall()
    rows.reverse()

    def human() -> None:
        table = Table("id", "when", "operator", "action", "target", "reason")
        for r in rows:
            table.add_row(str(r[0]), ms_text(r[1]), r[2], r[3], r[4], r[5] or "")
        console.print(table)

    emit([{"id": r[0], "at": r[1], "operator": r[2], "action": r[3], "target": r[4],
           "reason": r[5], "detail": _json.loads(r[6]) if r[6] else None} for r in rows],
         json, human)


def run() -> None:
    """Console entry point: user mistakes become one readable line and a non-zero exit."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a command group alone: its help, as --help shows it
        typer.echo(exc.format_message())
        sys.exit(0)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "codeline"
        _fail(f"{exc.format_message()} (see: {where} --help)", 2)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted", soft_wrap=True)
        sys.exit(130)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except (CodelineError, StoreError, SyncError) as exc:
        _fail(str(exc), 1)
    except sqlite3.OperationalError as exc:
        _fail(f"database: {exc}", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    err_console.print("[red]error:[/red] " + escape(message), soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    run()
