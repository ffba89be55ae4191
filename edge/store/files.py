"""Files the controller writes beside its database: never through a planted symlink, never
readable by more people than need them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE = 0o600


def write_replacing(path: Path, data: bytes, mode: int = PRIVATE, *, durable: bool = False
                    ) -> None:
    """Replace ``path`` with ``data`` in one rename: the new content goes to a fresh file
    beside it (``O_EXCL | O_NOFOLLOW``, ``mode``), so a symlink planted at either name is
    replaced, never followed. ``durable`` syncs the content before the rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
