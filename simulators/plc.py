"""A PLC: an OPC-UA client of the controller that runs the simulated line.

It follows the controller's PackML state (infeed on only in Execute), fires the reject gate
by item number from ``Reject.Verdicts`` (an item not yet judged when it reaches the gate is
rejected: fail-safe), moves sealed cases and pallets on when the release counters step, and
sends PackML commands. Item numbers restart at 1 with every epoch the controller publishes
(``Reject.Verdicts[0]``), so it keeps one record per epoch, starting at the products counted so
far; a reconnect to the same epoch continues it. After a lost session it stops the infeed and,
on reconnecting, lets the conveyor run empty before starting again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import UaError
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.items import Item
from simulators.line import SimLine

log = logging.getLogger("codeline.sim.plc")

NAMESPACE = "urn:codeline:plc"
STOPPED, IDLE, EXECUTE, COMPLETING, COMPLETE, HELD = 2, 4, 6, 16, 17, 11
CLIENT_URI = "urn:codeline:plc-simulator"


@dataclass
class Session:
    """What the PLC knows of one numbering epoch: where its item numbers start."""

    epoch: int
    base: int
    judged_through: int = 0
    rejects: set[int] = field(default_factory=set)


@dataclass
class PlcSecurity:
    """How the PLC connects: message security, its certificate, and a user."""

    mode: str = "none"  # none | sign | sign_encrypt
    cert_dir: Path | None = None
    username: str | None = None
    password: str | None = None

    async def certificate(self) -> tuple[Path, Path]:
        """The PLC's client certificate and key, made in ``cert_dir`` on first use."""
        if self.cert_dir is None:
            raise ValueError("a PLC with message security needs a cert_dir")
        cert, key = self.cert_dir / "plc-cert.der", self.cert_dir / "plc-key.pem"
        await asyncio.to_thread(self.cert_dir.mkdir, parents=True, exist_ok=True)
        await setup_self_signed_certificate(
            key, cert, CLIENT_URI, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "codeline PLC simulator"})
        return cert, key

    async def client(self, endpoint: str) -> Client:
        """A client of ``endpoint`` set up as this PLC connects (security, certificate, user)."""
        client = Client(endpoint, timeout=4)
        client.application_uri = CLIENT_URI
        if self.mode != "none":
            cert, key = await self.certificate()
            mode = ua.MessageSecurityMode.SignAndEncrypt if self.mode == "sign_encrypt" \
                else ua.MessageSecurityMode.Sign
            await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                                      mode=mode)
        if self.username:
            client.set_user(self.username)
            client.set_password(self.password or "")
        return client


class PlcSim:
    """The PLC of one simulated line."""

    def __init__(self, endpoint: str, line_id: str, line: SimLine,
                 security: PlcSecurity | None = None) -> None:
        self.endpoint = endpoint
        self.line_id = line_id
        self.line = line
        self.security = security or PlcSecurity()
        self.client: Client | None = None
        self.sessions: list[Session] = []
        self.state = 0
        self.state_name = ""
        self.alarm = ""
        self.lot = ""
        self.releases = {"case": 0, "pallet": 0}
        self.rejected_requested = 0
        self.rejected_no_verdict = 0
        self.connected = asyncio.Event()
        self.state_changed = asyncio.Event()
        self._cleared = False
        self.ns = 0
        line.decide = self.decide

    # --- the gate ---
    def decide(self, item: Item) -> str | None:
        """Reject or pass ``item`` at the gate (a reason, or None to pass)."""
        session = None
        for candidate in self.sessions:
            if candidate.base < item.seq:
                session = candidate
        if session is None:
            self.rejected_no_verdict += 1
            return "no-verdict"
        number = item.seq - session.base
        if number in session.rejects:  # told ahead of its judged-through number, or after
            self.rejected_requested += 1
            return "requested"
        if number > session.judged_through:
            self.rejected_no_verdict += 1
            return "no-verdict"
        return None

    # --- the controller session ---
    def _node(self, name: str) -> Any:
        assert self.client is not None
        return self.client.get_node(ua.NodeId.from_string(f"ns={self.ns};s={self.line_id}.{name}"))

    async def call(self, command: str, *args: Any) -> str:
        """Call a PackML method (Reset, Start, ..., StartBatch) and return its answer."""
        parent = self._node("Line")
        method = self._node(f"PackML.{command}")
        result = await parent.call_method(method, *args)
        return str(result)

    async def run(self) -> None:
        """Connect (retrying), follow the controller, reconnect when it goes away."""
        while True:
            try:
                await self._session()
            except (TimeoutError, OSError, UaError, ConnectionError) as exc:
                log.info("controller session ended: %s", exc)
            self.connected.clear()
            self.line.infeed = False
            self._cleared = False
            await asyncio.sleep(0.3)

    async def _session(self) -> None:
        client = await self.security.client(self.endpoint)
        async with client:
            self.client = client
            self.ns = await client.get_namespace_index(NAMESPACE)
            names = {"PackML.State": "state", "PackML.StateName": "state_name",
                     "Alarm.Text": "alarm", "Reject.Verdicts": "verdicts", "Batch.Lot": "lot",
                     "Release.Cases": "case", "Release.Pallets": "pallet"}
            nodes = {self._node(n).nodeid: key for n, key in names.items()}
            first = {key: await self._node(n).read_value() for n, key in names.items()}
            self.releases["case"] = int(first["case"])
            self.releases["pallet"] = int(first["pallet"])
            handler = _Handler(self, nodes)
            subscription = await client.create_subscription(10, handler)
            await subscription.subscribe_data_change([self._node(n) for n in names],
                                                     queuesize=0)
            self.connected.set()
            while True:
                await asyncio.sleep(0.3)
                await client.check_connection()
                if not self._cleared and self.line.in_transit() == 0:
                    self._cleared = True  # the conveyor ran empty: safe to feed again
                self._infeed()

    def _infeed(self) -> None:
        self.line.infeed = self._cleared and self.state == EXECUTE
        if self.state in (COMPLETING, COMPLETE) and self.line.in_transit() == 0:
            self.line.push_partial_case()

    def on_change(self, key: str, value: Any) -> None:
        if key == "state":
            self.state = int(value)
            self._infeed()
            self.state_changed.set()
        elif key == "state_name":
            self.state_name = str(value)
        elif key == "alarm":
            self.alarm = str(value)
        elif key == "lot":
            self.lot = str(value or "")
        elif key == "verdicts":
            values = [int(v) for v in value or []]
            if len(values) < 2:
                return
            epoch, judged, rejects = values[0], values[1], values[2:]
            session = next((s for s in self.sessions if s.epoch == epoch), None)
            if session is None:  # numbering restarted: products from now on count from 1
                session = Session(epoch, base=len(self.line.items.items))
                self.sessions.append(session)
            session.judged_through = max(session.judged_through, judged)
            session.rejects.update(rejects)
        elif key in ("case", "pallet"):
            count = int(value)
            while self.releases[key] < count:
                self.releases[key] += 1
                if key == "case":
                    self.line.release_case()
                else:
                    self.line.release_pallet()

    async def wait_state(self, *states: int, within: float = 60.0) -> int:
        """Wait until the controller reports one of ``states``."""
        async with asyncio.timeout(within):
            while self.state not in states:
                self.state_changed.clear()
                await self.state_changed.wait()
        return self.state

    async def run_batch(self, batch: str, within: float = 180.0) -> None:
        """What an operator does at the HMI: pick the batch (unless the controller already
        has it), reset, start. A lost session or a Reset that fails is waited out and the
        sequence goes on from the state the line is in."""
        async with asyncio.timeout(within):
            while True:
                await self.connected.wait()
                try:
                    if self.lot != batch:
                        await self.call("StartBatch", ua.Variant(batch, ua.VariantType.String))
                        self.lot = batch
                    if self.state in (STOPPED, COMPLETE):
                        await self.call("Reset")
                        await self.wait_state(IDLE, within=30)
                    if self.state == IDLE:
                        await self.call("Start")
                        return
                    if self.state not in (STOPPED, COMPLETE, IDLE):
                        return  # already producing (or held, suspended): nothing to start
                except (UaError, ConnectionError, OSError, TimeoutError) as exc:
                    log.info("starting batch %s: %s; trying again", batch, exc)
                    await asyncio.sleep(0.5)


class _Handler:
    def __init__(self, plc: PlcSim, nodes: dict[Any, str]) -> None:
        self.plc = plc
        self.nodes = nodes

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        key = self.nodes.get(node.nodeid)
        if key is not None:
            self.plc.on_change(key, val)
