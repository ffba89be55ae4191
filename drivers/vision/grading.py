"""A print-quality grade from the image, in the spirit of ISO/IEC 15415 — an approximation.

A verifier grades from calibrated reflectance with a synthetic aperture; a line camera has
neither, so codeline measures two parameters on the symbol's own pixels and documents them
as approximations:

* symbol contrast SC = (R95 - R5) / 255 over the symbol's bounding box (5th and 95th
  percentiles stand in for the darkest and lightest reflectance), graded with the standard's
  thresholds: A ≥ 70 %, B ≥ 55 %, C ≥ 40 %, D ≥ 20 %;
* decode margin = share of pixels that sit clearly on one side of the global threshold
  (farther than a quarter of SC from it). Blur, ink spread and noise push pixels toward the
  threshold, where a decoder hesitates. Graded (ours): A ≥ 0.80, B ≥ 0.65, C ≥ 0.50, D ≥ 0.35.

The overall grade is the lower of the two, as in the standard.
"""

from __future__ import annotations

import numpy as np

from drivers.interfaces import GRADES, Grade, Image

SC_LIMITS = (0.70, 0.55, 0.40, 0.20)
MARGIN_LIMITS = (0.80, 0.65, 0.50, 0.35)


def _letter(value: float, limits: tuple[float, float, float, float]) -> Grade:
    for letter, limit in zip(("A", "B", "C", "D"), limits, strict=True):
        if value >= limit:
            return letter  # type: ignore[return-value]
    return "F"


def grade_region(image: Image, corners: tuple[tuple[int, int], ...]) -> tuple[Grade, float, float]:
    """(overall grade, symbol contrast 0-1, decode margin 0-1) of the symbol at ``corners``."""
    height, width = image.shape[:2]
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    x0, x1 = max(0, min(xs)), min(width, max(xs) + 1)
    y0, y1 = max(0, min(ys)), min(height, max(ys) + 1)
    region = image[y0:y1, x0:x1]
    if region.size < 16:
        return "F", 0.0, 0.0
    low, high = np.percentile(region, (5, 95))
    contrast = float(high - low) / 255.0
    if contrast <= 0:
        return "F", 0.0, 0.0
    threshold = (high + low) / 2
    band = (high - low) / 4
    clear = np.count_nonzero(np.abs(region.astype(np.int16) - threshold) > band)
    margin = float(clear) / float(region.size)
    grade = min(_letter(contrast, SC_LIMITS), _letter(margin, MARGIN_LIMITS),
                key=GRADES.index)
    return grade, round(contrast, 3), round(margin, 3)
