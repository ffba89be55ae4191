"""``codeline keys``, ``codeline manifests`` and ``codeline export``: the hand-over to the cloud."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.table import Table

from edge.cli import logs
from edge.cli.commands import summary
from edge.cli.context import JSON_HELP, UsageProblem, console, ctx_of, emit, ms_text
from edge.domain import audit, batches
from edge.store.database import now_ms
from line_config.devices import is_loopback
from sync import epcis, keys, manifest, tokens, vocabulary

keys_app = typer.Typer(help=summary("keys"), no_args_is_help=True)
manifests_app = typer.Typer(help=summary("manifests"), no_args_is_help=True)
export_app = typer.Typer(help=summary("export"), no_args_is_help=True)

KeyOpt = typer.Option(None, "--key", help="key file (default: the config's sync.signing_key_file)")


def _key_path(ctx: typer.Context, key: Path | None) -> Path:
    c = ctx_of(ctx)
    return key if key is not None else c.resolve(c.config.sync.signing_key_file)


@keys_app.command("generate")
def keys_generate(ctx: typer.Context, key: Path | None = KeyOpt,
                  force: bool = typer.Option(False, "--force", help="replace an existing key")
                  ) -> None:
    """Create the Ed25519 signing key (mode 0600) and print its public half for the cloud."""
    path = _key_path(ctx, key)
    public = keys.generate(path, overwrite=force)
    console.print(f"signing key written to {path}; give the cloud this public key:")
    typer.echo(keys.public_pem(public), nl=False)


@keys_app.command("public")
def keys_public(ctx: typer.Context, key: Path | None = KeyOpt) -> None:
    """Print the public key the cloud verifies manifests with (PEM)."""
    typer.echo(keys.public_pem(keys.load_private(_key_path(ctx, key))), nl=False)


@manifests_app.command("list")
def manifests_list(ctx: typer.Context,
                   after: int = typer.Option(0, "--after", min=0,
                                             help="only manifests after this sequence number"),
                   limit: int = typer.Option(100, "--limit", min=1, max=10_000,
                                             help="at most this many"),
                   json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Manifests in sequence order, with their delivery state."""
    with ctx_of(ctx).reader() as store:
        rows = manifest.listing(store.read(), after, limit)

    def human() -> None:
        table = Table("seq", "id", "kind", "shipment", "codes", "issued", "acked", "signed")
        for m in rows:
            table.add_row(str(m.seq), m.manifest_id, m.kind, str(m.shipment_id),
                          f"{m.code_count:,}", ms_text(m.created_at), ms_text(m.acked_at),
                          "yes" if m.digest else "not yet")
        console.print(table)

    emit([vocabulary.manifest(m) for m in rows], json_out, human)


@manifests_app.command("show")
def manifests_show(ctx: typer.Context, ref: str = typer.Argument(..., help="sequence number or id"),
                   key: Path | None = KeyOpt) -> None:
    """Write a manifest as NDJSON to stdout, sealing (digest + signature) it on first use."""
    c = ctx_of(ctx)
    signing = keys.load_private(_key_path(ctx, key))
    with c.store() as store:
        conn = store.read()
        number = int(ref) if ref.isascii() and ref.isdigit() else ref
        m = manifest.seal(conn, manifest.info(conn, number), c.config.site.id, signing)
        for chunk in manifest.body_lines(conn, m, c.config.site.id):
            sys.stdout.buffer.write(chunk)
    typer.echo(f"sha256={m.digest} signature={m.signature}", err=True)


@export_app.command("epcis")
def export_epcis(ctx: typer.Context, batch: int = typer.Option(..., "--batch", min=1,
                                                               help="batch number"),
                 out: Path | None = typer.Option(None, "--out", "-o", help="file (default stdout)"),
                 after: int = typer.Option(0, "--after", min=0, help=(
                     "only events logged after this sequence number (the last one of an "
                     "earlier export or capture)")),
                 capture_to: str | None = typer.Option(
                     None, "--capture", help="capture into this EPCIS 2.0 repository URL "
                     "instead of writing a file"),
                 per_document: int = typer.Option(
                     10_000, "--per-document", min=1, max=1_000_000,
                     help="events per captured document (the repository's capture limit)"),
                 ) -> None:
    """The batch's EPCIS 2.0 events (JSON-LD), streamed from its business event log."""
    c = ctx_of(ctx)
    with c.store(cache_mb=8) as store:
        conn = store.read()
        batches.get(conn, batch)  # a clear error for an unknown batch
        try:
            part = epcis.span(conn, batch, after)
        except epcis.NoHistory as e:
            raise typer.BadParameter(str(e), param_hint="--batch") from None
        if capture_to is not None:
            import asyncio

            import httpx

            from sync.capture import capture_batch

            async def send() -> None:
                async with httpx.AsyncClient(timeout=60) as client:
                    done = await capture_batch(client, capture_to, conn, batch, after=after,
                                               per_document=per_document)
                console.print(f"captured {done.events:,} events in {done.documents} "
                              f"documents; next capture: --after {done.through}")

            asyncio.run(send())
            return
        sink = out.open("wb") if out is not None else sys.stdout.buffer
        try:
            for chunk in epcis.document_chunks(conn, part, now_ms()):
                sink.write(chunk)
        finally:
            if out is not None:
                sink.close()
    if out is not None:
        console.print(f"wrote {part.count:,} events to {out}; next export: --after "
                      f"{part.through}")


SCOPE_HELP = "one of " + ", ".join(tokens.SCOPES) + " (repeatable)"
tokens_app = typer.Typer(help=summary("tokens"), no_args_is_help=True)
api_app = typer.Typer(help=summary("api"), no_args_is_help=True)


@tokens_app.command("create")
def tokens_create(ctx: typer.Context, name: str = typer.Option(..., "--name", help="who uses it"),
                  scope: list[str] = typer.Option(..., "--scope", help=SCOPE_HELP)) -> None:
    """Create a token; its secret is printed once and stored only as a hash."""
    c = ctx_of(ctx)
    with c.store() as store, store.transaction() as conn:
        secret = tokens.create(conn, name, scope, now_ms())
        audit.record(conn, c.operator, "tokens.create", name, scopes=sorted(scope))
    console.print("token created; store it now, it is not shown again:")
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context,
                json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Tokens with their scopes and last use (never the secrets)."""
    with ctx_of(ctx).reader() as store:
        rows = tokens.listing(store.read())

    def human() -> None:
        table = Table("id", "name", "scopes", "created", "last used", "revoked")
        for t in rows:
            table.add_row(str(t.id), t.name, " ".join(t.scopes), ms_text(t.created_at),
                          ms_text(t.last_used_at), ms_text(t.revoked_at))
        console.print(table)

    emit([vocabulary.token(t) for t in rows], json_out, human)


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: int = typer.Argument(..., min=1)) -> None:
    """Revoke a token at once."""
    c = ctx_of(ctx)
    with c.store() as store, store.transaction() as conn:
        tokens.revoke(conn, token_id, now_ms())
        audit.record(conn, c.operator, "tokens.revoke", f"token:{token_id}")
    console.print(f"token {token_id} revoked")


@api_app.command("serve")
def api_serve(ctx: typer.Context, key: Path | None = KeyOpt,
              port: int | None = typer.Option(
                  None, "--port", min=1, max=65535,
                  help="port to listen on (default: the config's api.port)")) -> None:
    """Serve the pull API (bound to the config's sync.api host, loopback by default)."""
    import uvicorn

    from sync.api import create_app

    c = ctx_of(ctx)
    settings = c.config.sync.api
    logs.setup(20)
    if not is_loopback(settings.host) and settings.tls_cert_file is None:
        logging.getLogger("codeline.api").warning(
            "pull API on %s WITHOUT TLS (allow_plain_http is set): only safe behind a "
            "TLS-terminating proxy", settings.host)
    app = create_app(c.db_path, c.config, keys.load_private(_key_path(ctx, key)))
    cert, key_file = settings.tls_cert_file, settings.tls_key_file
    # uvicorn's own access log would print query strings; the app logs requests itself.
    uvicorn.run(app, host=settings.host, port=port or settings.port, log_level="info",
                access_log=False, log_config=None,
                ssl_certfile=None if cert is None else str(c.resolve(cert)),
                ssl_keyfile=None if key_file is None else str(c.resolve(key_file)))


sync_app = typer.Typer(help=summary("sync"), no_args_is_help=True)


@sync_app.command("status")
def sync_status(ctx: typer.Context,
                json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Manifests waiting for the cloud, the oldest one's age, those it refused, the last
    error."""
    from sync import push  # with httpx: only the commands that deliver or report delivery

    with ctx_of(ctx).reader() as store:
        state = push.status(store.read())
    now = now_ms()

    def human() -> None:
        age = ("-" if state.oldest_pending_at is None
               else f"{(now - state.oldest_pending_at) / 1000:,.0f} s")
        console.print(f"pending {state.pending}, oldest {age}, acknowledged {state.acked}")
        for refusal in state.refused:
            console.print(f"REFUSED by the cloud ({ms_text(refusal.refused_at)}): manifest "
                          f"{refusal.seq} ({refusal.manifest_id}): {refusal.reason}. It will "
                          "not be taken as it is: compare it with `audit verify`.",
                          markup=False, style="red")
        if state.last_error:
            console.print(f"last error ({ms_text(state.last_attempt_at)}): {state.last_error}",
                          markup=False)

    emit(vocabulary.push_status(state, now), json_out, human)


@sync_app.command("push")
def sync_push(ctx: typer.Context, key: Path | None = KeyOpt,
              follow: bool = typer.Option(False, "--follow", help="keep delivering (with "
                                          "backoff after failures) until interrupted")) -> None:
    """One delivery round now: pending manifests in order, stopping at the first failure."""
    import asyncio
    import os

    import httpx

    from sync import push

    c = ctx_of(ctx)
    settings = c.config.sync
    if settings.push_url is None or settings.push_token_env is None:
        raise UsageProblem("the config has no sync.push_url: manifests are pulled by the cloud")
    token = os.environ.get(settings.push_token_env)
    if not token:
        raise UsageProblem("the push token is read from ${settings_push_token_env}, which is "
                           "not set", settings_push_token_env=settings.push_token_env)
    signing = keys.load_private(_key_path(ctx, key))

    async def once() -> push.RoundReport:
        async with httpx.AsyncClient(timeout=30) as client:
            assert settings.push_url is not None
            return await push.push_round(c.db_path, c.config.site.id, signing,
                                         settings.push_url, token, client)

    if follow:
        import contextlib

        from edge.cli import logs

        logs.setup()  # each delivery and each failure, one JSON line on stderr
        assert settings.push_url is not None
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(push.push_forever(c.db_path, c.config.site.id, signing,
                                          settings.push_url, token,
                                          settings.retry_min_ms / 1000,
                                          settings.retry_max_ms / 1000))
        return
    report = asyncio.run(once())
    console.print(f"delivered {report.delivered} manifest(s)")
    if report.failed:
        raise UsageProblem("delivery stopped: {report_failed}",
                           report_failed=report.failed)
