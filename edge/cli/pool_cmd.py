"""``codeline pool``: generate, import and count codes available to print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from edge.cli.commands import summary
from edge.cli.context import JSON_HELP, LINE_HELP, LevelChoice, console, ctx_of, emit, ms_text
from edge.domain import pool, pool_import
from edge.domain import segments as pool_segments

app = typer.Typer(help=summary("pool"),
                  no_args_is_help=True)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

LevelOpt = typer.Option(..., "--level", help="item, case or pallet")


def _progress() -> Progress:
    """A progress bar on a terminal (nothing into a pipe); loaded only by the bulk commands."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal,
    )


@app.command("generate")
def generate(
    ctx: typer.Context,
    count: int = typer.Option(..., "--count", "-n", min=1, max=100_000_000, help="codes to add"),
    level: LevelChoice = LevelOpt,
    line: str | None = typer.Option(None, "--line", help="line id (default: the only line)"),
) -> None:
    """Add COUNT new random codes (or SSCCs for an SSCC level) to a line's pool."""
    c = ctx_of(ctx)
    target = c.line(line)
    with c.store() as store, _progress() as bar:
        task = bar.add_task(f"generating {level.value} codes", total=count)
        segment = pool.generate(store, target, level.value, count, operator=c.operator,
                                progress=lambda n: bar.advance(task, n))
    console.print(f"added {count:,} {level.value} codes to line {target.id} (segment {segment})")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="one serial or payload per line, or a CSV"),
    level: LevelChoice = LevelOpt,
    line: str | None = typer.Option(None, "--line", help=LINE_HELP),
    max_rejects: int = typer.Option(
        0, "--max-rejects", min=0, help="refused lines tolerated before the file is refused"
    ),
    segment_id: str | None = typer.Option(
        None, "--segment-id", help="the segment's id at the brand's cloud (码段号); "
        "manifests name the segment by it"),
) -> None:
    """Import a code-segment file; it is taken whole or, past --max-rejects, not at all."""
    c = ctx_of(ctx)
    target = c.line(line)
    # The import adds codes in serial order, walking the index once: a larger page cache
    # would only hold memory (64 MB keeps the command flat at ~135 MB for any file size).
    with c.store(cache_mb=64) as store, _progress() as bar:
        report = pool_import.import_file(store, target, c.config.products, level.value, file,
                                  operator=c.operator, max_rejects=max_rejects,
                                  progress=_ImportBar(bar, file.name), external_id=segment_id)
    console.print(f"imported {report.imported:,} {level.value} codes from {file.name} "
                  f"(segment {report.segment_id})")
    for reject in report.rejects[:20]:
        console.print(f"  refused line {reject.line_no}: {reject.text}: {reject.reason}",
                      markup=False)
    if len(report.rejects) > 20:
        console.print(f"  ... and {len(report.rejects) - 20} more refused lines")


class _ImportBar:
    """An import's two phases on a progress bar: the file read (MB), then codes added."""

    def __init__(self, bar: Progress, name: str) -> None:
        self.bar = bar
        self.read = bar.add_task(f"reading {name} (MB)", total=None)
        self.added: TaskID | None = None

    def reading(self, done: int, total: int) -> None:
        self.bar.update(self.read, completed=done // 1_000_000, total=total // 1_000_000)

    def adding(self, done: int, total: int) -> None:
        if self.added is None:
            self.added = self.bar.add_task("adding codes", total=total)
        self.bar.update(self.added, completed=done)


@app.command("stats")
def stats(ctx: typer.Context, json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Codes per line, level and state; flags a pool under its low-water mark."""
    c = ctx_of(ctx)
    with c.reader() as store:
        rows = pool.stats(store, c.config.lines)

    def human() -> None:
        table = Table("line", "level", "available", "reserved", "printed", "used", "low water")
        for r in rows:
            used = sum(v for k, v in r.by_state.items() if k not in ("AVAILABLE", "RESERVED",
                                                                      "PRINTED"))
            low = f"[red]LOW ({r.low_water:,})[/red]" if r.low else f"{r.low_water:,}"
            table.add_row(r.line_id, r.level, f"{r.available:,}",
                          f"{r.by_state.get('RESERVED', 0):,}",
                          f"{r.by_state.get('PRINTED', 0):,}", f"{used:,}", low)
        console.print(table)

    emit([{"line": r.line_id, "level": r.level, "by_state": r.by_state,
           "available": r.available, "low_water": r.low_water, "low": r.low} for r in rows],
         json, human)


@app.command("segments")
def segments_(ctx: typer.Context, json: bool = typer.Option(False, "--json", help=JSON_HELP)
             ) -> None:
    """Every segment of the pools: where it came from, its codes, how many are left."""
    c = ctx_of(ctx)
    with c.reader() as store:
        rows = pool_segments.segments(store.read())

    def human() -> None:
        table = Table("segment", "line", "level", "source", "file", "cloud id", "added",
                      "codes", "available", "withdrawn")
        for r in rows:
            table.add_row(str(r.id), r.line_id, r.level, r.source, r.origin or "-",
                          r.external_id or "-", ms_text(r.created_at), f"{r.codes:,}",
                          f"{r.available:,}",
                          f"{ms_text(r.retired_at)}: {r.retire_reason}" if r.retired_at else "")
        console.print(table)

    emit(rows, json, human)


@app.command("retire")
def retire(
    ctx: typer.Context,
    segment: int = typer.Argument(..., min=1, help="segment number (`codeline pool segments`)"),
    reason: str = typer.Option(..., "--reason", help="why it is withdrawn (audited)"),
) -> None:
    """Withdraw a segment added by mistake; refused once any of its codes was reserved."""
    c = ctx_of(ctx)
    with c.store() as store:
        done = pool_segments.retire(store, segment, operator=c.operator, reason=reason)
    console.print(f"segment {done.segment_id} withdrawn: {done.codes:,} {done.level} codes of "
                  f"line {done.line_id} left the pool", markup=False)
