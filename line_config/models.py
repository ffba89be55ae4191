"""The configuration of a site: its products, lines, stations, devices, codes and sync.

Every model forbids unknown keys and bounds every number; rules that span fields live in
``model_validator``s so that ``codeline config check`` reports them with the field's path.
Secrets never appear here: only the names of environment variables or files that hold them.
"""

from __future__ import annotations

import math
import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from stdnum import ean

from line_config.base import Identifier, Strict, check_http_base
from line_config.devices import (
    Device,
    DeviceFamily,
    Millis,
)
from line_config.grades import Grade
from line_config.levels import LEVELS as LEVELS
from line_config.levels import Level as Level
from line_config.plc import PlcServer
from line_config.ports import no_shared_ports
from line_config.sync import SyncSettings

MIN_SERIAL_BITS = 60
DEFAULT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class SerialFormat(Strict):
    """How random serials are drawn: alphabet, length and the trailing check character."""

    alphabet: str = Field(default=DEFAULT_ALPHABET, min_length=3, max_length=62)
    length: int = Field(default=13, ge=6, le=40, description="random characters, without check")
    check_character: bool = True

    @field_validator("alphabet")
    @classmethod
    def _alphabet_usable(cls, value: str) -> str:
        if len(set(value)) != len(value):
            raise ValueError("alphabet repeats a character")
        if not value.isascii() or not value.isalnum():
            raise ValueError("alphabet may hold only ASCII letters and digits (URL and GS1 safe)")
        n = len(value)
        if n % 2 == 0 and not _is_power_of_two(n):
            raise ValueError(
                f"alphabet of {n} characters cannot carry a check character that catches every "
                "adjacent transposition: use an odd size (e.g. 31, 35) or a power of two (e.g. 32)"
            )
        return value

    @property
    def entropy_bits(self) -> float:
        return self.length * math.log2(len(self.alphabet))

    @model_validator(mode="after")
    def _unguessable(self) -> SerialFormat:
        if self.entropy_bits < MIN_SERIAL_BITS:
            raise ValueError(
                f"{self.length} characters of a {len(self.alphabet)}-character alphabet give "
                f"{self.entropy_bits:.1f} bits; at least {MIN_SERIAL_BITS} are required"
            )
        return self


class RandomCodeFormat(Strict):
    """A code carrying a random serial: a QR URL or a GS1 DataMatrix element string."""

    symbology: Literal["qr", "datamatrix"]
    serial: SerialFormat = Field(default_factory=SerialFormat)
    url_base: str | None = Field(
        default=None, description="QR without GTIN: the serial is appended to this URL"
    )
    resolver: str | None = Field(
        default=None, description="QR with GTIN: GS1 Digital Link resolver, e.g. https://id.gs1.org"
    )

    _url = field_validator("url_base", "resolver")(check_http_base)

    @model_validator(mode="after")
    def _qr_has_a_url(self) -> RandomCodeFormat:
        if self.symbology == "qr" and self.url_base is None and self.resolver is None:
            raise ValueError("a QR code needs url_base (plain URL) or resolver (Digital Link)")
        total = self.serial.length + (1 if self.serial.check_character else 0)
        if (self.symbology == "datamatrix" or self.resolver is not None) and total > 20:
            raise ValueError(f"a GS1 serial (AI 21) holds at most 20 characters, this one {total}")
        return self


class SsccFormat(Strict):
    """An SSCC (AI 00): extension digit + GS1 company prefix + serial reference + check digit."""

    symbology: Literal["sscc"]
    extension_digit: int = Field(default=0, ge=0, le=9)
    company_prefix: str = Field(pattern=r"^[0-9]{6,12}$")


CodeFormat = Annotated[RandomCodeFormat | SsccFormat, Field(discriminator="symbology")]


class CodeFormats(Strict):
    """The code printed at each packaging level."""

    item: RandomCodeFormat
    case: CodeFormat
    pallet: CodeFormat

    def for_level(self, level: Level) -> RandomCodeFormat | SsccFormat:
        return {"item": self.item, "case": self.case, "pallet": self.pallet}[level]


class Packaging(Strict):
    """How many children make a full parent."""

    items_per_case: int = Field(ge=1, le=1000)
    cases_per_pallet: int = Field(ge=1, le=500)


class RejectRules(Strict):
    """When an item is rejected and when the line holds."""

    consecutive_limit: int = Field(default=5, ge=1, le=1000, description="rejects in a row → Held")
    min_grade: Grade = "C"


class LowWaterMarks(Strict):
    """Available codes under which a level's pool is flagged LOW, per level. A level left
    out gets the item mark divided by the packaging (the same amount of goods)."""

    item: int = Field(default=10_000, ge=0, le=100_000_000)
    case: int | None = Field(default=None, ge=0, le=100_000_000)
    pallet: int | None = Field(default=None, ge=0, le=100_000_000)


class PoolSettings(Strict):
    """Code pool thresholds and block sizes."""

    low_water: LowWaterMarks | int = Field(
        default_factory=LowWaterMarks,
        description="per level ({item, case, pallet}); a bare number is the item mark, the "
                    "case and pallet marks follow from the packaging")
    reserve_block: int = Field(default=500, ge=1, le=100_000)

    @field_validator("low_water")
    @classmethod
    def _marks(cls, value: LowWaterMarks | int) -> LowWaterMarks:
        if isinstance(value, int):
            if not 0 <= value <= 100_000_000:
                raise ValueError("low_water is between 0 and 100,000,000")
            return LowWaterMarks(item=value)
        return value


class ItemPrintStation(Strict):
    """Prints one code per item; the printer is kept ``buffer_ahead`` codes ahead."""

    id: Identifier
    kind: Literal["item_print"]
    printer: Identifier
    buffer_ahead: int = Field(default=100, ge=1, le=10_000)


class ItemVerifyStation(Strict):
    """Reads every printed item back; its verdicts are committed in groups (every
    ``verdict_commit_every`` verdicts or ``verdict_commit_ms``). The PLC tracks the items
    between camera and gate by their number, so the controller needs no distance."""

    id: Identifier
    kind: Literal["item_verify"]
    reader: Identifier
    verdict_commit_every: int = Field(default=50, ge=1, le=10_000)
    verdict_commit_ms: Millis = 20


class CasePackStation(Strict):
    """Reads all items of an open case, prints and verifies the case label, packs."""

    id: Identifier
    kind: Literal["case_pack"]
    camera: Identifier
    label_printer: Identifier
    label_reader: Identifier


class PalletBuildStation(Strict):
    """Reads the cases on a pallet, prints and verifies the SSCC label, packs."""

    id: Identifier
    kind: Literal["pallet_build"]
    reader: Identifier
    label_printer: Identifier
    label_reader: Identifier


Station = Annotated[
    ItemPrintStation | ItemVerifyStation | CasePackStation | PalletBuildStation,
    Field(discriminator="kind"),
]

_STATION_ROLES: dict[str, dict[str, tuple[DeviceFamily, ...]]] = {
    "item_print": {"printer": ("printer",)},
    "item_verify": {"reader": ("reader", "camera")},
    "case_pack": {
        "camera": ("camera", "reader"),
        "label_printer": ("label_printer",),
        "label_reader": ("reader", "camera"),
    },
    "pallet_build": {
        "reader": ("reader", "camera"),
        "label_printer": ("label_printer",),
        "label_reader": ("reader", "camera"),
    },
}


class Line(Strict):
    """One packaging line: its codes, packaging, rules, devices and stations."""

    id: Identifier
    name: str = Field(default="", max_length=128)
    sgln_extension: str | None = Field(default=None, pattern=r"^[!%-?A-Z_a-z\x22]{1,20}$")
    """The line's location under the site GLN (GS1 AI 254): the readPoint of its EPCIS
    events. Defaults to the line id."""
    codes: CodeFormats
    packaging: Packaging
    reject: RejectRules = Field(default_factory=RejectRules)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    devices: list[Device] = Field(default_factory=list, max_length=64)
    stations: list[Station] = Field(default_factory=list, max_length=32)
    plc: PlcServer | None = None
    speed: float | None = Field(
        default=None, gt=0, le=1000,
        description="items per second the line is set to run at (PackML MachSpeed): the live "
                    "view shows the rate achieved against it")
    terminal_control: bool = Field(
        default=True,
        description="operators may command the line from the terminal (`codeline line "
                    "start|hold|...`) beside its PLC; false where the PLC alone commands it")

    def low_water(self, level: Level) -> int:
        """The low-water mark of ``level``'s pool (LowWaterMarks)."""
        marks = self.pool.low_water
        assert isinstance(marks, LowWaterMarks)
        per_case, per_pallet = self.packaging.items_per_case, self.packaging.cases_per_pallet
        if level == "item":
            return marks.item
        if level == "case":
            return marks.case if marks.case is not None else -(-marks.item // per_case)
        if marks.pallet is not None:
            return marks.pallet
        return -(-self.low_water("case") // per_pallet)

    @model_validator(mode="after")
    def _references(self) -> Line:
        _unique("device", [d.id for d in self.devices])
        _unique("station", [s.id for s in self.stations])
        devices = {d.id: d for d in self.devices}
        for station in self.stations:
            for role, families in _STATION_ROLES[station.kind].items():
                ref = getattr(station, role)
                device = devices.get(ref)
                if device is None:
                    raise ValueError(
                        f"station {station.id!r}: {role} {ref!r} is not a device of this line"
                    )
                if device.family not in families:
                    raise ValueError(
                        f"station {station.id!r}: {role} {ref!r} is a {device.family}, "
                        f"expected {' or '.join(families)}"
                    )
        kinds = [s.kind for s in self.stations]
        if "item_print" in kinds and "item_verify" not in kinds:
            raise ValueError("a line that prints items needs an item_verify station")
        return self


class Product(Strict):
    """A product a batch can run: its GTINs per level (optional) and shelf life."""

    id: Identifier
    name: str = Field(min_length=1, max_length=128)
    gtin_item: str | None = Field(default=None, pattern=r"^[0-9]{14}$")
    gtin_case: str | None = Field(default=None, pattern=r"^[0-9]{14}$")
    shelf_life_days: int | None = Field(default=None, ge=1, le=36_500)

    @field_validator("gtin_item", "gtin_case")
    @classmethod
    def _gtin_check_digit(cls, value: str | None) -> str | None:
        if value is not None and not ean.is_valid(value):
            raise ValueError(f"GTIN {value} has a wrong check digit")
        return value


class StoreSettings(Strict):
    """Where the SQLite database lives."""

    path: str = Field(default="codeline.db", min_length=1, max_length=1024)


class SiteInfo(Strict):
    """Who this site is, and where: its GLN names it (as owning party and as location) in
    every EPCIS event; its time zone gives the events' ``eventTimeZoneOffset``."""

    id: Identifier
    name: str = Field(default="", max_length=128)
    gln: str | None = Field(default=None, pattern=r"^[0-9]{13}$")
    timezone: str = Field(default="UTC", max_length=64)

    @field_validator("gln")
    @classmethod
    def _gln_check_digit(cls, value: str | None) -> str | None:
        if value is not None and not ean.is_valid(value):
            raise ValueError(f"GLN {value} has a wrong check digit")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai, "
                             "Europe/Berlin, UTC)") from None
        return value


class SiteConfig(Strict):
    """The whole configuration file."""

    site: SiteInfo
    store: StoreSettings = Field(default_factory=StoreSettings)
    products: list[Product] = Field(default_factory=list, max_length=10_000)
    lines: list[Line] = Field(min_length=1, max_length=32)
    sync: SyncSettings = Field(default_factory=SyncSettings)

    @model_validator(mode="after")
    def _site_rules(self) -> SiteConfig:
        _unique("line", [line.id for line in self.lines])
        _unique("product", [p.id for p in self.products])
        for line in self.lines:
            for level in ("item", "case"):
                fmt = line.codes.for_level(level)
                if fmt.symbology == "datamatrix":
                    missing = [p.id for p in self.products if getattr(p, f"gtin_{level}") is None]
                    if missing:
                        raise ValueError(
                            f"line {line.id!r} prints GS1 DataMatrix at {level} level, "
                            f"so every product needs gtin_{level}; missing: {', '.join(missing)}"
                        )
        no_shared_ports(self)
        return self

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise KeyError(line_id)

    def product(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise KeyError(product_id)


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"{what} id {ident!r} appears twice")
        seen.add(ident)
