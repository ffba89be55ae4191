"""``codeline sim DEVICE``: run one device simulator on loopback (or a pty) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError

from edge.cli.commands import summary
from edge.cli.context import UsageProblem, console
from edge.domain.errors import CodelineError

app = typer.Typer(help=summary("sim"), no_args_is_help=True)

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
        raise UsageProblem("bad simulator setting: {problems}", problems=problems) from None


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

    with contextlib.suppress(KeyboardInterrupt), _listening(what):
        asyncio.run(main())


@contextlib.contextmanager
def _listening(what: str) -> Iterator[None]:
    """A port the simulator cannot listen on is one line naming it, not a traceback."""
    try:
        yield
    except OSError as exc:
        text = exc.strerror or str(exc)
        if "cannot listen" in text:
            raise SimulatorRefused("{text}", text=text) from None
        raise SimulatorRefused("{what} cannot listen: {text}", what=what, text=text) from None


class SimulatorRefused(CodelineError):
    """A simulator could not start (its port is taken, say)."""


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


@app.command("keyence")
def keyence(settings: list[str] = SetOpt, port: int = PortOpt) -> None:
    """Keyence SR reader (TCP)."""
    from simulators.keyence import KeyenceReaderSim, KeyenceSettings

    sim = KeyenceReaderSim(_settings(KeyenceSettings, settings))
    _serve(lambda: sim.serve_tcp(port), sim.stop, "Keyence SR reader")


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


@app.command("cloud")
def cloud(
    public_key: Path = typer.Option(..., "--public-key", help="the site's public key (PEM)"),
    db: Path = typer.Option(Path("cloud.db"), "--db", help="the cloud's own registry"),
    edge: str | None = typer.Option(None, "--edge", help="pull from this edge API URL"),
    token_env: str = typer.Option("CODELINE_CLOUD_TOKEN", "--token-env",
                                  help="variable holding the edge API token (for --edge)"),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="seconds between pulls"),
    segment: Path | None = typer.Option(None, "--issued", help="file of serials the cloud "
                                        "issued to the site (one per line)"),
    port: int = PortOpt,
) -> None:
    """The brand's cloud: pulls (or receives pushed) manifests, answers consumer scans."""
    import os

    import uvicorn

    from simulators.cloud import Cloud, create_app
    from sync.keys import load_public

    registry = Cloud(db, load_public(public_key.read_bytes()))
    if segment is not None:
        registry.issue([s.strip() for s in segment.read_text().splitlines() if s.strip()])
    token = os.environ.get(token_env, "")
    if edge and not token:
        raise UsageProblem("--edge needs the API token in ${token_env}",
                           token_env=token_env)

    async def main() -> None:
        server = uvicorn.Server(uvicorn.Config(create_app(registry), host="127.0.0.1",
                                               port=port or 0, log_level="warning"))
        # Stop on SIGINT/SIGTERM like the other simulators (and exit 0), not uvicorn's way.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        puller = (asyncio.create_task(registry.pull_forever(edge, token, interval))
                  if edge else None)
        serving = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname() if server.servers else ("?", port)
        console.print(f"cloud listening on {bound[0]}:{bound[1]}"
                      + (f", pulling from {edge}" if edge else ""), soft_wrap=True)
        try:
            await serving
        finally:
            if puller is not None:
                puller.cancel()
                await asyncio.gather(puller, return_exceptions=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@app.command("line")
def line(
    ctx: typer.Context,
    settings: list[str] = SetOpt,
    line_id: str | None = typer.Option(None, "--line", help="line id (default: the first)"),
    batch: str | None = typer.Option(None, "--batch", help="have the PLC start this batch "
                                     "(id or lot) once the controller is up"),
    plc_user: str | None = typer.Option(None, "--plc-user", help="PLC login user"),
    plc_password_env: str | None = typer.Option(
        None, "--plc-password-env", help="environment variable holding the PLC user's password"),
    plc_security: str = typer.Option("none", "--plc-security",
                                     help="none, sign or sign_encrypt"),
    plc_cert_dir: Path = typer.Option(
        Path("plc-sim-pki"), "--plc-cert-dir", help="the simulated PLC's certificate folder"),
    record: Path | None = typer.Option(None, "--record", help="at exit, write what "
                                       "physically happened (items, cases, pallets) to this "
                                       "JSON file"),
) -> None:
    """A whole simulated line from the config: devices, conveyor, and the PLC."""
    import os

    from edge.cli.context import ctx_of
    from simulators.line import LineSimSettings, SimLine
    from simulators.plc import PlcSecurity, PlcSim

    c = ctx_of(ctx)
    chosen = c.line(line_id)
    if chosen.plc is None:
        raise UsageProblem("line {chosen_id} has no plc: section; the PLC needs its endpoint",
                           chosen_id=chosen.id)
    if plc_security not in ("none", "sign", "sign_encrypt"):
        raise typer.BadParameter("expected none, sign or sign_encrypt",
                                 param_hint="--plc-security")
    sim_settings = _settings(LineSimSettings, settings)
    security = PlcSecurity(plc_security, plc_cert_dir, plc_user,
                           os.environ.get(plc_password_env) if plc_password_env else None)
    endpoint = f"opc.tcp://{chosen.plc.host}:{chosen.plc.port}/codeline/"

    happened: dict[str, Any] = {}

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        sim = SimLine(chosen, sim_settings)
        await sim.start()
        plc = PlcSim(endpoint, chosen.id, sim, security)
        plc_task = asyncio.create_task(plc.run())
        for device_id, port in sim.ports.items():
            console.print(f"  {device_id} on 127.0.0.1:{port}")
        console.print(f"line {chosen.id} simulated; PLC connects to {endpoint}", soft_wrap=True)
        if batch is not None:
            async def start() -> None:
                await plc.run_batch(batch)
                console.print(f"PLC started batch {batch}")
            asyncio.create_task(start())
        try:
            await done.wait()
        finally:
            plc_task.cancel()
            await sim.stop()
            console.print(f"rejected at the gate: {plc.rejected_requested} requested, "
                          f"{plc.rejected_no_verdict} without verdict; {len(sim.cases)} cases, "
                          f"{len(sim.pallets)} pallets left the line")
            happened.update(sim.record())

    with contextlib.suppress(KeyboardInterrupt), _listening(f"line {chosen.id}"):
        asyncio.run(main())
    if record is not None and happened:
        record.write_text(json.dumps(happened))
