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


def root_error(exc: BaseException) -> BaseException:
    """The first real error inside ``exc`` (task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe_error(exc: BaseException) -> str:
    """The first real error inside ``exc``, as type: text."""
    first = root_error(exc)
    return f"{type(first).__name__}: {first}"
