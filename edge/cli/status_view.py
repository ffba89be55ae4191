"""How a line's status looks on a terminal: a rich panel per line, or one plain line."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table


def _counts(c: dict[str, Any]) -> str:
    return (f"printed {c['printed']:,}  commissioned {c['commissioned']:,}  "
            f"rejected {c['rejected']:,}  cases {c['cases']:,}  pallets {c['pallets']:,}")


def line_panel(line: dict[str, Any]) -> Panel:
    """The live view of one line."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    batch = line["batch"]
    table.add_row("state", f"{line['state_name']} ({line['state']})"
                  + (f" — {line['stop_reason']}" if line["stop_reason"] else ""))
    table.add_row("batch", "none" if batch is None else
                  f"{batch['id']} lot {batch['lot']} ({batch['product']}), planned "
                  f"{batch['planned'] or '-'}")
    table.add_row("rate", f"{line['rate']:.1f} items/s")
    table.add_row("this batch", _counts(line["counts"]["batch"]))
    table.add_row("accumulated", _counts(line["counts"]["total"]))
    reasons = line["counts"]["batch"]["rejected_by_reason"]
    if reasons:
        table.add_row("rejects", ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    b = line["buffers"]
    table.add_row("buffers", f"printer {b['printer']}/{b['buffer_ahead']}  in transit "
                  f"{b['in_transit']}  item #{b['item_seq']} judged to #{b['judged_through']}")
    table.add_row("devices", "  ".join(f"[{'green' if up else 'red'}]{name}[/]"
                                       for name, up in line["devices"].items()))
    for alarm in line["alarms"][-5:]:
        when = time.strftime("%H:%M:%S", time.localtime(alarm["at"] / 1000))
        table.add_row("alarm" if alarm["active"] else "", f"{when} {alarm['source']}: "
                      f"{alarm['text']}")
    return Panel(table, title=f"line {line['line']}", expand=False)


def site_view(snapshot: dict[str, Any]) -> RenderableType:
    return Group(*(line_panel(line) for line in snapshot["lines"]))


def plain_line(line: dict[str, Any]) -> str:
    """One progress line, for logs and terminals without a live view."""
    c = line["counts"]["batch"]
    return (f"{line['line']} {line['state_name']}: {line['rate']:.0f}/s printed "
            f"{c['printed']} commissioned {c['commissioned']} rejected {c['rejected']} "
            f"cases {c['cases']} pallets {c['pallets']}"
            + (f" — {line['stop_reason']}" if line["stop_reason"] else ""))
