"""From a device's config to its driver: the one place that knows which class speaks what.

The runtime and ``codeline probe`` build devices here and see only the family interfaces
(:class:`Printer`, :class:`CodeReader`, :class:`MultiReader`, :class:`LabelPrinter`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from drivers.interfaces import Camera, CodeReader, Decoder, LabelPrinter, Printer, ReadResult
from drivers.labels.zpl import ZplPrinter
from drivers.printers.clarity import ClarityPrinter
from drivers.printers.wsi import WsiPrinter
from drivers.readers.dmcc import DmccReader
from drivers.readers.keyence import KeyenceReader
from drivers.vision.cameras import camera_for
from drivers.vision.decoders import decoder_for
from line_config import devices as cfg


class UnsupportedDevice(Exception):
    """The config names a driver this build cannot drive in that role."""


class MultiReader(Protocol):
    """A reader that may see several codes at once (a camera above an open case)."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def read_all(self) -> list[ReadResult]:
        """Every code in view now (empty: nothing readable)."""
        ...


class CameraReader:
    """A camera and its decoder used as a code reader: one frame, every symbol in it."""

    def __init__(self, camera: Camera, decoder: Decoder) -> None:
        self.camera = camera
        self.decoder = decoder

    async def connect(self) -> None:
        await self.camera.connect()

    async def close(self) -> None:
        await self.camera.close()

    async def read_all(self) -> list[ReadResult]:
        frame = await self.camera.grab()
        symbols = await asyncio.to_thread(self.decoder.decode, frame)
        return [ReadResult(s.data, s.grade) for s in symbols]

    async def read(self) -> ReadResult:
        found = await self.read_all()
        return found[0] if len(found) == 1 else ReadResult(None)


class SingleReader:
    """A one-code reader seen as a multi reader (what it reads is all that is in view)."""

    def __init__(self, reader: CodeReader) -> None:
        self.reader = reader

    async def connect(self) -> None:
        await self.reader.connect()

    async def close(self) -> None:
        await self.reader.close()

    async def read_all(self) -> list[ReadResult]:
        result = await self.reader.read()
        return [result] if result.data is not None else []

    async def read(self) -> ReadResult:
        return await self.reader.read()


def printer_for(device: cfg.DeviceBase) -> Printer:
    """The printer driver of ``device``."""
    if isinstance(device, cfg.WsiPrinter):
        return WsiPrinter(device)
    if isinstance(device, cfg.ClarityPrinter):
        return ClarityPrinter(device)
    raise UnsupportedDevice(f"device {device.id!r}: no printer driver for "
                            f"{getattr(device, 'driver', '?')!r}")


def reader_for(device: cfg.DeviceBase) -> CodeReader:
    """A one-result-per-trigger reader for ``device`` (a reader, or a camera + decoder)."""
    if isinstance(device, cfg.DmccReader):
        return DmccReader(device)
    if isinstance(device, cfg.KeyenceReader):
        return KeyenceReader(device)
    if isinstance(device, cfg.Camera):
        return CameraReader(camera_for(device), decoder_for(device))
    raise UnsupportedDevice(f"device {device.id!r}: no reader driver for "
                            f"{getattr(device, 'driver', '?')!r}")


def multi_reader_for(device: cfg.DeviceBase) -> MultiReader:
    """A reader of everything in view for ``device``."""
    if isinstance(device, cfg.Camera):
        return CameraReader(camera_for(device), decoder_for(device))
    return SingleReader(reader_for(device))


def label_printer_for(device: cfg.DeviceBase) -> LabelPrinter:
    """The label printer driver of ``device``."""
    if isinstance(device, cfg.ZplLabelPrinter):
        return ZplPrinter(device)
    raise UnsupportedDevice(f"device {device.id!r}: no label printer driver for "
                            f"{getattr(device, 'driver', '?')!r}")
