"""The PackML state model (ISA-TR88 / OPC 30050 numbering) of one line, as pure rules.

Commands move the line into an acting state (Starting, Stopping, ...); the runtime calls
:meth:`PackML.done` when the acting state's work is finished, which moves it to the settled
state that follows. Alarms hold the line from inside (Execute → Holding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class State(IntEnum):
    """PackML states, numbered as PROTOCOLS.md §7 (never mix with OPC 30060)."""

    UNDEFINED = 0
    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17

    @property
    def label(self) -> str:
        return self.name.capitalize()


class Command(IntEnum):
    """PackML commands."""

    RESET = 1
    START = 2
    STOP = 3
    HOLD = 4
    UNHOLD = 5
    SUSPEND = 6
    UNSUSPEND = 7
    ABORT = 8
    CLEAR = 9

    @property
    def label(self) -> str:
        return self.name.capitalize()


S = State
ACTING_DONE: dict[State, State] = {
    S.CLEARING: S.STOPPED,
    S.STARTING: S.EXECUTE,
    S.STOPPING: S.STOPPED,
    S.ABORTING: S.ABORTED,
    S.HOLDING: S.HELD,
    S.UNHOLDING: S.EXECUTE,
    S.SUSPENDING: S.SUSPENDED,
    S.UNSUSPENDING: S.EXECUTE,
    S.RESETTING: S.IDLE,
    S.COMPLETING: S.COMPLETE,
}

_STOPPABLE = frozenset(ACTING_DONE) - {S.CLEARING, S.STOPPING, S.ABORTING} | {
    S.IDLE, S.EXECUTE, S.HELD, S.SUSPENDED, S.COMPLETE}

TRANSITIONS: dict[Command, dict[State, State]] = {
    Command.RESET: {S.STOPPED: S.RESETTING, S.COMPLETE: S.RESETTING},
    Command.START: {S.IDLE: S.STARTING},
    Command.STOP: {s: S.STOPPING for s in _STOPPABLE},
    # OPC 30050 / PackML: Hold also interrupts the acting states that lead into Execute.
    Command.HOLD: {s: S.HOLDING for s in (S.EXECUTE, S.SUSPENDED, S.STARTING, S.SUSPENDING,
                                          S.UNSUSPENDING, S.UNHOLDING)},
    Command.UNHOLD: {S.HELD: S.UNHOLDING},
    Command.SUSPEND: {S.EXECUTE: S.SUSPENDING},
    Command.UNSUSPEND: {S.SUSPENDED: S.UNSUSPENDING},
    Command.ABORT: {s: S.ABORTING for s in State if s not in (S.ABORTING, S.ABORTED)},
    Command.CLEAR: {S.ABORTED: S.CLEARING},
}


class CommandRefused(Exception):
    """A command that the line's current state does not accept."""


@dataclass
class PackML:
    """One line's state, with the history of its last transitions and the time it spent in
    each state (OPC 30050 Admin.StateCurrentTime / StateCumulativeTime)."""

    state: State = State.STOPPED
    history: list[tuple[State, State, str]] = field(default_factory=list)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    requested: State | None = None  # where the last command led
    entered_at: float = field(init=False)
    reset_at: float = field(init=False)  # the last Reset (or the controller's start)
    cumulative: dict[State, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.entered_at = self.reset_at = self.clock()

    def seconds_in_state(self) -> float:
        return self.clock() - self.entered_at

    def seconds_per_state(self) -> dict[State, float]:
        """Time spent in every state since the controller started, the current stint too."""
        spent = dict(self.cumulative)
        spent[self.state] = spent.get(self.state, 0.0) + self.seconds_in_state()
        return spent

    def seconds_since_reset(self) -> float:
        return self.clock() - self.reset_at

    def allowed(self, command: Command) -> bool:
        return self.state in TRANSITIONS[command]

    def command(self, command: Command, why: str = "") -> State:
        """Apply ``command``; refuse it (naming the state) if the state does not take it."""
        target = TRANSITIONS[command].get(self.state)
        if target is None:
            raise CommandRefused(
                f"{command.label} is not accepted in state {self.state.label}"
            )
        self.requested = target
        if command is Command.RESET:
            self.reset_at = self.clock()
        return self._go(target, why or command.label)

    def done(self) -> State:
        """The acting state's work is finished: move to the state that follows it."""
        target = ACTING_DONE.get(self.state)
        if target is None:
            raise CommandRefused(f"{self.state.label} is not an acting state")
        return self._go(target, "done")

    def complete(self) -> State:
        """The batch's target is met (Execute → Completing)."""
        if self.state is not S.EXECUTE:
            raise CommandRefused(f"cannot complete from {self.state.label}")
        return self._go(S.COMPLETING, "batch target reached")

    def hold(self, why: str) -> State:
        """An alarm holds the line (Execute → Holding); elsewhere it changes nothing."""
        if self.state is S.EXECUTE:
            return self._go(S.HOLDING, why)
        return self.state

    def fall_back(self, target: State, why: str) -> State:
        """An acting state's work failed: settle in ``target`` (e.g. Resetting → Stopped)."""
        return self._go(target, why)

    def _go(self, target: State, why: str) -> State:
        self.history.append((self.state, target, why))
        del self.history[:-50]
        now = self.clock()
        self.cumulative[self.state] = self.cumulative.get(self.state, 0.0) + now - self.entered_at
        self.entered_at = now
        self.state = target
        return target
