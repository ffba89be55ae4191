"""The laser marker's Modbus TCP register map (PROTOCOLS.md section 3), shared by the
driver and the simulator, and the conversions between texts, counts and registers.

No vendor publishes such a map; this one is ours, in the style of laser fieldbus interfaces:
a command coil answered by a mirror input, data in holding registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Table = Literal["coil", "discrete_input", "holding"]


@dataclass(frozen=True)
class Register:
    """One entry of the map: where it is, how many registers, what it means."""

    table: Table
    address: int
    count: int
    name: str
    meaning: str


# --- commands (coils) and their mirrors (discrete inputs 0-3) ---
START_MARKING = Register("coil", 0, 1, "StartMarking", "arm: each product trigger marks once")
STOP_MARKING = Register("coil", 1, 1, "StopMarking", "disarm and discard the queued texts")
SET_STRING = Register("coil", 2, 1, "SetString",
                      "queue the text in holding 2.. for the field in holding 0")
ERROR_CLEAR = Register("coil", 3, 1, "ErrorClear", "clear the error code and the Error input")
COMMANDS = (START_MARKING, STOP_MARKING, SET_STRING, ERROR_CLEAR)

MIRROR_BASE = 0  # discrete input n mirrors coil n: the command was acknowledged
MIRRORS = tuple(Register("discrete_input", MIRROR_BASE + c.address, 1, f"{c.name}Ack",
                         f"mirror of coil {c.address}") for c in COMMANDS)

# --- status (discrete inputs 10-15) ---
READY = Register("discrete_input", 10, 1, "Ready", "armed, no error, interlock and shutter ok")
BUSY = Register("discrete_input", 11, 1, "Busy", "a mark is under way")
MARK_DONE = Register("discrete_input", 12, 1, "MarkDone", "pulse: a mark finished")
ERROR = Register("discrete_input", 13, 1, "Error", "an error code is set; commands refused")
SHUTTER_OPEN = Register("discrete_input", 14, 1, "ShutterOpen", "the beam shutter is open")
INTERLOCK = Register("discrete_input", 15, 1, "Interlock",
                     "the safety interlock circuit is closed (on = safe to fire)")
STATUS = (READY, BUSY, MARK_DONE, ERROR, SHUTTER_OPEN, INTERLOCK)
DISCRETE_INPUTS = 16  # mirrors and status fit one read of inputs 0-15

# --- data (holding registers) ---
FIELD_ID = Register("holding", 0, 1, "FieldId", "field the text is for")
TEXT_LENGTH = Register("holding", 1, 1, "TextLength", "text length in bytes")
TEXT = Register("holding", 2, 64, "Text", "ASCII, two characters per register, high byte first")
ERROR_CODE = Register("holding", 100, 1, "ErrorCode", "0 none, else an ERRORS key")
MARK_COUNT = Register("holding", 101, 2, "MarkCount", "marks made, unsigned 32-bit, high first")
QUEUE_DEPTH = Register("holding", 103, 1, "QueueDepth", "texts loaded and not yet marked")
STATUS_BLOCK = (ERROR_CODE, MARK_COUNT, QUEUE_DEPTH)  # read together: 100-103

MAP: tuple[Register, ...] = (*COMMANDS, *MIRRORS, *STATUS, FIELD_ID, TEXT_LENGTH, TEXT,
                             *STATUS_BLOCK)

QUEUE_CAPACITY = 16
MAX_TEXT = TEXT.count * 2

ERRORS: dict[int, tuple[str, str]] = {
    1: ("INTERLOCK_OPEN", "safety interlock opened"),
    2: ("SHUTTER_CLOSED", "trigger with the shutter closed"),
    3: ("TRIGGER_NOT_READY", "product trigger while not ready (no text queued)"),
    4: ("MARK_TIMEOUT", "a mark did not finish in time"),
    5: ("LASER_ALARM", "laser source alarm"),
    6: ("QUEUE_FULL", "SetString with 16 texts queued"),
    7: ("BAD_TEXT", "text length out of range"),
}


def error_name(code: int) -> str:
    return ERRORS.get(code, (f"ERROR_{code}", ""))[0]


def encode_text(text: str) -> list[int]:
    """Registers for ``text``: two ASCII characters each, high byte first, zero padded."""
    data = text.encode("ascii")
    if not 1 <= len(data) <= MAX_TEXT:
        raise ValueError(f"a laser text has 1 to {MAX_TEXT} ASCII characters: {text!r}")
    if len(data) % 2:
        data += b"\0"
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def decode_text(registers: list[int], length: int) -> str:
    """The text held in ``registers`` (the first ``length`` bytes)."""
    data = b"".join(r.to_bytes(2, "big") for r in registers)
    return data[:length].decode("ascii", errors="replace")


def split_u32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def join_u32(high: int, low: int) -> int:
    return (high << 16) | low


@dataclass(frozen=True)
class LaserStatus:
    """Holding registers 100-103 and discrete inputs 0-15, as one snapshot."""

    error_code: int
    mark_count: int
    queue_depth: int
    inputs: tuple[bool, ...]

    def on(self, register: Register) -> bool:
        return self.inputs[register.address]

    @classmethod
    def parse(cls, holding: list[int], inputs: list[bool]) -> LaserStatus:
        if len(holding) < 4 or len(inputs) < DISCRETE_INPUTS:
            raise ValueError(f"short status read: {len(holding)} registers, {len(inputs)} inputs")
        return cls(holding[0], join_u32(holding[1], holding[2]), holding[3],
                   tuple(inputs[:DISCRETE_INPUTS]))
