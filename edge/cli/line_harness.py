"""A simulated line and its controller on loopback, in one process: what ``codeline demo``
runs, and what tests and benchmarks start around a real ``codeline run`` process.

:func:`loopback_config` moves every device, the PLC server and the pull API of a config onto
free loopback ports and the database into a work folder, so that several runs never collide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from line_config.models import SiteConfig
from sync.serving import free_port


def loopback_config(config: SiteConfig, workdir: Path) -> SiteConfig:
    """``config`` with free loopback ports and its database in ``workdir``."""
    data: dict[str, Any] = config.model_dump(mode="python", exclude_none=False)
    data["store"]["path"] = str(workdir / "codeline.db")
    for line in data["lines"]:
        for device in line["devices"]:
            transport = device.get("transport", {})
            if "port" in transport:
                transport["host"] = "127.0.0.1"
                transport["port"] = free_port()
        if line.get("plc"):
            line["plc"]["host"] = "127.0.0.1"
            line["plc"]["port"] = free_port()
            line["plc"]["cert_dir"] = str(workdir / "pki")
    data["sync"]["api"]["port"] = free_port()
    data["sync"]["signing_key_file"] = str(workdir / "keys" / "manifest-signing.key")
    return SiteConfig.model_validate(data)


def plc_endpoint(config: SiteConfig, line_index: int = 0) -> str:
    plc = config.lines[line_index].plc
    if plc is None:
        raise ValueError(f"line {config.lines[line_index].id} has no plc section")
    return f"opc.tcp://{plc.host}:{plc.port}/codeline/"
