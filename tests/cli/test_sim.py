"""`codeline sim DEVICE` starts a real simulator process that a driver can talk to."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from drivers.printers.clarity import ClarityPrinter
from drivers.printers.wsi import WsiPrinter
from line_config.devices import ClarityPrinter as ClarityConfig
from line_config.devices import WsiPrinter as WsiConfig

ROOT = Path(__file__).resolve().parents[2]


async def launch(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "sim", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode()
    match = re.search(r"listening on (\S+)", line)
    assert match, line
    return proc, match.group(1)


async def finish(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        await proc.wait()
    assert proc.returncode == 0


async def test_sim_clarity_serves_a_real_printer() -> None:
    proc, where = await launch("clarity", "--set", "print_rate=500")
    host, port = where.rsplit(":", 1)
    driver = ClarityPrinter(ClarityConfig(id="p", driver="clarity", job="J",
                                          transport={"kind": "tcp", "host": host,
                                                     "port": int(port)}))
    try:
        await driver.connect(attempts=5)
        await driver.send(["A1", "A2", "A3"])
        await asyncio.sleep(0.05)
        await driver.start()
        printed = [await driver.event_stream.next(5) for _ in range(3)]
        assert [getattr(e, "code", None) for e in printed] == ["A1", "A2", "A3"]
    finally:
        await driver.close()
        await finish(proc)


async def test_sim_wsi_listens_on_a_pty() -> None:
    proc, path = await launch("wsi", "--set", "print_on_update=true")
    assert path.startswith("/dev/pts/")
    driver = WsiPrinter(WsiConfig(id="cij", driver="wsi", message="M",
                                  transport={"kind": "serial", "port": path,
                                             "baudrate": 115200}))
    try:
        await driver.connect(attempts=5)
        assert driver.identity.startswith("Videojet")
    finally:
        await driver.close()
        await finish(proc)


@pytest.mark.parametrize("device", ["dmcc", "keyence", "zpl", "camera"])
async def test_every_simulator_starts_and_stops(device: str) -> None:
    proc, where = await launch(device)
    assert where.startswith("127.0.0.1:")
    await finish(proc)


async def test_sim_cloud_answers_scans(tmp_path: Path) -> None:
    from sync import keys

    public = keys.generate(tmp_path / "k.pem")
    (tmp_path / "pub.pem").write_text(keys.public_pem(public))
    (tmp_path / "issued.txt").write_text("ISSUED1\nISSUED2\n")
    proc, where = await launch("cloud", "--public-key", str(tmp_path / "pub.pem"),
                               "--db", str(tmp_path / "cloud.db"), "--issued",
                               str(tmp_path / "issued.txt"))
    try:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://{where.rstrip(',')}") as client:
            assert (await client.get("/scan/ISSUED1")).json() == {"result": "not_activated"}
            assert (await client.get("/scan/OTHER")).json() == {"result": "unknown"}
    finally:
        await finish(proc)


async def test_a_bad_setting_names_the_field() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli.main", "sim", "clarity", "--set", "print_rate=fast",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 1 and b"print_rate" in err and b"Traceback" not in err


def test_a_port_already_taken_is_one_error_line_naming_the_device(tmp_path: Path) -> None:
    import socket
    import subprocess

    import yaml

    from edge.cli.line_harness import loopback_config
    from line_config.loading import example_path, load_config

    config = loopback_config(load_config(example_path("simulated")), tmp_path)
    config_path = tmp_path / "line.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    printer = config.lines[0].devices[0]
    port = printer.transport.port  # type: ignore[union-attr]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "edge.cli.main", "--config",
                               str(config_path), "sim", "line"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
        single = subprocess.run([sys.executable, "-m", "edge.cli.main", "sim", "clarity",
                                 "--port", str(port)], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    for run, names in ((done, f"simulated device {printer.id} cannot listen on "
                               f"127.0.0.1:{port}: "),
                       (single, "CLARiTY printer cannot listen: ")):
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: " + names), run.stderr
        assert "in use" in lines[0]
