"""``codeline config``: check a configuration file, export its JSON Schema."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.commands import summary
from edge.cli.context import console, err_console
from line_config.loading import ConfigError, json_schema, load_config

app = typer.Typer(help=summary("config"), no_args_is_help=True)


@app.command("check")
def check(file: Path = typer.Argument(..., help="YAML site configuration")) -> None:
    """Validate FILE; print every problem with its field path and line (exit code 2)."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        err_console.print(f"[red]{exc.source}: {len(exc.problems)} problem(s)[/red]")
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False)
        raise typer.Exit(2) from None
    devices = sum(len(line.devices) for line in config.lines)
    console.print(
        f"[green]OK[/green] {file}: site {config.site.id}, {len(config.lines)} line(s), "
        f"{devices} device(s), {len(config.products)} product(s)"
    )


@app.command("schema")
def schema(
    out: Path | None = typer.Option(None, "--out", "-o", help="write here instead of stdout"),
) -> None:
    """Print the JSON Schema of the configuration file, for editors."""
    text = json_schema()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
