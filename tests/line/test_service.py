"""``codeline run`` as a systemd service: the unit it prints passes systemd's own checker, and
the controller speaks the sd_notify protocol (datagrams to ``$NOTIFY_SOCKET``) to a socket
this test holds as systemd would: READY once the lines are up, WATCHDOG pings from the event
loop that stop when the loop stalls, STOPPING on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli.line_harness import stock_line
from tests.line.harness import site_config, start_controller

pytestmark = pytest.mark.timeout(120)

WATCHDOG_S = 1.0


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """The socket systemd would give the service (a short path: sun_path is 108 bytes)."""
    folder = tempfile.mkdtemp(prefix="sdn")
    path = f"{folder}/notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def messages(sock: socket.socket, seconds: float) -> list[tuple[float, dict[str, str]]]:
    """What the service sent within ``seconds``, with the time each arrived."""
    got: list[tuple[float, dict[str, str]]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        got.append((time.monotonic(), fields))
    return got


def controller(tmp_path: Path, notify: str, failpoints: str = "") -> subprocess.Popen[bytes]:
    config, config_path = site_config(tmp_path)
    stock_line(config, Path(config.store.path), {"item": 20}, "LOT1", 10, "test")
    env = {"NOTIFY_SOCKET": notify, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    if failpoints:
        env["CODELINE_FAILPOINTS"] = failpoints
    return start_controller(config_path, tmp_path / "controller.log", env)


def test_the_controller_says_ready_pings_the_watchdog_and_says_stopping(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    process = controller(tmp_path, path)
    try:
        got: list[tuple[float, dict[str, str]]] = []
        deadline = time.monotonic() + 60
        while not any(m.get("READY") == "1" for _, m in got) and time.monotonic() < deadline:
            got += messages(sock, 0.5)
            assert process.poll() is None, (tmp_path / "controller.log").read_text()
        ready = [m for _, m in got if m.get("READY") == "1"]
        assert ready and "line(s) up" in ready[0]["STATUS"]
        assert ready[0]["MAINPID"] == str(process.pid)
        pings = [at for at, m in messages(sock, 3) if m.get("WATCHDOG") == "1"]
        assert len(pings) >= 4
        assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < WATCHDOG_S
        process.send_signal(signal.SIGTERM)
        stopping = [m for _, m in messages(sock, 3) if m.get("STOPPING") == "1"]
        assert stopping
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_a_stalled_event_loop_stops_the_watchdog_pings(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    # The status writer passes every 0.5 s: the loop blocks about 3 s after start.
    process = controller(tmp_path, path, "loop.stall@6")
    try:
        got = messages(sock, 12)
        end = time.monotonic()
        assert process.poll() is None  # alive all along: only the loop is stuck
        pings = [at for at, m in got if m.get("WATCHDOG") == "1"]
        assert len(pings) >= 2  # it pinged before the stall
        silent = max(b - a for a, b in zip(pings, [*pings[1:], end], strict=True))
        assert silent > 4 * WATCHDOG_S  # systemd restarts a service silent for WATCHDOG_S
    finally:
        process.kill()
        process.wait(10)


def test_the_unit_printed_passes_systemds_checker(tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed (`.ci/setup --test` installs it)")
    _, config_path = site_config(tmp_path)
    unit = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "--config", str(config_path), "service",
         "unit", "--user", "root", "--name", "codeline-test"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "NotifyAccess=main"):
        assert line in unit.splitlines()
    assert f"--config {config_path.resolve()} run" in unit
    path = tmp_path / "codeline-test.service"
    path.write_text(unit)
    checked = subprocess.run([verify, "verify", str(path)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(unit.replace("Type=notify", "Type=notifyy"))
    refused = subprocess.run([verify, "verify", str(broken)], capture_output=True, text=True,
                             timeout=60)
    assert "notifyy" in refused.stderr  # the checker does read what it is given
