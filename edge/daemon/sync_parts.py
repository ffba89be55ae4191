"""The site's hand-over to the cloud inside ``codeline run``: the pull API and the push
worker, beside the lines under the same TaskGroup. Each part is supervised: a part that fails
is logged and started again after a pause, and never stops a line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from line_config.devices import is_loopback
from line_config.models import SiteConfig

log = logging.getLogger("codeline.sync")

RETRY_MIN_S, RETRY_MAX_S = 2.0, 60.0


class SyncPartUnavailable(Exception):
    """A part cannot run as configured (no signing key, no push token): logged, not fatal."""


async def supervised(name: str, part: Callable[[], Awaitable[None]], site_id: str) -> None:
    """Run ``part`` for ever: after a failure (uvicorn exits the process when it cannot
    bind, so SystemExit too) it is logged and restarted, waiting longer each time."""
    delay = RETRY_MIN_S
    while True:
        try:
            await part()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a sync part never ends a line
            log.error("%s stopped: %s; starting it again in %.0f s", name, exc, delay,
                      extra={"site": site_id, "part": name})
        else:
            log.warning("%s ended; starting it again in %.0f s", name, delay,
                        extra={"site": site_id, "part": name})
        await asyncio.sleep(delay)
        delay = min(RETRY_MAX_S, delay * 2)


def _signing_key(config: SiteConfig, base_dir: Path) -> object:
    from sync import keys
    from sync.errors import KeyProblem

    path = Path(config.sync.signing_key_file).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        return keys.load_private(path)
    except KeyProblem as exc:
        raise SyncPartUnavailable(str(exc)) from None


Scrape = Callable[[], Awaitable[bytes]]


async def serve_api(config: SiteConfig, db_path: Path, base_dir: Path,
                    metrics: Scrape | None = None, *, pull_api: bool = True) -> None:
    """The pull API and/or ``GET /metrics`` on the config's sync.api address, until
    cancelled."""
    import uvicorn
    from fastapi import FastAPI, Response

    from edge.daemon.metrics import CONTENT_TYPE
    from sync.api import create_app

    class Embedded(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # SIGTERM and SIGINT belong to the controller, which stops the lines first

    settings = config.sync.api
    if pull_api:
        app = create_app(db_path, config, _signing_key(config, base_dir))  # type: ignore[arg-type]
    else:
        app = FastAPI(title="codeline metrics", openapi_url=None, docs_url=None,
                      redoc_url=None)
    if metrics is not None:
        async def scrape() -> Response:
            return Response(await metrics(), media_type=CONTENT_TYPE)

        app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    if not is_loopback(settings.host) and settings.tls_cert_file is None:
        log.warning("pull API on %s WITHOUT TLS (allow_plain_http is set): only safe behind "
                    "a TLS-terminating proxy", settings.host)

    def resolved(value: str | None) -> str | None:
        return None if value is None else str(base_dir / Path(value).expanduser())

    server = Embedded(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        lifespan="off",
        ssl_certfile=resolved(settings.tls_cert_file),
        ssl_keyfile=resolved(settings.tls_key_file)))
    log.info("%s on %s:%s", " and ".join(
        what for what, on in (("pull API", pull_api), ("metrics", metrics is not None)) if on),
        settings.host, settings.port, extra={"site": config.site.id})
    try:
        await server.serve()
    finally:
        server.should_exit = True


async def push_worker(config: SiteConfig, db_path: Path, base_dir: Path) -> None:
    """Deliver manifests to sync.push_url until cancelled."""
    from sync import push

    settings = config.sync
    assert settings.push_url is not None and settings.push_token_env is not None
    token = os.environ.get(settings.push_token_env)
    if not token:
        raise SyncPartUnavailable(f"the push token is read from ${settings.push_token_env}, "
                                  "which is not set")
    key = _signing_key(config, base_dir)
    await push.push_forever(db_path, config.site.id, key, settings.push_url,  # type: ignore[arg-type]
                            token, settings.retry_min_ms / 1000, settings.retry_max_ms / 1000)


def parts(config: SiteConfig, db_path: Path, base_dir: Path, metrics: Scrape
          ) -> dict[str, Callable[[], Awaitable[None]]]:
    """The sync parts this site's ``codeline run`` serves, by name (``/metrics`` rides on
    the pull API's server, or has that address to itself when the API runs elsewhere)."""
    chosen: dict[str, Callable[[], Awaitable[None]]] = {}
    scrape = metrics if "metrics" in config.sync.in_run else None
    if "api" in config.sync.in_run:
        chosen["pull API"] = lambda: serve_api(config, db_path, base_dir, scrape)
    elif scrape is not None:
        chosen["metrics"] = lambda: serve_api(config, db_path, base_dir, scrape,
                                              pull_api=False)
    if "push" in config.sync.in_run and config.sync.push_url is not None:
        chosen["push worker"] = lambda: push_worker(config, db_path, base_dir)
    return chosen
