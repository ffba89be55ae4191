"""Every host and port a site's config names, and the rule that no two of them collide."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from line_config.devices import ModbusTransport, OpcUaTransport, SerialTransport, TcpTransport

if TYPE_CHECKING:
    from line_config.models import SiteConfig

WILDCARDS = ("0.0.0.0", "::", "")


def endpoints(config: SiteConfig) -> list[tuple[str, int, str, str]]:
    """(host, port, what sets it apart on that port, name) of every device the controller
    reaches and every server it listens with."""
    out: list[tuple[str, int, str, str]] = []
    for line in config.lines:
        for device in line.devices:
            t = device.transport
            name = f"line {line.id} device {device.id!r}"
            if isinstance(t, ModbusTransport):
                out.append((t.host, t.port, f"unit {t.unit}", name))
            elif isinstance(t, TcpTransport):
                out.append((t.host, t.port, "", name))
            elif isinstance(t, OpcUaTransport):
                url = urlsplit(t.endpoint)
                out.append((url.hostname or "", url.port or 4840, "", name))
            elif isinstance(t, SerialTransport) and t.port.startswith("socket://"):
                url = urlsplit(t.port)
                if url.hostname and url.port:
                    out.append((url.hostname, url.port, "", name))
        if line.plc is not None:
            out.append((line.plc.host, line.plc.port, "", f"line {line.id} PLC server"))
    out.append((config.sync.api.host, config.sync.api.port, "", "the pull API (sync.api)"))
    return out


def no_shared_ports(config: SiteConfig) -> None:
    """Two devices, or a device and a server, on one host and port: one of them would never
    be reached (or the server would not start). Modbus units behind one gateway may share."""
    def host(h: str) -> str:
        return "127.0.0.1" if h == "localhost" else h.strip("[]")

    seen: list[tuple[str, int, str, str]] = []
    for h, port, apart, name in endpoints(config):
        for h2, port2, apart2, name2 in seen:
            same_host = host(h) == host(h2) or host(h) in WILDCARDS or host(h2) in WILDCARDS
            if port == port2 and same_host and not (apart and apart2 and apart != apart2):
                raise ValueError(f"{name2} and {name} both use {h}:{port}: give each its own "
                                 "port (or host)")
        seen.append((h, port, apart, name))
