"""Why ``codeline run`` refused to start: each names what to fix, without a traceback."""

from __future__ import annotations

from edge.domain.errors import CodelineError


class StartRefused(CodelineError):
    """The controller cannot start as configured or as the box is."""


class PlcConfigError(StartRefused):
    """The PLC server cannot start as configured (certificate, users file, trust list)."""


class ControllerAlreadyRunning(StartRefused):
    """Another ``codeline run`` holds this database."""


class AddressInUse(StartRefused):
    """A port the controller must listen on is taken by another program."""


class PackMLModelMissing(PlcConfigError):
    """The configured OPC 30050 nodeset for the line's PackML unit is not there."""
