"""Device throughput against the simulators: ``python -m bench.devices``.

Prints CLARiTY print confirmations/s over TCP, WSI prints/s over a pty paced at 115200 baud
with the share of the link's frame budget it uses (the simulated printer runs in its own
process, ``codeline sim wsi``, as a real one would: it does not share the driver's event
loop), decode frames/s per backend for 640×480 single-code frames, and ms per 24-code case
image. ``--only clarity|wsi|decoding`` runs one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time

from drivers.interfaces import Printed
from drivers.printers.clarity import ClarityPrinter
from drivers.printers.wsi import WsiPrinter
from drivers.vision.decoders import OpenCvQrDecoder, PyzbarDecoder, ZxingDecoder
from line_config.devices import ClarityPrinter as ClarityConfig
from line_config.devices import WsiPrinter as WsiConfig
from simulators.camera import CameraSettings, compose
from simulators.clarity import ClarityPrinterSim, ClaritySettings

GS = "\x1d"


async def clarity_at(rate: int, n: int) -> float | None:
    """Prints/s achieved with products arriving at ``rate``/s; None if the buffer ran dry."""
    sim = ClarityPrinterSim(ClaritySettings(print_rate=rate, max_records=5000))
    host, port = (await sim.serve_tcp()).rsplit(":", 1)
    driver = ClarityPrinter(ClarityConfig(id="bench", driver="clarity", job="J",
                                          transport={"kind": "tcp", "host": host,
                                                     "port": int(port)},
                                          low_water=1000, high_water=3000))
    await driver.connect(attempts=3)
    codes = [f"B{i:09d}" for i in range(n)]
    await driver.send(codes)
    await asyncio.sleep(0.3)  # let the buffer fill before the line starts
    start = time.perf_counter()
    await driver.start()
    done = 0
    try:
        while done < n:
            event = await driver.event_stream.next(2)
            if isinstance(event, Printed):
                done += 1
            elif getattr(event, "code", None) == "NODATA":
                return None
    except TimeoutError:
        return None
    finally:
        await driver.close()
        await sim.stop()
    took = time.perf_counter() - start
    assert sim.items.printed() == codes
    return n / took


async def clarity(n: int) -> None:
    best = None
    for rate in (1000, 2000, 5000, 10000, 20000):
        achieved = await clarity_at(rate, min(n, rate * 3))
        if achieved is None:
            print(f"CLARiTY over TCP      products at {rate:,}/s: the buffer ran dry")
            break
        best = achieved
        print(f"CLARiTY over TCP      products at {rate:,}/s: {achieved:,.0f} prints/s "
              "confirmed, every PRC accounted in order")
    print(f"CLARiTY sustained     {best or 0:,.0f} prints/s")


async def wsi(n: int, baud: int) -> None:
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from edge.cli.main import run; run()", "sim", "wsi",
        "--set", "print_on_update=true", "--set", f"baud={baud}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"})
    assert sim.stdout is not None
    async with asyncio.timeout(30):
        said = (await sim.stdout.readline()).decode()
    if "listening on " not in said:
        raise RuntimeError(f"the WSI simulator did not start: {said}")
    path = said.rsplit("listening on ", 1)[1].strip()
    driver = WsiPrinter(WsiConfig(id="bench", driver="wsi", message="M", counter_poll_ms=1,
                                  transport={"kind": "serial", "port": path,
                                             "baudrate": baud}))
    await driver.connect(attempts=3)
    await driver.start()
    bytes_before = driver.bytes_sent + driver.bytes_received
    codes = [f"C{i:07d}" for i in range(n)]
    start = time.perf_counter()
    await driver.send(codes)
    done = 0
    while done < n:
        if isinstance(await driver.event_stream.next(10), Printed):
            done += 1
    took = time.perf_counter() - start
    used = driver.bytes_sent + driver.bytes_received - bytes_before
    per_print = used / n
    budget = baud / 10 / per_print
    rate = n / took
    print(f"WSI over pty @ {baud}   {rate:>8,.0f} prints/s  ({per_print:.0f} bytes a print "
          f"both ways; the link allows {budget:,.0f}/s: {rate / budget:.0%} of the budget)")
    await driver.close()
    sim.terminate()
    await sim.wait()


def decoding(frames: int) -> None:
    rng = random.Random(1)
    dm = ["0116901234567899" + f"10L7{GS}21SER{i:08d}" for i in range(frames)]
    qr = [f"https://c.example.com/q/SER{i:08d}" for i in range(frames)]
    noisy = {"noise": 8.0, "blur": 0.6}
    dm_frames = [compose([p], CameraSettings(module_px=5, **noisy), rng) for p in dm]
    qr_frames = [compose([p], CameraSettings(symbology="qr", module_px=4, **noisy), rng)
                 for p in qr]
    backends = [
        ("zxing DataMatrix, upright only", ZxingDecoder(["datamatrix"], try_rotate=False,
                                                        try_downscale=False), dm_frames, dm),
        ("zxing DataMatrix, any angle", ZxingDecoder(["datamatrix"]), dm_frames, dm),
        ("zxing QR", ZxingDecoder(["qr"], try_rotate=False, try_downscale=False), qr_frames, qr),
        ("pyzbar QR", PyzbarDecoder(["qr"]), qr_frames, qr),
        ("OpenCV QR (ArUco)", OpenCvQrDecoder(), qr_frames, qr),
    ]
    for name, decoder, images, truth in backends:
        start = time.perf_counter()
        hits = 0
        for image, payload in zip(images, truth, strict=True):
            hits += any(s.data == payload for s in decoder.decode(image))  # type: ignore[attr-defined]
        took = time.perf_counter() - start
        print(f"decode 640x480 {name:<32} {frames / took:>7,.0f} frames/s  "
              f"({took / frames * 1000:.1f} ms, read rate {hits / frames:.0%})")
    case = CameraSettings(width=1280, height=960, per_frame=24, module_px=4, noise=5.0)
    timings = []
    read = 0
    for k in range(10):
        payloads = ["0116901234567899" + f"10L7{GS}21C{k:03d}{i:06d}" for i in range(24)]
        image = compose(payloads, case, rng)  # type: ignore[arg-type]
        start = time.perf_counter()
        found = ZxingDecoder(["datamatrix"], try_rotate=False).decode(image)
        timings.append(time.perf_counter() - start)
        read += len({s.data for s in found} & set(payloads))
    print(f"decode 24-code case image 1280x960 (zxing)  p50 {statistics.median(timings) * 1000:.1f}"
          f" ms, max {max(timings) * 1000:.1f} ms  ({read} of 240 codes read)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prints", type=int, default=20_000)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--only", choices=("clarity", "wsi", "decoding"))
    args = parser.parse_args()
    if args.only in (None, "clarity"):
        asyncio.run(clarity(args.prints))
    if args.only in (None, "wsi"):
        asyncio.run(wsi(max(200, args.prints // 40), 115200))
    if args.only in (None, "decoding"):
        decoding(args.frames)


if __name__ == "__main__":
    main()
