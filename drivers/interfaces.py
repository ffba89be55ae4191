"""The small interfaces the runtime depends on; every driver of a family implements one.

Printers report what happened as events, in the order it happened: a code printed, a code
printed again on the next item (double print), codes whose fate became unknown (buffer lost
on a reconnect or clear), faults raised and cleared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from line_config.grades import GRADES as GRADES
from line_config.grades import Grade as Grade
from line_config.grades import grade_value as grade_value


@dataclass(frozen=True)
class Printed:
    """The printer confirmed that ``code`` was printed on the next item."""

    code: str


@dataclass(frozen=True)
class DoublePrint:
    """A print-go with no new data: the next item carries ``code`` a second time."""

    code: str


@dataclass(frozen=True)
class BufferLost:
    """Codes sent to the printer whose fate is unknown (void them: they may be printed)."""

    codes: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class FaultRaised:
    """The device stopped for a fault."""

    code: str
    text: str


@dataclass(frozen=True)
class FaultCleared:
    """The device's faults are gone."""


PrinterEvent = Printed | DoublePrint | BufferLost | FaultRaised | FaultCleared


@dataclass(frozen=True)
class PrinterStatus:
    """What a printer reports about itself."""

    online: bool
    state: str
    job: str | None
    pending: int
    printed_total: int
    faults: tuple[str, ...] = ()
    identity: str = ""


class LinkState(Protocol):
    """A device link's health, as the line shows it to people and to the PLC."""

    @property
    def up(self) -> bool: ...

    @property
    def since(self) -> float:
        """When it last went up or down (epoch seconds)."""
        ...

    @property
    def cause(self) -> str:
        """Why it is down (empty while up)."""
        ...


class Device(Protocol):
    """What every driver offers: a link opened and closed, and its health."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def availability(self) -> LinkState: ...


class Printer(Device, Protocol):
    """A coding printer: keeps a buffer of codes, reports each print in order."""

    @property
    def configured_job(self) -> str | None:
        """The job (message) the config names for this printer, selected at every start;
        None: the device has no jobs."""
        ...

    async def select_job(self, name: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def clear_faults(self) -> None:
        """Reset the faults the device lets the host clear, and read them again (a fault
        fixed at the device is then seen as cleared)."""
        ...

    async def clear(self) -> None:
        """Empty the device's buffer; the codes in it come back as :class:`BufferLost`."""
        ...

    async def send(self, codes: Sequence[str]) -> None:
        """Queue codes to print, in order (they are printed one per item)."""
        ...

    @property
    def pending(self) -> int:
        """Codes sent and not yet confirmed printed (what the host keeps N ahead)."""
        ...

    def events(self) -> AsyncIterator[PrinterEvent]: ...

    async def status(self) -> PrinterStatus: ...


@dataclass(frozen=True)
class ReadResult:
    """One read: the decoded data (None = no-read) and the grade if the reader sent one."""

    data: str | None
    grade: Grade | None = None
    parameters: tuple[tuple[str, int], ...] = ()


class CodeReader(Device, Protocol):
    """A fixed code reader: triggered per item, one result per trigger."""

    async def read(self) -> ReadResult:
        """Trigger and wait for the result."""
        ...


Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DecodedSymbol:
    """A symbol found in an image: raw data (GS separators kept), where, how well printed."""

    data: str
    symbology: str
    corners: tuple[tuple[int, int], ...]
    grade: Grade | None = None
    contrast: float | None = None
    margin: float | None = None


class Camera(Device, Protocol):
    """A source of frames (grayscale images)."""

    async def grab(self) -> Image: ...


class Decoder(Protocol):
    """Finds and decodes every symbol in a frame (blocking: run it in a thread)."""

    def decode(self, image: Image) -> list[DecodedSymbol]: ...


@dataclass(frozen=True)
class LabelStatus:
    """A label printer's state from ``~HS`` and ``~HQES``."""

    ready: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    labels_printed: int


class LabelPrinter(Device, Protocol):
    """A label printer: prints one label and confirms it was printed."""

    async def print_label(self, zpl: str) -> None:
        """Send a label format; return once the printer counted it printed."""
        ...

    async def status(self) -> LabelStatus: ...
