"""Serials: random, unguessable strings with a check character; SSCCs for pallets.

The check character is computed with a totally anti-symmetric quasigroup (Damm's scheme)
over the serial's own alphabet, so it catches every single-character substitution and every
adjacent transposition. Such a quasigroup is ``x*y = a·x + y``: modulo ``n`` with ``a = 2``
when the alphabet size ``n`` is odd, and in the field GF(2^k) with ``a`` = the generator when
``n = 2^k``. Other even sizes have no such simple construction and are refused by the config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from stdnum import ean

from line_config.models import RandomCodeFormat, SerialFormat, SsccFormat

# Irreducible polynomials for GF(2^k), k = 2..5 (alphabets of 4, 8, 16, 32 characters).
_GF_POLY = {4: 0b111, 8: 0b1011, 16: 0b10011, 32: 0b100101}


def _quasigroup(n: int) -> list[list[int]]:
    if n % 2 == 1:
        return [[(2 * x + y) % n for y in range(n)] for x in range(n)]
    poly = _GF_POLY.get(n)
    if poly is None:
        raise ValueError(f"no check-character scheme for an alphabet of {n} characters")

    def times_generator(x: int) -> int:
        x <<= 1
        return x ^ poly if x & n else x

    return [[times_generator(x) ^ y for y in range(n)] for x in range(n)]


@dataclass(frozen=True)
class CheckCharacter:
    """Computes and verifies the check character of strings over one alphabet."""

    alphabet: str
    _step: list[dict[str, int]] = field(init=False, repr=False, compare=False)
    _closing: list[str] = field(init=False, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)
    _closing_digit: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = _quasigroup(len(self.alphabet))
        step = [{ch: row[i] for i, ch in enumerate(self.alphabet)} for row in table]
        closing = [self.alphabet[row.index(0)] for row in table]
        object.__setattr__(self, "_step", step)
        object.__setattr__(self, "_closing", closing)
        object.__setattr__(self, "_table", np.array(table, dtype=np.uint8))
        object.__setattr__(self, "_closing_digit",
                           np.array([row.index(0) for row in table], dtype=np.uint8))

    def digits(self, data: np.ndarray) -> np.ndarray:
        """The check digit of each row of ``data`` (alphabet indices, one row a serial)."""
        state = np.zeros(data.shape[0], dtype=np.uint8)
        for column in range(data.shape[1]):
            state = self._table[state, data[:, column]]
        return np.asarray(self._closing_digit[state])

    def _fold(self, text: str) -> int:
        state = 0
        step = self._step
        for ch in text:
            state = step[state][ch]
        return state

    def compute(self, data: str) -> str:
        """The character to append to ``data``; ``KeyError`` if a character is foreign."""
        return self._closing[self._fold(data)]

    def is_valid(self, word: str) -> bool:
        """True when ``word`` (data + check character) is over the alphabet and checks."""
        try:
            return self._fold(word) == 0
        except KeyError:
            return False


@dataclass(frozen=True)
class SerialScheme:
    """One serial format: draws new serials and recognises valid ones."""

    alphabet: str
    length: int
    check: CheckCharacter | None

    @classmethod
    def from_config(cls, fmt: SerialFormat) -> SerialScheme:
        check = CheckCharacter(fmt.alphabet) if fmt.check_character else None
        return cls(alphabet=fmt.alphabet, length=fmt.length, check=check)

    @property
    def total_length(self) -> int:
        return self.length + (1 if self.check else 0)

    def draw(self, count: int) -> list[str]:
        """``count`` new serials from the OS's CSPRNG; uniqueness is the store's unique
        index."""
        block = self.draw_sorted(count)
        width = self.total_length
        text = block.decode("ascii")
        return [text[i:i + width] for i in range(0, len(text), width)]

    def draw_sorted(self, count: int) -> bytes:
        """``count`` new serials, sorted and concatenated (each ``total_length`` bytes).
        Every character is drawn uniformly and independently from ``os.urandom`` (bytes at
        or above the largest multiple of the alphabet size are drawn again), so a serial is
        uniform over the alphabet^length space: as unguessable as the space is large."""
        n = len(self.alphabet)
        limit = 256 - 256 % n
        wanted = count * self.length
        parts: list[np.ndarray] = []
        have = 0
        while have < wanted:
            raw = np.frombuffer(os.urandom((wanted - have) * 256 // limit + 64), np.uint8)
            kept = raw[raw < limit] % n
            parts.append(kept)
            have += kept.size
        digits = np.concatenate(parts)[:wanted].astype(np.uint8).reshape(count, self.length)
        if self.check is not None:
            digits = np.hstack([digits, self.check.digits(digits)[:, None]])
        letters = np.frombuffer(self.alphabet.encode("ascii"), np.uint8)[digits]
        rows = np.ascontiguousarray(letters).view(f"S{self.total_length}").ravel()
        return np.sort(rows).tobytes()

    def problem(self, serial: str) -> str | None:
        """Why ``serial`` is not a serial of this scheme, or None if it is."""
        if len(serial) != self.total_length:
            return f"expected {self.total_length} characters, got {len(serial)}"
        if self.check is not None:
            if not self.check.is_valid(serial):
                foreign = sorted({c for c in serial if c not in self.alphabet})
                if foreign:
                    return "characters outside the alphabet: " + "".join(foreign)[:20]
                return "check character does not match (misread or mistyped)"
        elif any(c not in self.alphabet for c in serial):
            return "characters outside the alphabet"
        return None


@dataclass(frozen=True)
class SsccScheme:
    """SSCCs: extension digit + company prefix + serial reference + mod-10 check digit."""

    extension_digit: int
    company_prefix: str

    @classmethod
    def from_config(cls, fmt: SsccFormat) -> SsccScheme:
        return cls(extension_digit=fmt.extension_digit, company_prefix=fmt.company_prefix)

    @property
    def capacity(self) -> int:
        """How many serial references the company prefix leaves room for."""
        return int(10 ** (16 - len(self.company_prefix)))

    def make(self, reference: int) -> str:
        """The 18-digit SSCC for serial reference number ``reference``."""
        width = 16 - len(self.company_prefix)
        if not 0 <= reference < 10**width:
            raise ValueError(f"serial reference {reference} does not fit {width} digits")
        body = f"{self.extension_digit}{self.company_prefix}{reference:0{width}d}"
        return body + ean.calc_check_digit(body)

    def problem(self, serial: str) -> str | None:
        if len(serial) != 18 or not (serial.isascii() and serial.isdigit()):
            return "an SSCC has 18 digits"
        if ean.calc_check_digit(serial[:17]) != serial[17]:
            return "SSCC check digit does not match"
        return None


Scheme = SerialScheme | SsccScheme


def scheme_for(fmt: RandomCodeFormat | SsccFormat) -> Scheme:
    """The serial scheme of one level's code format."""
    if isinstance(fmt, SsccFormat):
        return SsccScheme.from_config(fmt)
    return SerialScheme.from_config(fmt.serial)
