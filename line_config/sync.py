"""The site's hand-over to the cloud in the config: the pull API it serves, the push it
makes, the signing key, the shipment rules, and which parts ``codeline run`` serves."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from line_config.base import Strict, check_http_base
from line_config.devices import Millis, Port, is_loopback

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")]


class ApiSettings(Strict):
    """The pull API served to the cloud."""

    host: str = "127.0.0.1"
    port: Port = 8600
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    allow_plain_http: bool = Field(
        default=False,
        description="serve without TLS off loopback: only behind a TLS-terminating proxy "
                    "(logged as a warning at every start)")

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if not is_loopback(self.host) and self.tls_cert_file is None \
                and not self.allow_plain_http:
            raise ValueError(
                f"the pull API on {self.host} without TLS would send bearer tokens and "
                "manifests in clear over the plant network: set tls_cert_file and "
                "tls_key_file, listen on 127.0.0.1, or (behind a TLS-terminating proxy) set "
                "allow_plain_http: true")
        return self


class SyncSettings(Strict):
    """Hand-over to the cloud: pull API, optional push, signing key, shipment rules."""

    api: ApiSettings = Field(default_factory=ApiSettings)
    push_url: str | None = None
    push_token_env: EnvName | None = None
    signing_key_file: str = Field(default="keys/manifest-signing.key", min_length=1)
    allow_mixed_batches: bool = False
    retry_min_ms: Millis = 500
    retry_max_ms: Millis = 60_000
    in_run: tuple[Literal["api", "push", "metrics"], ...] = Field(
        default=("api", "push", "metrics"),
        description="what `codeline run` serves beside the lines: the pull API, the push "
                    "worker (when push_url is set), Prometheus `GET /metrics` (on the pull "
                    "API's address); a part left out runs as its own process "
                    "(`codeline api serve`, `codeline sync push --follow`)")

    _push = field_validator("push_url")(check_http_base)

    @field_validator("push_url")
    @classmethod
    def _push_encrypted(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
                raise ValueError(
                    f"push_url {value} is plain http to another host: the push token and the "
                    "manifests would cross the network in clear; use https://")
        return value

    @model_validator(mode="after")
    def _push_needs_token(self) -> SyncSettings:
        if self.push_url is not None and self.push_token_env is None:
            raise ValueError("push_url needs push_token_env (the variable holding the token)")
        if self.retry_min_ms > self.retry_max_ms:
            raise ValueError("retry_min_ms must not exceed retry_max_ms")
        return self
