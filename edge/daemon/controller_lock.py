"""One controller per database: an exclusive lock held for the whole life of ``codeline run``.

Two controllers on one database would each settle the other's codes of unknown fate:
``recover()`` voids RESERVED codes, which for a live line are the codes in its printer's
buffer, about to go on bottles. The lock is an ``flock`` on ``<database>.lock`` (released by
the kernel when the process dies, however it dies); the file says who holds it. Operator
commands (``pool``, ``batch``, ``ship``) do not take it: they work beside the controller.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from edge.daemon.errors import ControllerAlreadyRunning


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class ControllerLock:
    """The lock of one database, taken with :meth:`acquire`, given back with :meth:`release`."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or refuse, naming the controller that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise ControllerAlreadyRunning(
                "another `codeline run` is running on {db_path} ({holder}): stop it first, or "
                "give this controller its own database", db_path=self.db_path,
                holder=holder or "pid unknown") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would race a starting controller)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
