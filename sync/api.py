"""The pull API the cloud calls: manifests by cursor, acknowledgements, codes, batches, EPCIS.

Routes live under ``/api/v2`` (``GET /api`` names the versions; ``/api/v1`` answers 410 Gone).
Bearer tokens carry scopes (``manifests:read``, ``manifests:ack``, ``codes:read``). Every
error is JSON ``{"code": ..., "message": ...}``; bad input is a 4xx, never a 500. Manifest
bodies stream from the database in blocks (NDJSON with ``Accept: application/x-ndjson``,
else one JSON document), with their digest and signature in response headers. The OpenAPI
document declares every body, media type and header (``sync.api_models``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.domain.lifecycle import LEVEL_NAME, State
from edge.store.database import Store, now_ms, rfc3339
from line_config.models import SiteConfig
from sync import api_models as m
from sync import epcis, manifest, push, tokens, vocabulary
from sync.errors import ManifestNotFound

PREFIX = f"/api/{vocabulary.API_VERSION}"
BATCH_MANIFEST_FORMAT = "codeline-batch-manifest/1"
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="a token from `codeline tokens create` (the scheme name is "
                    "case-insensitive)")


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


TOKEN_PARAMS = frozenset({"access_token", "token", "bearer", "api_key", "apikey", "auth",
                          "authorization", "key"})
access_log = logging.getLogger("codeline.api.access")


def create_app(db_path: Path, config: SiteConfig, signing_key: Ed25519PrivateKey) -> FastAPI:
    """The API over one database file; each request opens its own connection."""
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": m.ErrorBody, "description": what} for status, what in (
            (400, "a token in the URL"), (401, "no, an unknown or a revoked Bearer token"),
            (403, "the token lacks the scope"), (404, "no such manifest, batch or code"),
            (422, "a parameter out of range"))}
    app = FastAPI(title="codeline pull API", version=vocabulary.API_VERSION, responses=errors,
                  description=f"Manifests ({manifest.FORMAT}), codes and EPCIS events of one "
                  "site. Routes live under /api/<version>; GET /api names the versions. Every "
                  "time is RFC 3339 UTC.")
    site_id = config.site.id

    @contextmanager
    def connection() -> Iterator[sqlite3.Connection]:
        store = Store(db_path, cache_mb=8)  # streaming reads: memory stays flat
        try:
            yield store.conn
        finally:
            store.close()

    @app.middleware("http")
    async def no_token_in_url(request: Request, call_next: Any) -> Any:
        """A token in a URL ends up in proxy and server logs: refused, and the access log
        line written here never carries the query string."""
        leaked = TOKEN_PARAMS.intersection(k.lower() for k in request.query_params)
        if leaked:
            response: Any = JSONResponse(
                {"code": "token_in_url", "message": "send the token in the Authorization "
                 f"header (Bearer), never in the URL ({', '.join(sorted(leaked))})"},
                status_code=400)
        else:
            response = await call_next(request)
        access_log.info("%s %s %s", request.method, request.url.path, response.status_code,
                        extra={"status": response.status_code})
        return response

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def bad_input(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"code": "bad_request", "message": f"{where}: {first.get('msg')}"},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"code": code, "message": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)  # Allow on 405

    def require(scope: str) -> Any:
        def check(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(BEARER)]) -> tokens.Token:
            if credentials is None:
                raise ApiError(401, "unauthorized", "a Bearer token is required")
            with connection() as conn:
                token = tokens.check(conn, credentials.credentials.strip())
                if token is None:
                    raise ApiError(401, "unauthorized", "unknown or revoked token")
                if scope not in token.scopes:
                    raise ApiError(403, "forbidden", f"this token lacks the {scope} scope")
                conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                             (now_ms(), token.id))
                return token
        return Depends(check)

    def sealed(conn: sqlite3.Connection, ref: str) -> manifest.ManifestInfo:
        try:
            found = manifest.info(conn, int(ref) if ref.isascii() and ref.isdigit() else ref)
        except ManifestNotFound:
            raise ApiError(404, "not_found", f"no manifest {ref}") from None
        return manifest.seal(conn, found, site_id, signing_key)

    @app.get("/healthz", response_model=m.Health)
    def healthz() -> m.Health:
        with connection() as conn:
            conn.execute("SELECT 1").fetchone()
        return m.Health(status="ok", site=site_id)

    @app.get("/api", response_model=m.ApiVersions)
    def versions() -> m.ApiVersions:
        """The versions this site serves: a cloud reads this before it calls."""
        return m.ApiVersions(current=vocabulary.API_VERSION, versions=vocabulary.API_VERSIONS,
                             manifest_format=manifest.FORMAT, site=site_id)

    @app.api_route("/api/v1/{rest:path}", include_in_schema=False,
                   methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def gone(rest: str) -> JSONResponse:
        return JSONResponse({"code": "gone", "message": f"API v1 is gone: call {PREFIX}/{rest} "
                             "(times are RFC 3339 UTC text; GET /api names the versions)"},
                            status_code=410)

    @app.get(f"{PREFIX}/manifests", response_model=m.ManifestPage,
             dependencies=[require("manifests:read")])
    def list_manifests(after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> m.ManifestPage:
        """Issued manifests after the cursor, in sequence order, each sealed."""
        with connection() as conn:
            rows = [sealed(conn, str(i.seq)) for i in manifest.listing(conn, after, limit)]
        return m.ManifestPage(
            manifests=[m.ManifestSummary(**vocabulary.manifest(i)) for i in rows],
            next_after=rows[-1].seq if rows else after)

    @app.get(f"{PREFIX}/manifests/{{ref}}", dependencies=[require("manifests:read")],
             response_model=None, responses=m.MANIFEST_RESPONSE)
    def get_manifest(request: Request,
                     ref: Annotated[str, PathParam(min_length=1, max_length=64)]
                     ) -> StreamingResponse:
        """One manifest by sequence number or id, with its digest and signature."""
        with connection() as conn:
            found = sealed(conn, ref)
        headers = {"X-Manifest-Id": found.manifest_id, "X-Manifest-Seq": str(found.seq),
                   "X-Manifest-Format": manifest.FORMAT,
                   "X-Manifest-Digest": found.digest or "",
                   "X-Manifest-Signature": found.signature or ""}
        if m.NDJSON in request.headers.get("accept", ""):
            return StreamingResponse(_ndjson(found), media_type=m.NDJSON, headers=headers)
        return StreamingResponse(_json_document(found), media_type="application/json",
                                 headers=headers)

    def _ndjson(found: manifest.ManifestInfo) -> Iterator[bytes]:
        with connection() as conn:
            yield from manifest.body_lines(conn, found, site_id)

    def _json_document(found: manifest.ManifestInfo) -> Iterator[bytes]:
        with connection() as conn:
            chunks = manifest.body_lines(conn, found, site_id)
            head = next(chunks)
            yield b'{"header":' + head.rstrip(b"\n") + b',"codes":['
            first = True
            for chunk in chunks:
                lines = chunk.rstrip(b"\n").split(b"\n")
                yield (b"" if first else b",") + b",".join(lines)
                first = False
            yield b"]}"

    @app.post(f"{PREFIX}/manifests/{{ref}}/ack", response_model=m.AckResult,
              dependencies=[require("manifests:ack")])
    def ack_manifest(ref: Annotated[str, PathParam(min_length=1, max_length=64)]) -> m.AckResult:
        """The cloud holds the manifest: idempotent, the first time is kept."""
        with connection() as conn:
            found = sealed(conn, ref)
            conn.execute("UPDATE outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                         (now_ms(), found.seq))
            acked = manifest.info(conn, found.seq)
        assert acked.acked_at is not None
        return m.AckResult(id=acked.manifest_id, seq=acked.seq, acked_at=rfc3339(acked.acked_at))

    @app.post(f"{PREFIX}/manifests/{{ref}}/refusal", response_model=m.RefusalResult,
              dependencies=[require("manifests:ack")])
    def refuse_manifest(ref: Annotated[str, PathParam(min_length=1, max_length=64)],
                        refusal: m.RefusalBody) -> m.RefusalResult:
        """The cloud will not take this manifest (its digest or signature did not verify):
        recorded, so the site sees the refusal instead of a manifest merely pending."""
        with connection() as conn:
            found = sealed(conn, ref)
            at = now_ms()
            push.record_refusal(conn, found.seq, refusal.reason, at)
        return m.RefusalResult(id=found.manifest_id, seq=found.seq, refused_at=rfc3339(at))

    @app.get(f"{PREFIX}/codes/{{serial}}", response_model=m.CodeState,
             dependencies=[require("codes:read")])
    def code_state(serial: Annotated[str, PathParam(min_length=1, max_length=64)]
                   ) -> m.CodeState:
        """One code's state: is it active (shipped) yet?"""
        with connection() as conn:
            row = conn.execute(
                "SELECT c.serial, c.level, c.state, c.batch_id, b.line_id, p.serial FROM codes c "
                "LEFT JOIN codes p ON p.id = c.parent_id LEFT JOIN batches b ON b.id = c.batch_id "
                "WHERE c.serial = ?", (serial,)).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "no such code at this site")
        state = State(row[2])
        return m.CodeState(serial=row[0], level=LEVEL_NAME[row[1]], state=state.name,
                           activated=state is State.ACTIVE, batch=row[3], line=row[4],
                           parent=row[5])

    @app.get(f"{PREFIX}/batches/{{batch_id}}/manifest", dependencies=[require("manifests:read")],
             response_model=None, response_class=StreamingResponse,
             responses=m.BATCH_MANIFEST_RESPONSE)
    def batch_manifest(batch_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> StreamingResponse:
        """A batch's active codes with their parents."""
        with connection() as conn:
            if conn.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,)).fetchone() is None:
                raise ApiError(404, "not_found", f"no batch {batch_id}")

        def lines() -> Iterator[bytes]:
            with connection() as conn:
                yield manifest.canonical({"format": BATCH_MANIFEST_FORMAT, "batch": batch_id,
                                          "site": site_id})
                last = -1
                while True:
                    rows = conn.execute(
                        "SELECT c.id, c.serial, c.level, p.serial FROM codes c LEFT JOIN codes p "
                        "ON p.id = c.parent_id WHERE c.batch_id = ? AND c.state = ? AND c.id > ? "
                        "ORDER BY c.id LIMIT ?", (batch_id, int(State.ACTIVE), last,
                                                  manifest.BLOCK)).fetchall()
                    if not rows:
                        return
                    yield b"".join(manifest.canonical(
                        {"serial": s, "level": LEVEL_NAME[lv], "parent": p})
                        for _, s, lv, p in rows)
                    last = rows[-1][0]

        return StreamingResponse(lines(), media_type=m.NDJSON)

    @app.get(f"{PREFIX}/batches/{{batch_id}}/epcis", dependencies=[require("manifests:read")],
             response_model=None, response_class=StreamingResponse,
             responses=m.EPCIS_RESPONSE)
    def batch_epcis(batch_id: Annotated[int, PathParam(ge=1, le=2**62)],
                    after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> StreamingResponse:
        """The batch's EPCIS events from its log (after a log position, for a follow-up)."""
        with connection() as conn:
            try:
                part = epcis.span(conn, batch_id, after)
            except KeyError:
                raise ApiError(404, "not_found", f"no batch {batch_id}") from None
            except epcis.NoHistory as e:
                raise ApiError(404, "no_history", str(e)) from None

        def chunks() -> Iterator[bytes]:
            with connection() as conn:
                yield from epcis.document_chunks(conn, part, now_ms())

        return StreamingResponse(chunks(), media_type=m.JSON_LD)

    _complete_openapi(app)
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Add the models that only hand-written response declarations name by ``$ref``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            _, defs = models_json_schema([(model, "validation") for model in m.EXTRA_MODELS],
                                         ref_template="#/components/schemas/{model}")
            spec["components"]["schemas"].update(defs.get("$defs", {}))
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
