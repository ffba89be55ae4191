"""How a line's status looks on a terminal: a panel per line for people (words, never colour
alone: NO_COLOR and colour-blind operators read the same), or one plain line."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from edge.cli.i18n import _
from edge.daemon.snapshot import DeviceHealth, Figures, LineSnapshot


def _counts(c: Figures) -> str:
    return _("printed {printed:,}  commissioned {commissioned:,}  rejected {rejected:,}  "
             "cases {cases:,}  pallets {pallets:,}").format(
        printed=c.printed, commissioned=c.commissioned, rejected=c.rejected, cases=c.cases,
        pallets=c.pallets)


def duration(seconds: float) -> str:
    """``1:02:03`` (hours may exceed a day: ``27:00:00``)."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def clock(ms: int | float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def zone() -> str:
    """The local UTC offset the view's times are in, e.g. ``UTC+08:00``."""
    offset = time.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else _("local time")


def progress(line: LineSnapshot, now: float) -> str | None:
    """Done against planned, elapsed and the time left at the rate achieved."""
    batch = line.batch
    if batch is None:
        return None
    done = line.counts.batch.commissioned
    parts = []
    planned = batch.planned
    if planned:
        parts.append(_("{done:,} / {planned:,} good items ({share:.1f} %)").format(
            done=done, planned=planned, share=100 * done / planned))
    else:
        parts.append(_("{done:,} good items (no plan)").format(done=done))
    if batch.started_at:
        parts.append(_("elapsed {time}").format(time=duration(now - batch.started_at / 1000)))
    if planned and done < planned:
        rate = line.rate
        parts.append(_("ETA {time}").format(time=duration((planned - done) / rate)) if rate > 0
                     else _("ETA unknown (not printing)"))
    return "  ".join(parts)


def rate_text(line: LineSnapshot) -> str:
    text = _("{rate:.1f} items/s").format(rate=line.rate)
    speed = line.speed
    if speed:
        text += _(" of {speed:.1f} asked ({share:.0f} %)").format(
            speed=speed, share=100 * line.rate / speed)
    return text


def device_text(name: str, health: DeviceHealth) -> str:
    if health.up:
        return _("{device}: up").format(device=name)
    since = _(" since {time}").format(time=clock(health.since)) if health.since else ""
    cause = f" ({health.cause})" if health.cause else ""
    return "[bold]" + _("{device}: DOWN").format(device=name) + f"{since}{cause}[/bold]"


def line_panel(line: LineSnapshot, now: float | None = None) -> Panel:
    """The live view of one line."""
    now = time.time() if now is None else now
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    batch = line.batch
    table.add_row(_("state"), f"{line.state_name} ({line.state})"
                  + (f" — {line.stop_reason}" if line.stop_reason else ""))
    table.add_row(_("batch"), _("none") if batch is None else
                  _("{id} lot {lot} ({product})").format(id=batch.id, lot=batch.lot,
                                                         product=batch.product))
    shown = progress(line, now)
    if shown:
        table.add_row(_("progress"), shown)
    table.add_row(_("rate"), rate_text(line))
    table.add_row(_("this batch"), _counts(line.counts.batch))
    table.add_row(_("accumulated"), _counts(line.counts.total))
    reasons = line.counts.batch.rejected_by_reason
    if reasons:
        table.add_row(_("rejects"), ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    b = line.buffers
    table.add_row(_("buffers"), _("printer {printer}/{buffer_ahead}  in transit {in_transit}  "
                                  "item #{item_seq} judged to #{judged_through}").format(
        printer=b.printer, buffer_ahead=b.buffer_ahead, in_transit=b.in_transit,
        item_seq=b.item_seq, judged_through=b.judged_through))
    for n, (name, health) in enumerate(line.devices.items()):
        table.add_row("" if n else _("devices"), device_text(name, health))
    for source, text in line.active_alarms.items():
        table.add_row(_("ALARM"), f"{source}: {text}")
    for n, alarm in enumerate(line.alarms[-5:]):
        table.add_row("" if n else _("recent"), f"{clock(alarm.at)} {alarm.source}: "
                                             f"{alarm.text}")
    return Panel(table, title=_("line {line}").format(line=line.line),
                 subtitle=_("times in {zone}").format(zone=zone()),
                 expand=False)


def site_view(snapshot: Mapping[str, Any]) -> RenderableType:
    """Every line of a site's status (the status file's JSON)."""
    return Group(*(line_panel(LineSnapshot.from_dict(line)) for line in snapshot["lines"]))


def plain_line(line: LineSnapshot) -> str:
    """One progress line, for logs and terminals without a live view."""
    c = line.counts.batch
    return (f"{line.line} {line.state_name}: {line.rate:.0f}/s printed "
            f"{c.printed} commissioned {c.commissioned} rejected {c.rejected} "
            f"cases {c.cases} pallets {c.pallets}"
            + (f" — {line.stop_reason}" if line.stop_reason else ""))
