"""Symbol decoders behind one interface: zxing-cpp (default), pyzbar, OpenCV's QR detector.

Each returns every symbol of a frame with its raw data (GS separators kept, as a reader
sends them), its corners and an approximate print-quality grade. Decoding blocks: run it in
a worker thread (zxing-cpp releases the GIL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import zxingcpp

from drivers.interfaces import DecodedSymbol, Decoder, Image
from drivers.vision.grading import grade_region
from line_config.devices import Camera as CameraConfig

# "qr" is the QR Code printers print (Model 2). zxing-cpp 3's QRCode is the whole family,
# Micro QR included: a Micro QR M1/M2 has one finder pattern and checks only 2-5 codewords,
# so a corner of a real QR symbol in a case view decodes now and then as "6106".
_ZXING_FORMATS = {
    "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
    "qr": zxingcpp.BarcodeFormat.QRCodeModel2,
    "code128": zxingcpp.BarcodeFormat.Code128,
}

# A result names the format it was read as; a Model 2 QR reports itself as QRCode.
_NAMES = {fmt: name for name, fmt in _ZXING_FORMATS.items()} | {
    zxingcpp.BarcodeFormat.QRCode: "qr"}


def _graded(image: Image, data: str, symbology: str,
            corners: tuple[tuple[int, int], ...]) -> DecodedSymbol:
    grade, contrast, margin = grade_region(image, corners)
    return DecodedSymbol(data, symbology, corners, grade, contrast, margin)


class ZxingDecoder:
    """zxing-cpp, told exactly which formats to look for (the options set its speed)."""

    def __init__(self, symbologies: Sequence[str], try_rotate: bool = True,
                 try_invert: bool = False, try_downscale: bool = True) -> None:
        # Kept as plain enum members; the BarcodeFormats set is made per call, so no binding
        # object outlives the interpreter (nanobind reports such objects as leaks at exit).
        self.formats = [_ZXING_FORMATS[name] for name in symbologies]
        self.try_rotate = try_rotate
        self.try_invert = try_invert
        self.try_downscale = try_downscale

    def decode(self, image: Image) -> list[DecodedSymbol]:
        out = []
        formats = zxingcpp.BarcodeFormats(self.formats)
        results = zxingcpp.read_barcodes(image, formats=formats, try_rotate=self.try_rotate,
                                         try_invert=self.try_invert,
                                         try_downscale=self.try_downscale)
        for result in results:
            p = result.position
            corners = tuple((int(q.x), int(q.y)) for q in
                            (p.top_left, p.top_right, p.bottom_right, p.bottom_left))
            data = bytes(result.bytes).decode("latin-1")
            out.append(_graded(image, data, _NAMES.get(result.format, "other"), corners))
        return out


class PyzbarDecoder:
    """pyzbar (libzbar0): QR and Code 128 only, restricted to the configured symbols."""

    def __init__(self, symbologies: Sequence[str]) -> None:
        from pyzbar import pyzbar  # needs libzbar0, installed by the set-up command

        self._pyzbar = pyzbar
        kinds = {"qr": pyzbar.ZBarSymbol.QRCODE, "code128": pyzbar.ZBarSymbol.CODE128}
        self.symbols = [kinds[s] for s in symbologies if s in kinds]
        if not self.symbols:
            raise ValueError("pyzbar reads QR and Code 128, not DataMatrix")

    def decode(self, image: Image) -> list[DecodedSymbol]:
        out = []
        for result in self._pyzbar.decode(image, symbols=self.symbols):
            corners = tuple((int(pt.x), int(pt.y)) for pt in result.polygon)
            kind = "qr" if result.type == "QRCODE" else result.type.lower()
            out.append(_graded(image, result.data.decode("latin-1"), kind, corners))
        return out


class OpenCvQrDecoder:
    """OpenCV's ArUco-based QR detector (QR only)."""

    def __init__(self) -> None:
        self.detector = cv2.QRCodeDetectorAruco()

    def decode(self, image: Image) -> list[DecodedSymbol]:
        found: Any = self.detector.detectAndDecodeMulti(image)
        ok, texts, points = found[0], found[1], found[2]
        if not ok or points is None:
            return []
        out = []
        for text, quad in zip(texts, points, strict=False):
            if text:
                corners = tuple((int(x), int(y)) for x, y in np.asarray(quad).reshape(-1, 2))
                out.append(_graded(image, text, "qr", corners))
        return out


def decoder_for(config: CameraConfig) -> Decoder:
    """The decoder a camera's config asks for."""
    if config.decoder == "pyzbar":
        return PyzbarDecoder(config.symbologies)
    if config.decoder == "opencv":
        return OpenCvQrDecoder()
    return ZxingDecoder(config.symbologies, try_rotate=config.try_rotate,
                        try_invert=config.try_invert, try_downscale=config.try_downscale)
