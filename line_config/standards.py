"""Where the official artifacts are (GS1 EPCIS schema and examples, OPC UA nodesets): beside
the repository in ``../shared/standards``, or where ``CODELINE_STANDARDS_DIR`` points. They are
published by GS1 and the OPC Foundation and never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path


class MissingStandards(FileNotFoundError):
    """An official artifact is not where codeline looks for it."""


def standards_dir() -> Path:
    configured = os.environ.get("CODELINE_STANDARDS_DIR")
    return Path(configured) if configured else (
        Path(__file__).resolve().parents[2] / "shared" / "standards")


def standard_file(relative: str) -> Path:
    """``relative`` below the standards folder; a clear error when it is not there."""
    path = standards_dir() / relative
    if not path.is_file():
        raise MissingStandards(
            f"{path} not found: download it there (see the README, Standards), or set "
            f"CODELINE_STANDARDS_DIR")
    return path
