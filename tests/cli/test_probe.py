"""`codeline probe DEVICE` connects to one configured device and prints what it reports."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from line_config.loading import example_path, load_config
from simulators.autoid import AutoIdReaderSim
from simulators.dmcc import DmccReaderSim
from simulators.items import ItemStream
from simulators.laser import LaserSim
from simulators.opcua_printer import OpcUaPrinterSim
from simulators.zpl import ZplPrinterSim

ROOT = Path(__file__).resolve().parents[2]


async def probe(config: Path, device: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "probe", device, "--config", str(config),
        "--json", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"})
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    # the report on stdout; a failure's message may be on either stream
    return proc.returncode, out.decode() if proc.returncode == 0 else (out + err).decode()


async def test_probe_reports_each_device_kind(tmp_path: Path) -> None:
    items = ItemStream()
    items.arrive("PROBE-0001")
    laser, opc, autoid = LaserSim(), OpcUaPrinterSim(), AutoIdReaderSim(items=items)
    dmcc, zpl = DmccReaderSim(items=ItemStream()), ZplPrinterSim()
    laser_at = (await laser.serve_tcp()).rsplit(":", 1)
    await opc.serve_tcp()
    await autoid.serve_tcp()
    dmcc_at = (await dmcc.serve_tcp()).rsplit(":", 1)
    zpl_at = (await zpl.serve_tcp()).rsplit(":", 1)
    data = load_config(example_path("simulated")).model_dump(mode="json")
    data["lines"][0]["devices"] += [
        {"id": "laser", "driver": "modbus_laser",
         "transport": {"kind": "modbus_tcp", "host": laser_at[0], "port": int(laser_at[1])}},
        {"id": "opc", "driver": "opcua_printer", "job": "J",
         "transport": {"kind": "opcua", "endpoint": opc.endpoint, "security": "none"}},
        {"id": "autoid", "driver": "autoid_opcua",
         "transport": {"kind": "opcua", "endpoint": autoid.endpoint, "security": "none"}},
        {"id": "dm", "driver": "dmcc",
         "transport": {"kind": "tcp", "host": dmcc_at[0], "port": int(dmcc_at[1])}},
        {"id": "zebra", "driver": "zpl",
         "transport": {"kind": "tcp", "host": zpl_at[0], "port": int(zpl_at[1])}},
        {"id": "gone", "driver": "dmcc",
         "transport": {"kind": "tcp", "host": "127.0.0.1", "port": 9, "connect_timeout_ms": 200}},
    ]
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump(data))
    try:
        code, out = await probe(config, "laser")
        assert code == 0, out
        report = json.loads(out)
        assert "LASER-SIM" in report["status"]["identity"]
        assert report["status"]["state"] == "stopped" and report["status"]["faults"] == []

        code, out = await probe(config, "opc")
        assert code == 0, out
        assert json.loads(out)["status"]["online"] is True

        code, out = await probe(config, "autoid")
        assert code == 0, out
        report = json.loads(out)
        assert report["status"]["device_status"] == "idle"
        assert report["read"]["data"] == "PROBE-0001"

        code, out = await probe(config, "dm")
        assert code == 0, out
        assert json.loads(out)["read"]["data"] is None  # nothing in front: a no-read

        code, out = await probe(config, "zebra")
        assert code == 0, out
        assert json.loads(out)["status"]["ready"] is True

        code, out = await probe(config, "gone")
        assert code == 1 and "gone" in out

        code, out = await probe(config, "nosuch")
        assert code != 0 and "no device 'nosuch'" in out and "laser" in out
    finally:
        for sim in (laser, opc, autoid, dmcc, zpl):
            await sim.stop()
