"""Frame sources: a camera on TCP (length-prefixed frames), a folder of images, OpenCV.

The TCP frame protocol (ours): the host sends ``G``; the camera answers a 12-byte header
``b"CLF1"`` + width (u16) + height (u16) + length (u32), big-endian, then ``length`` bytes of
8-bit grayscale pixels, row by row.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from drivers.errors import ConnectionLost, DeviceTimeout, ProtocolError
from drivers.interfaces import Camera, Image
from drivers.transport import Availability, Backoff, close_stream, opener_for
from line_config.devices import Camera as CameraConfig
from line_config.devices import DirectoryTransport, TcpTransport, VideoCaptureTransport

log = logging.getLogger("codeline.drivers.camera")

HEADER = struct.Struct(">4sHHI")
MAGIC = b"CLF1"
MAX_PIXELS = 4096 * 4096


def encode_frame(image: Image) -> bytes:
    """A frame as the TCP camera protocol carries it."""
    height, width = image.shape[:2]
    pixels = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return HEADER.pack(MAGIC, width, height, len(pixels)) + pixels


class TcpCamera:
    """A camera that sends a frame for every ``G``. Its link is reported like every
    driver's (down once with the reason, back online once); a grab after a loss waits out
    the backoff and reconnects."""

    def __init__(self, config: CameraConfig, frame_timeout: float = 2.0) -> None:
        assert isinstance(config.transport, TcpTransport)
        self.name = config.id
        self.opener = opener_for(config.transport)
        self.backoff = Backoff(config.reconnect_min_ms / 1000, config.reconnect_max_ms / 1000)
        self.availability = Availability(log, self.name)
        self.frame_timeout = frame_timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0
        self.protocol_errors = 0

    async def connect(self) -> None:
        try:
            self.reader, self.writer = await self.opener()
        except (OSError, ConnectionLost, TimeoutError) as exc:
            self.availability.went_down(f"cannot connect: {exc}")
            raise ConnectionLost(f"camera {self.name}: cannot connect ({exc})") from None
        self.availability.went_up()

    async def close(self) -> None:
        await close_stream(self.writer)
        self.reader = self.writer = None

    async def _lost(self, why: str) -> None:
        self.availability.went_down(why)
        await self.close()

    async def grab(self) -> Image:
        if self.writer is None:
            await asyncio.sleep(self.backoff.next_delay())
            await self.connect()
            self.reconnects += 1
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(b"G")
            async with asyncio.timeout(self.frame_timeout):
                magic, width, height, length = HEADER.unpack(
                    await self.reader.readexactly(HEADER.size))
                if magic != MAGIC or length != width * height or length > MAX_PIXELS:
                    raise ProtocolError(f"camera {self.name}: not a frame header")
                pixels = await self.reader.readexactly(length)
        except TimeoutError:
            await self._lost(f"no frame within {self.frame_timeout:.1f} s")
            raise DeviceTimeout(f"camera {self.name}: no frame within "
                                f"{self.frame_timeout:.1f} s") from None
        except ProtocolError as exc:
            self.protocol_errors += 1
            await self._lost(str(exc))
            raise
        except asyncio.IncompleteReadError:
            await self._lost("the camera closed the link")
            raise ConnectionLost(f"camera {self.name}: the camera closed the link") from None
        except OSError as exc:
            await self._lost(f"link lost ({exc.strerror or exc})")
            raise ConnectionLost(f"camera {self.name}: link lost "
                                 f"({exc.strerror or exc})") from None
        self.backoff.reset()
        return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)


class DirectoryCamera:
    """Images from a folder, in name order (for replaying recorded frames)."""

    def __init__(self, config: CameraConfig) -> None:
        assert isinstance(config.transport, DirectoryTransport)
        self.folder = Path(config.transport.path)
        self.pattern = config.transport.pattern
        self.files: list[Path] = []
        self.availability = Availability(log, config.id)

    async def connect(self) -> None:
        if not self.folder.is_dir():
            self.availability.went_down(f"no image folder {self.folder}")
            raise ConnectionLost(f"no image folder {self.folder}")
        self.files = sorted(self.folder.glob(self.pattern))
        self.availability.went_up()

    async def close(self) -> None:
        self.files = []

    async def grab(self) -> Image:
        if not self.files:
            self.availability.went_down("no more images")
            raise ConnectionLost(f"no more images in {self.folder}")
        path = self.files.pop(0)
        image = await asyncio.to_thread(cv2.imread, str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ProtocolError(f"{path} is not a readable image")
        return np.asarray(image, dtype=np.uint8)


class VideoCaptureCamera:
    """An OpenCV VideoCapture source (a device index or a stream URL)."""

    def __init__(self, config: CameraConfig) -> None:
        assert isinstance(config.transport, VideoCaptureTransport)
        self.source = config.transport.source
        self.capture: cv2.VideoCapture | None = None
        self.availability = Availability(log, config.id)

    async def connect(self) -> None:
        source = self.source
        self.capture = await asyncio.to_thread(lambda: cv2.VideoCapture(source))
        if self.capture is None or not self.capture.isOpened():
            self.availability.went_down(f"cannot open video source {self.source!r}")
            raise ConnectionLost(f"cannot open video source {self.source!r}")
        self.availability.went_up()

    async def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    async def grab(self) -> Image:
        if self.capture is None:
            raise ConnectionLost("video source not open")
        ok, frame = await asyncio.to_thread(self.capture.read)
        if not ok:
            self.availability.went_down("no frame")
            raise ConnectionLost(f"video source {self.source!r} gave no frame")
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return np.asarray(frame, dtype=np.uint8)


def camera_for(config: CameraConfig) -> Camera:
    """The frame source a camera's config names."""
    if isinstance(config.transport, TcpTransport):
        return TcpCamera(config)
    if isinstance(config.transport, DirectoryTransport):
        return DirectoryCamera(config)
    return VideoCaptureCamera(config)

