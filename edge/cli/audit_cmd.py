"""``codeline audit verify|list``: the audit log's hash chain and its latest entries."""

from __future__ import annotations

import json as _json
from pathlib import Path

import typer
from rich.table import Table

from edge.cli.commands import summary
from edge.cli.context import JSON_HELP, UsageProblem, console, ctx_of, emit, ms_text
from edge.domain import audit

app = typer.Typer(help=summary("audit"), no_args_is_help=True)


@app.command("verify")
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
        raise UsageProblem("--against {path}: not a manifest (NDJSON, header first): {exc}",
                           path=path, exc=exc) from None


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


@app.command("list")
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
