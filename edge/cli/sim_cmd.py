"""``codeline sim DEVICE``: run one device simulator on loopback (or a pty) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from pydantic import BaseModel, ValidationError

from edge.cli.context import UsageProblem, console

app = typer.Typer(help="Run a device simulator (prints where it listens).", no_args_is_help=True)

SetOpt = typer.Option([], "--set", help="a setting as KEY=VALUE (repeatable)")
PortOpt = typer.Option(0, "--port", min=0, max=65535, help="TCP port on 127.0.0.1 (0: any)")


def _settings(model: type[BaseModel], pairs: list[str]) -> Any:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        values[key.strip()] = value.strip()
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageProblem(f"bad simulator setting: {problems}") from None


def _serve(start: Callable[[], Awaitable[str]], stop: Callable[[], Awaitable[None]],
           what: str) -> None:
    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        where = await start()
        console.print(f"{what} listening on {where}", soft_wrap=True)
        try:
            await done.wait()
        finally:
            await stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@app.command("wsi")
def wsi(settings: list[str] = SetOpt,
        tcp: bool = typer.Option(False, "--tcp", help="serve TCP instead of a paced pty"),
        port: int = PortOpt) -> None:
    """Videojet CIJ printer (WSI): a pty paced at the baud rate, or TCP."""
    from simulators.wsi import WsiPrinterSim, WsiSettings

    sim = WsiPrinterSim(_settings(WsiSettings, settings))
    _serve((lambda: sim.serve_tcp(port)) if tcp else sim.serve_pty, sim.stop, "WSI printer")


@app.command("clarity")
def clarity(settings: list[str] = SetOpt, port: int = PortOpt) -> None:
    """CLARiTY TIJ/TTO printer with a serialization buffer (TCP)."""
    from simulators.clarity import ClarityPrinterSim, ClaritySettings

    sim = ClarityPrinterSim(_settings(ClaritySettings, settings))
    _serve(lambda: sim.serve_tcp(port), sim.stop, "CLARiTY printer")


@app.command("dmcc")
def dmcc(settings: list[str] = SetOpt, port: int = PortOpt) -> None:
    """Cognex DataMan reader (DMCC over TCP)."""
    from simulators.dmcc import DmccReaderSim, DmccSettings

    sim = DmccReaderSim(_settings(DmccSettings, settings))
    _serve(lambda: sim.serve_tcp(port), sim.stop, "DMCC reader")


@app.command("zpl")
def zpl(settings: list[str] = SetOpt, port: int = PortOpt) -> None:
    """ZPL label printer (raw TCP)."""
    from simulators.zpl import ZplPrinterSim, ZplSettings

    sim = ZplPrinterSim(_settings(ZplSettings, settings))
    _serve(lambda: sim.serve_tcp(port), sim.stop, "ZPL label printer")


@app.command("camera")
def camera(settings: list[str] = SetOpt, port: int = PortOpt) -> None:
    """Image camera rendering the symbols in front of it (frames over TCP)."""
    from simulators.camera import CameraSettings, CameraSim

    sim = CameraSim(_settings(CameraSettings, settings))
    _serve(lambda: sim.serve_tcp(port), sim.stop, "camera")
