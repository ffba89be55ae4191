"""Device configuration: a driver kind with its own settings and a transport.

Each device is selected by its ``driver:`` field (a discriminated union); each driver accepts
only the transports it can speak, so a CIJ printer cannot be pointed at an OPC-UA endpoint.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from line_config.base import Identifier, Strict

Port = Annotated[int, Field(ge=1, le=65535)]
Millis = Annotated[int, Field(ge=1, le=600_000)]


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SerialTransport(Strict):
    """A serial port (``/dev/ttyUSB0``) or a pyserial URL such as ``socket://host:port``."""

    kind: Literal["serial"]
    port: str = Field(min_length=1, max_length=256, description="device path or pyserial URL")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @field_validator("port")
    @classmethod
    def _port_shape(cls, value: str) -> str:
        if "://" in value and not value.startswith(("socket://", "rfc2217://")):
            raise ValueError("a serial URL must start with socket:// or rfc2217://")
        if not value.startswith(("/", "socket://", "rfc2217://", "COM")):
            raise ValueError("expected a device path like /dev/ttyUSB0 or a socket://host:port URL")
        return value


class TcpTransport(Strict):
    """A raw TCP stream to the device."""

    kind: Literal["tcp"]
    host: str = Field(min_length=1, max_length=253)
    port: Port
    connect_timeout_ms: Millis = 3000


class ModbusTransport(Strict):
    """Modbus TCP: host, port and the unit (device id) behind it."""

    kind: Literal["modbus_tcp"]
    host: str = Field(min_length=1, max_length=253)
    port: Port = 502
    unit: int = Field(default=1, ge=0, le=247, description="Modbus unit / device id")
    timeout_ms: Millis = 1000


class OpcUaTransport(Strict):
    """An OPC-UA endpoint, with the security the plant runs it under."""

    kind: Literal["opcua"]
    endpoint: str = Field(min_length=12, max_length=512)
    security: Literal["none", "sign", "sign_encrypt"] = "sign_encrypt"
    username_env: str | None = Field(
        default=None, description="environment variable holding the user name"
    )
    password_env: str | None = Field(
        default=None, description="environment variable holding the password"
    )
    client_cert_file: str | None = None
    client_key_file: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_shape(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError("an OPC-UA endpoint starts with opc.tcp://")
        if not urlsplit(value).hostname:
            raise ValueError("the endpoint names no host")
        return value

    @model_validator(mode="after")
    def _credentials_pair(self) -> OpcUaTransport:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together")
        if self.security != "none" and self.client_cert_file is None:
            raise ValueError(
                f"security {self.security!r} needs client_cert_file and client_key_file"
            )
        return self


class DirectoryTransport(Strict):
    """Image files read from a folder, in name order (a camera replaced by files)."""

    kind: Literal["directory"]
    path: str = Field(min_length=1, max_length=1024)
    pattern: str = "*.png"


class VideoCaptureTransport(Strict):
    """An OpenCV VideoCapture source: a device index or a stream URL."""

    kind: Literal["videocapture"]
    source: int | str


Symbology = Literal["datamatrix", "qr", "code128"]
TcpOrSerial = Annotated[SerialTransport | TcpTransport, Field(discriminator="kind")]
CameraSource = Annotated[
    TcpTransport | DirectoryTransport | VideoCaptureTransport, Field(discriminator="kind")
]

FIELD_NAME = re.compile(r"^[A-Za-z0-9_ .-]{1,32}$")


class DeviceBase(Strict):
    """What every device has: an id unique on its line, and its reconnect policy."""

    id: Identifier
    reconnect_min_ms: Millis = 200
    reconnect_max_ms: Millis = 10_000

    @model_validator(mode="after")
    def _backoff_order(self) -> DeviceBase:
        if self.reconnect_min_ms > self.reconnect_max_ms:
            raise ValueError("reconnect_min_ms must not exceed reconnect_max_ms")
        return self


class WsiPrinter(DeviceBase):
    """Videojet 1000-line CIJ printer over the WSI protocol (serial or TCP port 3100)."""

    family: Literal["printer"] = "printer"
    driver: Literal["wsi"]
    transport: TcpOrSerial
    message: str = Field(min_length=1, max_length=32, description="message selected for the job")
    field: str = Field(default="1", min_length=1, max_length=8, description="user field id")
    counter_poll_ms: Millis = 20


class ClarityPrinter(DeviceBase):
    """Queued TIJ/TTO printer over the CLARiTY text protocol (TCP)."""

    family: Literal["printer"] = "printer"
    driver: Literal["clarity"]
    transport: TcpTransport
    job: str = Field(min_length=1, max_length=64)
    field: str = Field(default="SERIAL", pattern=FIELD_NAME.pattern)
    low_water: int = Field(default=50, ge=1, le=10_000)
    high_water: int = Field(default=150, ge=2, le=10_000)

    @model_validator(mode="after")
    def _watermarks(self) -> ClarityPrinter:
        if self.low_water >= self.high_water:
            raise ValueError("low_water must be below high_water")
        return self


class ModbusLaser(DeviceBase):
    """Laser marker over Modbus TCP (our register map, PROTOCOLS.md section 3)."""

    family: Literal["printer"] = "printer"
    driver: Literal["modbus_laser"]
    transport: ModbusTransport
    field_id: int = Field(default=1, ge=0, le=65535)
    handshake_timeout_ms: Millis = 500
    queue_target: int = Field(default=12, ge=1, le=16, description="texts kept queued (max 16)")


class OpcUaPrinter(DeviceBase):
    """Printer exposing our OPC-UA ``Printer`` object."""

    family: Literal["printer"] = "printer"
    driver: Literal["opcua_printer"]
    transport: OpcUaTransport
    job: str = Field(min_length=1, max_length=64)
    queue_target: int = Field(default=200, ge=1, le=100_000)


class DmccReader(DeviceBase):
    """Cognex DataMan reader over DMCC (TCP)."""

    family: Literal["reader"] = "reader"
    driver: Literal["dmcc"]
    transport: TcpTransport
    noread_string: str = Field(default="NOREAD", min_length=1, max_length=32)
    extended_response: bool = True
    extended_data: Literal["text", "base64"] = Field(
        default="text", description="read data in extended mode: plain text (current "
                                    "firmware) or base64 (RFC 2045, older firmware)")
    grade_block: bool = Field(default=True, description="the reader appends its print-quality "
                              "grade block to each read (a verifying reader); false: the "
                              "whole payload is data")


class KeyenceReader(DeviceBase):
    """Keyence SR reader (TCP)."""

    family: Literal["reader"] = "reader"
    driver: Literal["keyence_sr"]
    transport: TcpTransport
    error_string: str = Field(default="ERROR", min_length=1, max_length=32)


class AutoIdReader(DeviceBase):
    """Optical reader per OPC 30010 AutoID, reached over OPC-UA."""

    family: Literal["reader"] = "reader"
    driver: Literal["autoid_opcua"]
    transport: OpcUaTransport
    device_name: str = Field(default="Reader", min_length=1, max_length=64)


class Camera(DeviceBase):
    """An image camera with a decoder backend: frames in, decoded symbols out."""

    family: Literal["camera"] = "camera"
    driver: Literal["camera"]
    transport: CameraSource
    decoder: Literal["zxing", "pyzbar", "opencv"] = "zxing"
    symbologies: list[Symbology] = Field(
        default_factory=lambda: list[Symbology](["datamatrix"]), min_length=1, max_length=3
    )
    try_rotate: bool = True
    try_invert: bool = False
    try_downscale: bool = Field(
        default=True, description="also search downscaled images (large modules under noise)"
    )
    decode_workers: int = Field(
        default=1, ge=1, le=8,
        description="processes decoding frames, shared by every camera of the controller "
                    "(the largest value configured wins)")

    @model_validator(mode="after")
    def _decoder_supports(self) -> Camera:
        if self.decoder in ("pyzbar", "opencv") and "datamatrix" in self.symbologies:
            raise ValueError(f"decoder {self.decoder!r} cannot read DataMatrix: use zxing")
        if self.decoder == "opencv" and self.symbologies != ["qr"]:
            raise ValueError("decoder 'opencv' reads QR only")
        return self


class ZplLabelPrinter(DeviceBase):
    """Label printer taking ZPL over raw TCP (port 9100)."""

    family: Literal["label_printer"] = "label_printer"
    driver: Literal["zpl"]
    transport: TcpTransport
    dpi: Literal[203, 300, 600] = Field(default=203, description="print resolution: labels "
                                        "are laid out at 203 dpi and scaled to keep their size")
    confirm_timeout_ms: Millis = 5000


Device = Annotated[
    WsiPrinter
    | ClarityPrinter
    | ModbusLaser
    | OpcUaPrinter
    | DmccReader
    | KeyenceReader
    | AutoIdReader
    | Camera
    | ZplLabelPrinter,
    Field(discriminator="driver"),
]

DeviceFamily = Literal["printer", "reader", "camera", "label_printer"]
