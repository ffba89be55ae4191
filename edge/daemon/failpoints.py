"""Failpoints: named places in the runtime's tasks where an unexpected error can be made to
happen in a real controller process, to prove that no failure leaves a line in Execute.

Off unless ``CODELINE_FAILPOINTS`` is set, e.g. ``flow.verify@20`` (fail at the 21st pass
through ``flow.verify``) or ``flow.feed,station.case`` (fail at the first pass of each). Each
fires once. The names are listed in :data:`NAMES`; ``loop.stall`` blocks the event loop
(:data:`STALL_S`) instead of raising, as a hung call would; ``flow.commit_stall`` blocks a
group commit on the database thread the same way, as a disk that stops answering would.
"""

from __future__ import annotations

import os
import time

NAMES = ("flow.feed", "flow.printer_events", "flow.verify", "flow.commit", "station.case",
         "station.pallet", "plc.publish", "loop.stall", "flow.commit_stall")
STALL_S = 20.0


class InjectedFault(RuntimeError):
    """The error a failpoint raises."""


def _armed(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, after = part.partition("@")
        if name not in NAMES or (after and not (after.isascii() and after.isdigit())):
            raise ValueError(f"CODELINE_FAILPOINTS: {part!r} is not NAME[@N] with NAME one of "
                             f"{', '.join(NAMES)}")
        armed[name] = int(after or 0)
    return armed


_ARMED = _armed(os.environ.get("CODELINE_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    """Raise :class:`InjectedFault` if ``name`` is armed and its count has run down."""
    if not _ARMED or name not in _ARMED:
        return
    if _ARMED[name] > 0:
        _ARMED[name] -= 1
        return
    del _ARMED[name]
    raise InjectedFault(f"failpoint {name} fired (CODELINE_FAILPOINTS)")


def stall_point(name: str) -> None:
    """Block the calling thread (the event loop) for :data:`STALL_S` when ``name`` fires."""
    try:
        failpoint(name)
    except InjectedFault:
        time.sleep(STALL_S)
