"""``codeline init`` (create or upgrade the database) and ``codeline backup DEST`` (a verified
copy of it, taken while the line runs)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from edge.cli.context import console, ctx_of, emit
from edge.domain import audit
from edge.store.backup import copy
from edge.store.database import Store


def init(ctx: typer.Context) -> None:
    """Create the database, or bring its schema up to date (after an upgrade)."""
    c = ctx_of(ctx)
    with c.store(create=True) as store:
        version = store.schema_version()
    console.print(f"database {c.db_path} ready (schema version {version})")


def backup(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., help="new file for the copy, or a folder to put "
                                          "codeline-<time>.db in"),
    json: bool = typer.Option(False, "--json", help="what was written, as JSON"),
) -> None:
    """Copy the database while the line runs (SQLite's online backup), then verify the copy
    (integrity check and the audit chain) before calling it a backup."""
    c = ctx_of(ctx)
    if dest.is_dir():
        dest = dest / f"codeline-{dt.datetime.now():%Y%m%d-%H%M%S}.db"
    with c.reader():  # a clear error for a missing or foreign database before any copy
        pass
    made = copy(c.db_path, dest.absolute())
    try:
        with Store(made.path, read_only=True) as store:
            chain = audit.verify(store.read())
    except Exception:
        made.path.unlink(missing_ok=True)
        raise
    result = {"path": str(made.path), "bytes": made.bytes, "pages": made.pages,
              "seconds": round(made.seconds, 3), "schema_version": made.schema_version,
              "integrity_check": "ok", "audit_entries": chain.entries,
              "audit_last_hash": chain.last_hash}
    emit(result, json, lambda: console.print(
        f"backup written to {made.path}: {made.bytes / 1e6:.1f} MB in {made.seconds:.1f} s; "
        f"integrity check ok; audit chain verifies ({chain.entries} entries, last "
        f"{chain.last_hash[:16]})", markup=False, soft_wrap=True))
