"""What the OPC-UA device simulators share: an asyncua server on loopback that can drop its
clients (a disconnect fault) and offers Basic256Sha256 when asked.

Starting an asyncua server loads the standard address space (about two seconds): a test
starts one per device, not one per request.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from asyncua import ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.server import Server
from cryptography.x509.oid import ExtendedKeyUsageOID

from sync.serving import free_port

SECURITY = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "sign_encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


class OpcUaDeviceSim:
    """Base of the OPC-UA device simulators: ``serve_tcp`` builds and starts the server."""

    path = "device"
    name = "codeline simulated device"

    def __init__(self, security: tuple[str, ...] = ("none",)) -> None:
        self.security = security
        self.server: Server | None = None
        self.port = 0
        self.drops = 0
        self._certs: tempfile.TemporaryDirectory[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/{self.path}/"

    async def build(self, server: Server) -> None:
        """Add the device's nodes (called once, before the server starts)."""
        raise NotImplementedError

    async def serve_tcp(self, port: int = 0) -> str:
        """Start the server on 127.0.0.1 (``port`` 0: a free one); returns host:port."""
        if port == 0:
            port = free_port()
        self.port = port
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(self.name)
        server.set_security_policy([SECURITY[m] for m in self.security])
        if any(m != "none" for m in self.security):
            self._certs = tempfile.TemporaryDirectory(prefix="codeline-sim-pki-")
            cert = Path(self._certs.name) / "cert.der"
            key = Path(self._certs.name) / "key.pem"
            await setup_self_signed_certificate(
                key, cert, f"urn:codeline:sim:{self.path}", "localhost",
                [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": self.name})
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
        await self.build(server)
        await server.start()
        self.server = server
        await self.on_started()
        return f"127.0.0.1:{port}"

    async def on_started(self) -> None:
        """Start what the device does on its own."""

    async def drop_link(self) -> None:
        """Every client loses its connection (the cable pulled); the server stays up."""
        if self.server is None:
            return
        for transport in list(self.server.iserver.asyncio_transports):
            transport.close()
        self.drops += 1

    async def on_stopping(self) -> None:
        """Stop what :meth:`on_started` started."""

    async def stop(self) -> None:
        await self.on_stopping()
        if self.server is not None:
            # Sessions whose connection was dropped outlive server.stop() until their
            # timeout; a switched-off device has none left.
            sessions = getattr(self.server.iserver, "_external_sessions", {})
            for session in list(sessions.values()):
                with contextlib.suppress(Exception):
                    await session.close_session(True)
            with contextlib.suppress(Exception):
                await self.server.stop()
            self.server = None
        if self._certs is not None:
            self._certs.cleanup()
            self._certs = None

