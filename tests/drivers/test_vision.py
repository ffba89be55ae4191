"""Decoders on rendered images, the grade approximation, and cameras over real transports."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from drivers.errors import ConnectionLost, DriverError
from drivers.vision.cameras import DirectoryCamera, TcpCamera
from drivers.vision.decode_process import DecodePool
from drivers.vision.decoders import OpenCvQrDecoder, PyzbarDecoder, ZxingDecoder
from drivers.vision.grading import grade_region
from edge.daemon.devices import device_up
from line_config.devices import Camera as CameraConfig
from simulators.camera import CameraSettings, CameraSim, compose
from simulators.items import ItemStream
from tests.drivers.helpers import tcp

GS = "\x1d"
DM = ["0116901234567899" + f"10L7{GS}21SER{i:08d}" for i in range(30)]
QR = [f"https://c.example.com/q/SER{i:08d}" for i in range(30)]


def read_rate(decoder: object, payloads: list[str], settings: CameraSettings) -> float:
    rng = random.Random(settings.seed)
    hits = 0
    for payload in payloads:
        found = decoder.decode(compose([payload], settings, rng))  # type: ignore[attr-defined]
        hits += any(s.data == payload for s in found)
    return hits / len(payloads)


@pytest.mark.parametrize("module_px", [3, 5, 8])
@pytest.mark.parametrize("degradation", [
    {}, {"noise": 10.0}, {"blur": 0.8}, {"contrast": 0.5}, {"rotation": 30.0}, {"skew": 0.05},
])
def test_zxing_reads_gs1_datamatrix_at_sizes_and_degradations(
    module_px: int, degradation: dict[str, float]
) -> None:
    settings = CameraSettings(symbology="datamatrix", module_px=module_px, **degradation)
    assert read_rate(ZxingDecoder(["datamatrix"]), DM[:10], settings) == 1.0


@pytest.mark.parametrize("decoder, minimum", [
    (ZxingDecoder(["qr"]), 1.0), (PyzbarDecoder(["qr"]), 1.0), (OpenCvQrDecoder(), 0.8),
], ids=["zxing", "pyzbar", "opencv"])
def test_qr_read_rate_per_backend(decoder: object, minimum: float) -> None:
    settings = CameraSettings(symbology="qr", module_px=5, noise=8.0, blur=0.6)
    assert read_rate(decoder, QR[:10], settings) >= minimum


def test_gs1_data_keeps_its_group_separators() -> None:
    found = ZxingDecoder(["datamatrix"]).decode(compose([DM[0]], CameraSettings(),
                                                        random.Random(0)))
    assert [s.data for s in found] == [DM[0]] and found[0].symbology == "datamatrix"


def test_a_case_top_view_reads_all_24_codes() -> None:
    settings = CameraSettings(width=1280, height=960, per_frame=24, module_px=4, noise=5.0)
    frame = compose(DM[:24], settings, random.Random(3))  # type: ignore[arg-type]
    found = ZxingDecoder(["datamatrix"], try_rotate=False).decode(frame)
    assert sorted(s.data for s in found) == sorted(DM[:24])


def test_a_case_of_qr_codes_shows_no_phantom_micro_qr() -> None:
    # Twelve item codes of the plant example, laid out as the case camera sees them: read as
    # any QR family member, a finder pattern among them decodes as Micro QR "235".
    serials = ["29ESHLYVRTWXV", "7LYLZ6B78TDRD", "6V3GVD7X5FRP9", "BG2YCZLEJJX4M",
               "N6YWY5RXZR3QE", "B66MUUNJK9SG7", "YADQHL7CWRWFT", "5LJ2PDLSLFMQZ",
               "LJWFFFMS429RS", "QG64GRUNPM5KJ", "XSS4K4HJ5SFPX", "KSM8ECWJ3V4PC"]
    payloads = [f"https://id.example.com/01/06912345678902/21/{s}" for s in serials]
    settings = CameraSettings(symbology="qr", per_frame=12, width=1600, height=1200,
                              module_px=4)
    frame = compose(payloads, settings, random.Random(0))  # type: ignore[arg-type]
    found = ZxingDecoder(["qr"]).decode(frame)
    assert sorted(s.data for s in found) == sorted(payloads)
    assert {s.symbology for s in found} == {"qr"}


def test_grade_falls_with_contrast_and_blur() -> None:
    decoder = ZxingDecoder(["datamatrix"])
    grades = {}
    for name, extra in {"clean": {}, "faded": {"contrast": 0.45}, "washed": {"contrast": 0.3},
                        "blurred": {"blur": 2.0}}.items():
        symbol = decoder.decode(compose([DM[1]], CameraSettings(module_px=8, **extra),
                                        random.Random(0)))[0]
        grades[name] = symbol.grade
        assert symbol.grade == grade_region(compose([DM[1]], CameraSettings(module_px=8, **extra),
                                                    random.Random(0)), symbol.corners)[0]
    assert grades["clean"] == "A"
    assert grades["faded"] in ("C", "D") and grades["washed"] in ("D", "F")
    assert grades["blurred"] != "A"


async def test_tcp_camera_sees_the_items_in_front_of_it() -> None:
    items = ItemStream()
    for payload in DM[:3]:
        items.arrive(payload)
    items.arrive(None)  # an item that got no print
    sim = CameraSim(CameraSettings(noise=6.0), items)
    where = await sim.serve_tcp()
    camera = TcpCamera(CameraConfig(id="cam", driver="camera", transport=tcp(where)))
    decoder = ZxingDecoder(["datamatrix"])
    try:
        await camera.connect()
        reads = []
        for _ in range(4):
            frame = await camera.grab()
            assert frame.shape == (480, 640)
            reads.append([s.data for s in decoder.decode(frame)])
        assert reads == [[DM[0]], [DM[1]], [DM[2]], []]
    finally:
        await camera.close()
        await sim.stop()


async def test_directory_camera_replays_images(tmp_path: Path) -> None:
    for k in range(2):
        cv2.imwrite(str(tmp_path / f"f{k}.png"), compose([QR[k]], CameraSettings(symbology="qr"),
                                                         random.Random(k)))
    camera = DirectoryCamera(CameraConfig(id="replay", driver="camera", symbologies=["qr"],
                                          transport={"kind": "directory", "path": str(tmp_path)}))
    await camera.connect()
    decoder = ZxingDecoder(["qr"])
    assert [decoder.decode(await camera.grab())[0].data for _ in range(2)] == QR[:2]


async def test_frames_are_decoded_in_a_worker_process_that_comes_back_after_a_crash() -> None:
    config = CameraConfig(id="case-camera", driver="camera",
                          transport={"kind": "directory", "path": "/nowhere"})
    pool = DecodePool()
    decoder = pool.decoder(config)
    settings = CameraSettings(width=1280, height=960, per_frame=24, module_px=4)
    frame = compose(DM[:24], settings, random.Random(3))  # type: ignore[arg-type]
    assert sorted(s.data for s in await decoder.decode(frame)) == sorted(DM[:24])
    worker = pool.worker_pid()
    assert worker is not None and worker != os.getpid()
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(DriverError, match="decoding process died"):
        await decoder.decode(frame)
    assert len(await decoder.decode(frame)) == 24  # a fresh process
    fresh = pool.worker_pid()
    assert fresh is not None and fresh != worker
    await asyncio.to_thread(pool.close)  # the runtime closes its pool when it stops
    assert not alive(fresh)
    with pytest.raises(DriverError, match="closed"):
        await decoder.decode(frame)


def test_the_decoding_worker_ends_when_its_controller_is_killed() -> None:
    script = (
        "import asyncio\n"
        "from drivers.vision.decode_process import DecodePool\n"
        "from line_config.devices import Camera\n"
        "async def main():\n"
        "    config = Camera(id='c', driver='camera', transport={'kind': 'directory', "
        "'path': '/nowhere'})\n"
        "    pool = DecodePool()\n"
        "    await pool.decoder(config).warm_up()\n"
        "    print(pool.worker_pid(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n")
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          text=True) as controller:
        try:
            assert controller.stdout is not None
            worker = int(controller.stdout.readline())
            assert alive(worker)
        finally:
            controller.kill()
            controller.wait(10)
    for _ in range(50):
        if not alive(worker):
            break
        time.sleep(0.1)
    assert not alive(worker), "the decoding worker outlived its killed controller"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_a_tcp_camera_reports_its_link_down_and_back_like_every_driver() -> None:
    items = ItemStream()
    for payload in DM[:3]:
        items.arrive(payload)
    sim = CameraSim(CameraSettings(), items)
    where = await sim.serve_tcp()
    port = int(where.rsplit(":", 1)[1])
    camera = TcpCamera(CameraConfig(id="case-cam", driver="camera", transport=tcp(where),
                                    reconnect_min_ms=20, reconnect_max_ms=100))
    try:
        assert not device_up(camera)  # not connected yet
        await camera.connect()
        await camera.grab()
        assert device_up(camera)
        await sim.stop()  # the camera goes away
        with pytest.raises(ConnectionLost, match="camera case-cam: the camera closed the link"):
            await camera.grab()
        assert not device_up(camera)
        with pytest.raises(ConnectionLost, match="camera case-cam: cannot connect"):
            await camera.grab()
        assert not device_up(camera)
        await sim.serve_tcp(port)  # back on the same port
        assert (await camera.grab()).shape == (480, 640)
        assert device_up(camera) and camera.reconnects == 1
    finally:
        await camera.close()
        await sim.stop()
