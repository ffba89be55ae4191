"""``codeline run`` (the line runtime), ``codeline status`` (its live view), ``codeline
certs`` (the PLC server's certificate and users)."""

from __future__ import annotations

import asyncio
import json as jsonlib
import sys
import time
from pathlib import Path

import typer
from rich.live import Live

from edge.cli import logs
from edge.cli.commands import summary
from edge.cli.context import UsageProblem, console, ctx_of, emit

STALE_S = 5.0


def run(ctx: typer.Context,
        verbose: bool = typer.Option(False, "--verbose", "-v", help="log debug detail")) -> None:
    """Run the site's lines: drive the devices, judge every item, serve the PLCs."""
    from edge.daemon.site import run_site

    c = ctx_of(ctx)
    config = c.config
    base = c.config_option.parent if c.config_option else Path.cwd()
    logs.setup(10 if verbose else 20)

    def ready(site: object) -> None:
        console.print(f"codeline running: site {config.site.id}, "
                      f"{len(config.lines)} line(s), database {c.db_path}", soft_wrap=True)

    asyncio.run(run_site(config, c.db_path, base, ready))


def status(ctx: typer.Context,
           json: bool = typer.Option(False, "--json", help="one snapshot as JSON"),
           once: bool = typer.Option(False, "--once", help="print once, do not follow")) -> None:
    """The live view of the running lines: state, batch, rate, counters, buffers, alarms."""
    from edge.cli.status_view import site_view
    from edge.daemon.site import status_path

    c = ctx_of(ctx)
    path = status_path(c.db_path)

    def load() -> dict[str, object]:
        try:
            snapshot: dict[str, object] = jsonlib.loads(path.read_text())
        except (OSError, ValueError):
            raise UsageProblem("no running `codeline run` for {db_path} (no status at {path})",
                               db_path=c.db_path, path=path) from None
        if time.time() - float(snapshot["at"]) / 1000 > STALE_S:  # type: ignore[arg-type]
            raise UsageProblem("the status at {path} is stale: is `codeline run` alive?",
                               path=path)
        return snapshot

    snapshot = load()
    if json:
        emit(snapshot, True, lambda: None)
        return
    if once or not sys.stdout.isatty():
        console.print(site_view(snapshot))
        return
    try:
        with Live(site_view(snapshot), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(0.25)
                live.update(site_view(load()))
    except KeyboardInterrupt:
        pass


certs_app = typer.Typer(help=summary("certs"), no_args_is_help=True)


@certs_app.command("show")
def certs_show(ctx: typer.Context,
               renew: bool = typer.Option(False, "--renew", help="make a new certificate")) -> None:
    """Show (making it if needed) each line's PLC server certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from edge.daemon.plc_security import certificate_paths, ensure_certificate

    c = ctx_of(ctx)
    base = c.config_option.parent if c.config_option else Path.cwd()
    for line in c.config.lines:
        if line.plc is None:
            continue
        cert_dir = Path(line.plc.cert_dir)
        cert_dir = cert_dir if cert_dir.is_absolute() else base / cert_dir
        asyncio.run(ensure_certificate(cert_dir, line.plc.host, renew=renew))
        cert = x509.load_der_x509_certificate(certificate_paths(cert_dir)[0].read_bytes())
        console.print(f"line {line.id}: {certificate_paths(cert_dir)[0]}", soft_wrap=True)
        console.print(f"  subject {cert.subject.rfc4514_string()}")
        console.print(f"  valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                      f"{cert.not_valid_after_utc:%Y-%m-%d}")
        console.print(f"  SHA-256 {cert.fingerprint(hashes.SHA256()).hex(':')}")


@certs_app.command("hash-password")
def certs_hash_password(
    name: str = typer.Argument(..., help="user name"),
    password_env: str = typer.Option(..., "--password-env",
                                     help="environment variable holding the password"),
) -> None:
    """A line for the PLC users file: name:scrypt:<salt>:<hash>."""
    import os

    from edge.daemon.plc_security import hash_password

    password = os.environ.get(password_env)
    if not password:
        raise UsageProblem("environment variable {password_env} is empty or not set",
                           password_env=password_env)
    if ":" in name or not name.strip():
        raise UsageProblem("a user name is not empty and has no ':'")
    typer.echo(f"{name}:{hash_password(password)}")
