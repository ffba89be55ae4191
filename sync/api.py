"""The pull API the cloud calls: manifests by cursor, acknowledgements, codes, batches, EPCIS.

Bearer tokens carry scopes (``manifests:read``, ``manifests:ack``, ``codes:read``). Every
error is JSON ``{"code": ..., "message": ...}``; bad input is a 4xx, never a 500. Manifest
bodies stream from the database in blocks (NDJSON with ``Accept: application/x-ndjson``,
else one JSON document), with their digest and signature in response headers.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.domain.lifecycle import LEVEL_NAME, State
from edge.store.database import Store, now_ms
from line_config.models import SiteConfig
from sync import epcis, manifest, push, tokens
from sync.errors import ManifestNotFound

NDJSON = "application/x-ndjson"


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ManifestSummary(BaseModel):
    seq: int
    id: str
    kind: str
    shipment: int
    codes: int
    issued_at: int
    acked_at: int | None
    digest: str | None
    signature: str | None


class ManifestPage(BaseModel):
    manifests: list[ManifestSummary]
    next_after: int


class AckResult(BaseModel):
    id: str
    seq: int
    acked_at: int


class RefusalBody(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class RefusalResult(BaseModel):
    id: str
    seq: int
    refused_at: int


class CodeState(BaseModel):
    serial: str
    level: str
    state: str
    activated: bool
    batch: int | None
    parent: str | None


class ErrorBody(BaseModel):
    code: str
    message: str


TOKEN_PARAMS = frozenset({"access_token", "token", "bearer", "api_key", "apikey", "auth",
                          "authorization", "key"})
access_log = logging.getLogger("codeline.api.access")


def create_app(db_path: Path, config: SiteConfig, signing_key: Ed25519PrivateKey) -> FastAPI:
    """The API over one database file; each request opens its own connection."""
    app = FastAPI(title="codeline pull API", version="1",
                  responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                             404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
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
        return JSONResponse({"code": "http_error", "message": str(exc.detail)},
                            status_code=exc.status_code)

    def require(scope: str) -> Any:
        def check(authorization: Annotated[str | None, Header()] = None) -> tokens.Token:
            if not authorization or not authorization.startswith("Bearer "):
                raise ApiError(401, "unauthorized", "a Bearer token is required")
            with connection() as conn:
                token = tokens.check(conn, authorization[len("Bearer "):].strip())
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
            m = manifest.info(conn, int(ref) if ref.isascii() and ref.isdigit() else ref)
        except ManifestNotFound:
            raise ApiError(404, "not_found", f"no manifest {ref}") from None
        return manifest.seal(conn, m, site_id, signing_key)

    def summary(m: manifest.ManifestInfo) -> ManifestSummary:
        return ManifestSummary(seq=m.seq, id=m.manifest_id, kind=m.kind, shipment=m.shipment_id,
                               codes=m.code_count, issued_at=m.created_at, acked_at=m.acked_at,
                               digest=m.digest, signature=m.signature)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with connection() as conn:
            conn.execute("SELECT 1").fetchone()
        return {"status": "ok", "site": site_id}

    @app.get("/api/v1/manifests", response_model=ManifestPage,
             dependencies=[require("manifests:read")])
    def list_manifests(after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ManifestPage:
        with connection() as conn:
            rows = [sealed(conn, str(m.seq)) for m in manifest.listing(conn, after, limit)]
        return ManifestPage(manifests=[summary(m) for m in rows],
                            next_after=rows[-1].seq if rows else after)

    @app.get("/api/v1/manifests/{ref}", dependencies=[require("manifests:read")],
             response_model=None)
    def get_manifest(ref: Annotated[str, PathParam(min_length=1, max_length=64)],
                     accept: Annotated[str | None, Header()] = None) -> StreamingResponse:
        with connection() as conn:
            m = sealed(conn, ref)
        headers = {"X-Manifest-Id": m.manifest_id, "X-Manifest-Seq": str(m.seq),
                   "X-Manifest-Digest": m.digest or "", "X-Manifest-Signature": m.signature or ""}
        if accept and NDJSON in accept:
            return StreamingResponse(_ndjson(m), media_type=NDJSON, headers=headers)
        return StreamingResponse(_json_document(m), media_type="application/json",
                                 headers=headers)

    def _ndjson(m: manifest.ManifestInfo) -> Iterator[bytes]:
        with connection() as conn:
            yield from manifest.body_lines(conn, m, site_id)

    def _json_document(m: manifest.ManifestInfo) -> Iterator[bytes]:
        with connection() as conn:
            chunks = manifest.body_lines(conn, m, site_id)
            head = next(chunks)
            yield b'{"header":' + head.rstrip(b"\n") + b',"codes":['
            first = True
            for chunk in chunks:
                lines = chunk.rstrip(b"\n").split(b"\n")
                yield (b"" if first else b",") + b",".join(lines)
                first = False
            yield b"]}"

    @app.post("/api/v1/manifests/{ref}/ack", response_model=AckResult,
              dependencies=[require("manifests:ack")])
    def ack_manifest(ref: Annotated[str, PathParam(min_length=1, max_length=64)]) -> AckResult:
        with connection() as conn:
            m = sealed(conn, ref)
            conn.execute("UPDATE outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                         (now_ms(), m.seq))
            acked = manifest.info(conn, m.seq)
        assert acked.acked_at is not None
        return AckResult(id=acked.manifest_id, seq=acked.seq, acked_at=acked.acked_at)

    @app.post("/api/v1/manifests/{ref}/refusal", response_model=RefusalResult,
              dependencies=[require("manifests:ack")])
    def refuse_manifest(ref: Annotated[str, PathParam(min_length=1, max_length=64)],
                        refusal: RefusalBody) -> RefusalResult:
        """The cloud will not take this manifest (its digest or signature did not verify):
        recorded, so the site sees the refusal instead of a manifest merely pending."""
        with connection() as conn:
            m = sealed(conn, ref)
            at = now_ms()
            push.record_refusal(conn, m.seq, refusal.reason, at)
        return RefusalResult(id=m.manifest_id, seq=m.seq, refused_at=at)

    @app.get("/api/v1/codes/{serial}", response_model=CodeState,
             dependencies=[require("codes:read")])
    def code_state(serial: Annotated[str, PathParam(min_length=1, max_length=64)]) -> CodeState:
        with connection() as conn:
            row = conn.execute(
                "SELECT c.serial, c.level, c.state, c.batch_id, p.serial FROM codes c "
                "LEFT JOIN codes p ON p.id = c.parent_id WHERE c.serial = ?", (serial,)
            ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "no such code at this site")
        state = State(row[2])
        return CodeState(serial=row[0], level=LEVEL_NAME[row[1]], state=state.name,
                         activated=state is State.ACTIVE, batch=row[3], parent=row[4])

    @app.get("/api/v1/batches/{batch_id}/manifest", dependencies=[require("manifests:read")],
             response_model=None)
    def batch_manifest(batch_id: Annotated[int, PathParam(ge=1, le=2**62)]) -> StreamingResponse:
        with connection() as conn:
            if conn.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,)).fetchone() is None:
                raise ApiError(404, "not_found", f"no batch {batch_id}")

        def lines() -> Iterator[bytes]:
            with connection() as conn:
                yield manifest.canonical({"batch": batch_id, "site": site_id})
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

        return StreamingResponse(lines(), media_type=NDJSON)

    @app.get("/api/v1/batches/{batch_id}/epcis", dependencies=[require("manifests:read")])
    def batch_epcis(batch_id: Annotated[int, PathParam(ge=1, le=2**62)],
                    after: Annotated[int, Query(ge=0, le=2**62)] = 0) -> StreamingResponse:
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

        return StreamingResponse(chunks(), media_type="application/ld+json")

    return app
