"""Running under systemd (``Type=notify``): READY once the lines are up, WATCHDOG pings from
the event loop, STOPPING on the way down — the ``sd_notify`` datagram protocol, spoken
directly (a datagram to ``$NOTIFY_SOCKET``), so nothing is needed from libsystemd.

The pings come from a task on the controller's event loop: a loop stalled by anything
(a blocking call, a deadlock) stops them, and systemd restarts the controller after
``WatchdogSec``. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("codeline.service")


class ServiceManager:
    """The link to systemd, read from the environment systemd gives its service."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written "@name"; its address starts with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else 0.0
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> None:
        """Send ``KEY=value`` fields to systemd; a failure is logged once, never raised."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall("\n".join(fields).encode())
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error("systemd notification not sent to %s: %s", self.address.lstrip("\0"),
                          exc.strerror or exc)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping the lines")

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval, from the event loop, until cancelled."""
        if not self.watchdog_s:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)
