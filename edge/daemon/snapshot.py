"""What a line shows the world at one instant, typed and frozen: the PLC server, the live view,
the status file and the metrics all read this one object. Light on imports: ``codeline
status`` reads it back from the status file written by the controller."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchInfo:
    """The line's running batch."""

    id: int
    lot: str
    product: str
    planned: int | None
    started_at: int | None  # epoch ms


@dataclass(frozen=True)
class Figures:
    """PackML-style admin counters of one scope."""

    printed: int = 0
    commissioned: int = 0
    rejected: int = 0
    cases: int = 0
    pallets: int = 0
    rejected_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Counters:
    """This batch's figures and those accumulated since the controller started."""

    batch: Figures
    total: Figures


@dataclass(frozen=True)
class Buffers:
    """Where the items and codes are between host, printer, camera and gate."""

    printer: int  # codes sent and not yet confirmed printed
    buffer_ahead: int  # how many the host keeps in the printer
    in_transit: int  # printed, not yet read
    item_seq: int  # the last item number
    judged_through: int  # every item up to this number has a durable verdict


@dataclass(frozen=True)
class DeviceHealth:
    """A device's link: up, or down since when (epoch ms) and why."""

    up: bool
    since: int | None = None
    cause: str = ""


@dataclass(frozen=True)
class AlarmRecord:
    """One alarm as it was raised or cleared (``at`` in epoch ms)."""

    source: str
    text: str
    at: int
    active: bool = True


@dataclass(frozen=True)
class LineSnapshot:
    """One line at one instant."""

    line: str
    state: int  # PackML state, ISA-TR88 numbering
    state_name: str
    batch: BatchInfo | None
    rate: float  # items commissioned per second, recent
    speed: float | None  # the rate the line is asked to run at
    counts: Counters
    buffers: Buffers
    devices: Mapping[str, DeviceHealth]
    alarms: tuple[AlarmRecord, ...]  # the latest, oldest first
    active_alarms: Mapping[str, str]  # standing alarm text by source
    stop_reason: str | None
    warnings: tuple[str, ...] = ()  # the sources among active_alarms that do not hold

    def as_dict(self) -> dict[str, Any]:
        """The status file's JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineSnapshot:
        """Read back :meth:`as_dict` (e.g. from the status file)."""
        batch = data.get("batch")
        counts = data["counts"]
        return cls(
            line=str(data["line"]), state=int(data["state"]),
            state_name=str(data["state_name"]),
            batch=None if batch is None else BatchInfo(**batch),
            rate=float(data["rate"]), speed=data.get("speed"),
            counts=Counters(Figures(**counts["batch"]), Figures(**counts["total"])),
            buffers=Buffers(**data["buffers"]),
            devices={name: DeviceHealth(**health)
                     for name, health in data.get("devices", {}).items()},
            alarms=tuple(AlarmRecord(**alarm) for alarm in data.get("alarms", [])),
            active_alarms=dict(data.get("active_alarms", {})),
            stop_reason=data.get("stop_reason"),
            warnings=tuple(data.get("warnings", ())))
