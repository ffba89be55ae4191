"""The controller's OPC-UA server for a line's PLC: where it listens and whom it trusts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from line_config.base import Strict
from line_config.devices import Port, is_loopback

SecurityMode = Literal["none", "sign", "sign_encrypt"]


class PlcServer(Strict):
    """The controller's OPC-UA server for the PLC of this line."""

    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: Port = 4840
    security: list[SecurityMode] = Field(
        default_factory=lambda: list[SecurityMode](["sign_encrypt"]), min_length=1, max_length=3
    )
    allow_insecure_remote: bool = Field(
        default=False,
        description="off loopback, allow security 'none', or no trust list or no users file "
                    "(logged as a warning at every start)")
    users_file: str | None = Field(default=None, description="file of hashed user passwords")
    trusted_certs_dir: str | None = Field(
        default=None, description="folder of the client certificates (DER or PEM) to trust")
    cert_dir: str = "pki"
    packml_nodeset: str | None = Field(
        default=None,
        description="the OPC 30050 PackML nodeset (Opc.Ua.PackML.NodeSet2.xml) the line's "
                    "PackML unit is built from; default: opcua/PackML/ in the standards "
                    "folder (CODELINE_STANDARDS_DIR). Without it the server serves the "
                    "codeline nodes only, with a standing alarm")

    @model_validator(mode="after")
    def _no_silent_insecure(self) -> PlcServer:
        if is_loopback(self.host) or self.allow_insecure_remote:
            return self
        if "none" in self.security:
            raise ValueError(
                f"security 'none' on {self.host} would expose the line unauthenticated: "
                "listen on 127.0.0.1, drop 'none', or set allow_insecure_remote: true"
            )
        missing = [name for name, value in (("trusted_certs_dir", self.trusted_certs_dir),
                                            ("users_file", self.users_file)) if value is None]
        if missing:
            raise ValueError(
                f"a PLC server on {self.host} needs {' and '.join(missing)}: without them any "
                "client with a self-made certificate could command the line "
                "(or set allow_insecure_remote: true)"
            )
        return self

    def insecure_reasons(self) -> list[str]:
        """What this server accepts that a plant network should not (empty when safe)."""
        if is_loopback(self.host):
            return []
        reasons = []
        if "none" in self.security:
            reasons.append("connections without security")
        if self.trusted_certs_dir is None:
            reasons.append("any client certificate")
        if self.users_file is None:
            reasons.append("anonymous users")
        return reasons
