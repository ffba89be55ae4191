"""An image camera on TCP that shows the real symbols of the items in front of it.

Symbols are rendered with zxing-cpp's writer (GS1 DataMatrix from the element string, QR,
Code 128), placed on a frame (one item, or a case top view with all its items), then
degraded as configured: contrast loss, blur, noise, rotation, skew and occlusion.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import cv2
import numpy as np
import zxingcpp
from biip.gs1_messages import GS1Message
from pydantic import BaseModel, ConfigDict, Field

from drivers.interfaces import Image
from drivers.vision.cameras import encode_frame
from simulators.items import ItemStream
from simulators.transports import Sink, TcpSimulator

GS = "\x1d"


class CameraSettings(BaseModel):
    """What the simulated camera sees and how badly."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    name: str = Field(default="camera", description="its position on the line (item cursor)")
    width: int = Field(default=640, ge=64, le=4096)
    height: int = Field(default=480, ge=64, le=4096)
    symbology: str = Field(default="datamatrix", pattern="^(datamatrix|qr|code128)$")
    module_px: int = Field(default=6, ge=1, le=40, description="pixels per module")
    per_frame: int = Field(default=1, ge=1, le=200, description="items per frame (a case: 24)")
    contrast: float = Field(default=1.0, ge=0.0, le=1.0, description="1 = black on white")
    blur: float = Field(default=0.0, ge=0.0, le=10.0, description="Gaussian sigma, pixels")
    noise: float = Field(default=0.0, ge=0.0, le=128.0, description="Gaussian noise sigma")
    rotation: float = Field(default=0.0, ge=0.0, le=180.0, description="max angle, degrees")
    skew: float = Field(default=0.0, ge=0.0, le=0.3, description="perspective, share of size")
    occlusion: float = Field(default=0.0, ge=0.0, le=0.5, description="share of a symbol hidden")


def render_symbol(payload: str, symbology: str, module_px: int) -> Image:
    """The symbol for ``payload`` as a grayscale image with its quiet zone."""
    if symbology == "datamatrix" and payload.startswith(("01", "00")):
        text = GS1Message.parse(payload).as_hri()
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    elif symbology == "datamatrix":
        barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.DataMatrix)
    elif symbology == "qr":
        barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode)
    else:
        barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.Code128)
    return np.asarray(barcode.to_image(scale=module_px), dtype=np.uint8)


def _rotate(symbol: Image, angle: float) -> Image:
    h, w = symbol.shape
    size = int(math.ceil(math.hypot(h, w)))
    canvas = np.full((size, size), 255, np.uint8)
    y, x = (size - h) // 2, (size - w) // 2
    canvas[y:y + h, x:x + w] = symbol
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    return np.asarray(cv2.warpAffine(canvas, matrix, (size, size), borderValue=255), np.uint8)


def compose(payloads: list[str | None], s: CameraSettings, rng: random.Random) -> Image:
    """A frame holding the symbols of ``payloads`` (None: an item with nothing printed)."""
    frame = np.full((s.height, s.width), 255, np.uint8)
    if not payloads:
        return degrade(frame, s, rng)
    cols = math.ceil(math.sqrt(len(payloads) * s.width / s.height))
    rows = math.ceil(len(payloads) / cols)
    cell_w, cell_h = s.width // cols, s.height // rows
    for k, payload in enumerate(payloads):
        if payload is None:
            continue
        symbol = render_symbol(payload, s.symbology, s.module_px)
        if s.rotation:
            symbol = _rotate(symbol, rng.uniform(-s.rotation, s.rotation))
        if s.occlusion:
            h, w = symbol.shape
            oh, ow = int(h * s.occlusion), int(w * s.occlusion)
            y, x = rng.randrange(0, h - oh + 1), rng.randrange(0, w - ow + 1)
            symbol[y:y + oh, x:x + ow] = 255
        h, w = symbol.shape
        if h > cell_h or w > cell_w:
            scale = min(cell_h / h, cell_w / w)
            symbol = np.asarray(cv2.resize(symbol, (max(1, int(w * scale)), max(1, int(h * scale))),
                                           interpolation=cv2.INTER_AREA), np.uint8)
            h, w = symbol.shape
        r, c = divmod(k, cols)
        y = r * cell_h + (cell_h - h) // 2
        x = c * cell_w + (cell_w - w) // 2
        frame[y:y + h, x:x + w] = np.minimum(frame[y:y + h, x:x + w], symbol)
    return degrade(frame, s, rng)


def degrade(frame: Image, s: CameraSettings, rng: random.Random) -> Image:
    """Apply the optical faults of the settings to a rendered frame."""
    out: Any = frame.astype(np.float32)
    if s.skew:
        h, w = frame.shape
        d = s.skew * min(h, w)
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        dst = np.array([[rng.uniform(0, d), rng.uniform(0, d)],
                        [w - rng.uniform(0, d), rng.uniform(0, d)],
                        [w - rng.uniform(0, d), h - rng.uniform(0, d)],
                        [rng.uniform(0, d), h - rng.uniform(0, d)]], dtype=np.float32)
        out = cv2.warpPerspective(out, cv2.getPerspectiveTransform(src, dst), (w, h),
                                  borderValue=255)
    if s.contrast < 1.0:
        out = 128 + (out - 128) * s.contrast
    if s.blur:
        out = cv2.GaussianBlur(out, (0, 0), s.blur)
    if s.noise:
        gen = np.random.default_rng(rng.getrandbits(32))
        out = out + gen.normal(0, s.noise, out.shape)
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


class CameraSim(TcpSimulator):
    """Serves a frame per ``G`` of the next item(s) on its stream."""

    def __init__(self, settings: CameraSettings | None = None,
                 items: ItemStream | None = None) -> None:
        self.settings = settings or CameraSettings()
        self.items = items or ItemStream()
        self.rng = random.Random(self.settings.seed)
        self.frames = 0
        self.shown: list[list[str | None]] = []

    def next_frame(self) -> Image:
        payloads: list[str | None] = []
        for _ in range(self.settings.per_frame):
            item = self.items.next_for(self.settings.name)
            if item is None:
                break
            payloads.append(item.code)
        self.shown.append(payloads)
        self.frames += 1
        return compose(payloads, self.settings, self.rng)

    async def handle(self, reader: asyncio.StreamReader, sink: Sink) -> None:
        while True:
            request = await reader.read(1)
            if not request:
                return
            if request == b"G":
                frame = await asyncio.to_thread(self.next_frame)
                await sink.write(encode_frame(frame))
