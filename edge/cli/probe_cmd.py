"""``codeline probe DEVICE``: connect to one configured device and print what it reports."""

from __future__ import annotations

import asyncio
import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from edge.cli.context import UsageProblem, console, ctx_of
from line_config.loading import load_config

if TYPE_CHECKING:
    from line_config.devices import DeviceBase


def probe_device(
    ctx: typer.Context,
    device_id: str = typer.Argument(..., metavar="DEVICE", help="a device id from the config"),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="site configuration (default: the global --config)"),
    line_id: str | None = typer.Option(None, "--line", help="the line, when several have "
                                       "a device of that id"),
    read: bool = typer.Option(True, "--read/--no-read",
                              help="readers and cameras: make one read of what is in front"),
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, max=300, help="seconds"),
    json: bool = typer.Option(False, "--json", help="the report as JSON"),
) -> None:
    """Test before trust: connect to one device, print its identity, state and faults."""
    from drivers.errors import DriverError  # the drivers (asyncua, numpy) load only here
    from drivers.registry import UnsupportedDevice, probe

    site = load_config(config) if config is not None else ctx_of(ctx).config
    found: list[tuple[str, DeviceBase]] = [
        (line.id, device) for line in site.lines for device in line.devices
        if device.id == device_id and (line_id is None or line.id == line_id)]
    if not found:
        known = sorted({d.id for line in site.lines for d in line.devices})
        raise UsageProblem("no device {device_id!r} in the config; devices: {known}",
                           device_id=device_id, known=', '.join(known))
    if len(found) > 1:
        raise UsageProblem("device {device_id!r} is on lines {found}: pass --line",
                           device_id=device_id, found=', '.join(x for x, _ in found))
    line, device = found[0]
    try:
        report = asyncio.run(probe(device, read=read, timeout_s=timeout))
    except UnsupportedDevice as exc:
        raise UsageProblem("{problem}", problem=str(exc)) from None
    except DriverError as exc:
        console.print(f"[red]device {device_id} on line {line}: {exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    report["line"] = line
    if json:
        typer.echo(jsonlib.dumps(report, indent=1, default=str))
        return
    console.print(_table(report))


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['device']} ({report['driver']}) on line {report['line']}",
                  show_header=False)
    table.add_column("what", style="bold")
    table.add_column("reported")
    table.add_row("connected", "yes" if report.get("connected") else "no")
    for key, value in (report.get("status") or {}).items():
        table.add_row(key, _text(value))
    if "read" in report:
        table.add_row("read", _text(report["read"]))
    return table


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={_text(v)}" for k, v in value.items() if v not in (None, (), []))
    return "-" if value in (None, "") else str(value)
