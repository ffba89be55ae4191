"""Real filesystems for the tests that need one: a small tmpfs (full disks, read-only media).
Mounting needs root (CAP_SYS_ADMIN); where it is refused the test is skipped, saying so."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size_mb: int) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                              str(where)], capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def remount_read_only(where: Path) -> None:
    """Make the mounted ``where`` read-only, as media that cannot be written."""
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True,
                   timeout=30)
