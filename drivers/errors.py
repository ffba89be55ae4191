"""Driver errors: one tree, so the runtime can tell a lost link from a device fault."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a driver raises."""


class ConnectionLost(DriverError):
    """The link to the device is down (closed, reset, timed out)."""


class ProtocolError(DriverError):
    """The device sent bytes that are not a valid frame, or the wrong reply."""


class CommandRefused(DriverError):
    """The device understood the command and refused it (NAK, ERR, ``!XX``)."""


class DeviceTimeout(DriverError):
    """The device did not answer in time."""


class DeviceFault(DriverError):
    """The device reports a fault that stops it (ink out, ribbon out, head fault...)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
