"""From a device's config to its driver: the one place that knows which class speaks what.

The runtime and ``codeline probe`` build devices here and see only the family interfaces
(:class:`Printer`, :class:`CodeReader`, :class:`MultiReader`, :class:`LabelPrinter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from dataclasses import asdict, is_dataclass
from typing import Any, Protocol

from drivers.errors import DriverError
from drivers.interfaces import (
    Camera,
    CodeReader,
    Device,
    LabelPrinter,
    LinkState,
    Printer,
    ReadResult,
)
from drivers.labels.zpl import ZplPrinter
from drivers.opcua.autoid import AutoIdReader
from drivers.opcua.printer import OpcUaPrinter
from drivers.printers.clarity import ClarityPrinter
from drivers.printers.modbus_laser import ModbusLaser
from drivers.printers.wsi import WsiPrinter
from drivers.readers.dmcc import DmccReader
from drivers.readers.keyence import KeyenceReader
from drivers.vision.cameras import camera_for
from drivers.vision.decode_process import DecodePool, ProcessDecoder
from line_config import devices as cfg


class UnsupportedDevice(Exception):
    """The config names a driver this build cannot drive in that role."""


class MultiReader(Device, Protocol):
    """A reader that may see several codes at once (a camera above an open case)."""

    async def read_all(self) -> list[ReadResult]:
        """Every code in view now (empty: nothing readable)."""
        ...


class CameraReader:
    """A camera and its decoder used as a code reader: one frame, every symbol in it.

    Frames are decoded in the shared decoding process (:mod:`drivers.vision.decode_process`),
    not under the GIL the controller's event loop needs."""

    def __init__(self, camera: Camera, decoder: ProcessDecoder) -> None:
        self.camera = camera
        self.decoder = decoder

    @property
    def availability(self) -> LinkState:
        return self.camera.availability

    async def connect(self) -> None:
        await self.camera.connect()
        await self.decoder.warm_up()

    async def close(self) -> None:
        await self.camera.close()

    async def read_all(self) -> list[ReadResult]:
        frame = await self.camera.grab()
        symbols = await self.decoder.decode(frame)
        return [ReadResult(s.data, s.grade) for s in symbols]

    async def read(self) -> ReadResult:
        found = await self.read_all()
        return found[0] if len(found) == 1 else ReadResult(None)


class SingleReader:
    """A one-code reader seen as a multi reader (what it reads is all that is in view)."""

    def __init__(self, reader: CodeReader) -> None:
        self.reader = reader

    @property
    def availability(self) -> LinkState:
        return self.reader.availability

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
    if isinstance(device, cfg.ModbusLaser):
        return ModbusLaser(device)
    if isinstance(device, cfg.OpcUaPrinter):
        return OpcUaPrinter(device)
    raise UnsupportedDevice(f"device {device.id!r}: no printer driver for "
                            f"{getattr(device, 'driver', '?')!r}")


def reader_for(device: cfg.DeviceBase, decoding: DecodePool) -> CodeReader:
    """A one-result-per-trigger reader for ``device`` (a reader, or a camera whose frames
    ``decoding`` decodes)."""
    if isinstance(device, cfg.DmccReader):
        return DmccReader(device)
    if isinstance(device, cfg.KeyenceReader):
        return KeyenceReader(device)
    if isinstance(device, cfg.AutoIdReader):
        return AutoIdReader(device)
    if isinstance(device, cfg.Camera):
        return CameraReader(camera_for(device), decoding.decoder(device))
    raise UnsupportedDevice(f"device {device.id!r}: no reader driver for "
                            f"{getattr(device, 'driver', '?')!r}")


def multi_reader_for(device: cfg.DeviceBase, decoding: DecodePool) -> MultiReader:
    """A reader of everything in view for ``device``."""
    if isinstance(device, cfg.Camera):
        return CameraReader(camera_for(device), decoding.decoder(device))
    return SingleReader(reader_for(device, decoding))


def label_printer_for(device: cfg.DeviceBase) -> LabelPrinter:
    """The label printer driver of ``device``."""
    if isinstance(device, cfg.ZplLabelPrinter):
        return ZplPrinter(device)
    raise UnsupportedDevice(f"device {device.id!r}: no label printer driver for "
                            f"{getattr(device, 'driver', '?')!r}")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


async def probe(device: cfg.DeviceBase, read: bool = True,
                timeout_s: float = 10.0) -> dict[str, Any]:
    """Connect to ``device``, collect what it reports about itself, disconnect.

    Printers and label printers report their status (identity, state, job, faults);
    readers and cameras, unless ``read`` is False, make one read of what is in front of them.
    Raises :class:`DriverError` when the device cannot be reached or answers wrongly.
    """
    report: dict[str, Any] = {"device": device.id, "driver": getattr(device, "driver", "?"),
                              "family": getattr(device, "family", "?")}
    handle: Any
    decoding = DecodePool()
    if isinstance(device, cfg.Camera):
        handle = multi_reader_for(device, decoding)
    elif report["family"] == "printer":
        handle = printer_for(device)
    elif report["family"] == "label_printer":
        handle = label_printer_for(device)
    else:
        handle = reader_for(device, decoding)
    try:
        async with asyncio.timeout(timeout_s):
            await handle.connect(**({"attempts": 1} if _takes_attempts(handle) else {}))
            report["connected"] = True
            status = getattr(handle, "status", None)
            if status is not None:
                report["status"] = _plain(await status())
            if read and report["family"] in ("reader", "camera"):
                if isinstance(handle, CameraReader):
                    report["read"] = _plain(await handle.read_all())
                else:
                    report["read"] = _plain(await handle.read())
    except TimeoutError:
        raise DriverError(f"device {device.id!r}: no answer within {timeout_s:.0f} s") from None
    finally:
        with contextlib.suppress(Exception):
            await handle.close()
        await asyncio.to_thread(decoding.close)
    return report


def _takes_attempts(handle: Any) -> bool:
    return "attempts" in inspect.signature(handle.connect).parameters
