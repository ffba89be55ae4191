"""What the pull API answers, as the OpenAPI document declares it: bodies, media types and
headers. Field names are the site's vocabulary (``sync.vocabulary``); times are RFC 3339 UTC."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NDJSON = "application/x-ndjson"
JSON_LD = "application/ld+json"
TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def Time(description: str) -> Any:  # noqa: N802 (a field type, named like one)
    """A time field: RFC 3339 UTC with milliseconds."""
    return Field(pattern=TIME, description=description, json_schema_extra={"format": "date-time"})


class Closed(BaseModel):
    """A body whose fields are all declared (a new one is a new API version)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Closed):
    """Every error: a stable machine code and a message for a person."""

    code: str = Field(description="e.g. unauthorized, forbidden, not_found, bad_request, gone")
    message: str


class Health(Closed):
    status: str
    site: str


class ApiVersions(Closed):
    """What a cloud reads first: which API versions this site serves and what it sends."""

    current: str = Field(description="the version to call, e.g. v2 (routes under /api/v2)")
    versions: dict[str, str] = Field(description="each version: current, or gone (410)")
    manifest_format: str = Field(description="the format every manifest header names")
    site: str


class ManifestSummary(Closed):
    seq: int = Field(description="the site's delivery order, the cursor of GET /manifests")
    id: str
    kind: str = Field(description="activation, or cancellation of one")
    shipment: int
    codes: int
    issued_at: str = Time("when the shipment's confirm or cancel issued it")
    acked_at: str | None = Time("when the cloud acknowledged it; null while pending")
    digest: str | None = Field(description="SHA-256 of the canonical NDJSON body, hex")
    signature: str | None = Field(description="Ed25519 over the digest, base64")


class ManifestPage(Closed):
    manifests: list[ManifestSummary]
    next_after: int


class AckResult(Closed):
    id: str
    seq: int
    acked_at: str = Time("when the acknowledgement was first recorded")


class RefusalBody(Closed):
    reason: str = Field(min_length=1, max_length=500)


class RefusalResult(Closed):
    id: str
    seq: int
    refused_at: str = Time("when the refusal was recorded")


class CodeState(Closed):
    serial: str
    level: str
    state: str
    activated: bool
    batch: int | None
    line: str | None
    parent: str | None


class ManifestBatch(Closed):
    id: int
    line: str
    product: str
    lot: str
    expiry: str | None


class ManifestSegment(Closed):
    segment: int
    segment_ref: str | None
    source: str
    origin: str | None
    line: str
    level: str
    codes: int


class Destination(Closed):
    distributor: str
    region: str
    distributor_gln: str | None


class Reference(Closed):
    type: str = Field(description="desadv, po, inv or bol")
    id: str


class AuditAnchor(Closed):
    seq: int
    hash: str


class ManifestHeader(Closed):
    format: str = Field(description="codeline-manifest/2")
    id: str
    seq: int
    kind: str
    site: str
    lines: list[str]
    batches: list[ManifestBatch]
    segments: list[ManifestSegment]
    shipment: int
    destination: Destination
    reference: Reference | None
    issued_at: str = Time("when the manifest was issued")
    counts: dict[str, int]
    codes: int
    audit: AuditAnchor | None = None


class ManifestCode(Closed):
    serial: str
    level: str
    parent: str | None
    batch: int | None
    line: str | None
    printed_at: str | None = Time("when the code was printed")
    segment: int | None = Field(description="the pool segment (码段) the code came from")
    segment_ref: str | None = Field(description="that segment's id at the brand's cloud")
    seq: int | None = Field(description="the code's number in its segment (流水号)")


class ManifestDocument(Closed):
    header: ManifestHeader
    codes: list[ManifestCode]


class BatchManifestHeader(Closed):
    format: str = Field(description="codeline-batch-manifest/1")
    batch: int
    site: str


class BatchManifestCode(Closed):
    serial: str
    level: str
    parent: str | None


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def ndjson(head: type[BaseModel], line: type[BaseModel]) -> dict[str, Any]:
    """An NDJSON body read as the array of its lines (as OpenAPI 3.2 reads the schema of a
    sequential media type): a header line first, then one line per code."""
    return {"schema": {"type": "array", "minItems": 1,
                       "items": {"anyOf": [_ref(head), _ref(line)]}}}


EPCIS_DOCUMENT: dict[str, Any] = {
    "description": "EPCIS 2.0 JSON-LD; the full rules are GS1's EPCIS JSON Schema",
    "type": "object",
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "properties": {
        "@context": {}, "type": {"const": "EPCISDocument"}, "schemaVersion": {"const": "2.0"},
        "creationDate": {"type": "string", "format": "date-time"},
        "epcisBody": {
            "type": "object", "required": ["eventList"],
            "properties": {"eventList": {"type": "array", "items": {
                "type": "object",
                "required": ["type", "eventID", "eventTime", "eventTimeZoneOffset"],
                "properties": {
                    "type": {"enum": ["ObjectEvent", "AggregationEvent", "TransactionEvent",
                                      "TransformationEvent", "AssociationEvent"]},
                    "eventID": {"type": "string", "pattern": "^ni:///sha-256;"},
                    "eventTime": {"type": "string", "format": "date-time"},
                    "eventTimeZoneOffset": {"type": "string",
                                            "pattern": r"^[+-]\d\d:\d\d$"}}}}}}},
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


MANIFEST_HEADERS = {
    "X-Manifest-Id": _header("the manifest's id"),
    "X-Manifest-Seq": _header("the manifest's sequence number"),
    "X-Manifest-Format": _header("the body's format, codeline-manifest/2"),
    "X-Manifest-Digest": _header("SHA-256 of the canonical NDJSON body, hex: verify before "
                                 "trusting the body"),
    "X-Manifest-Signature": _header("Ed25519 signature of the digest, base64, by the site's "
                                    "key (codeline sync keys public)"),
}

MANIFEST_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The manifest, streamed: one JSON document, or NDJSON (the signed, "
                   "canonical form: header line first, one line per code) when the Accept "
                   f"header names {NDJSON}",
    "headers": MANIFEST_HEADERS,
    "content": {"application/json": {"schema": _ref(ManifestDocument)},
                NDJSON: ndjson(ManifestHeader, ManifestCode)}}}

BATCH_MANIFEST_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The batch's active codes as NDJSON: a header line, then one line per code",
    "content": {NDJSON: ndjson(BatchManifestHeader, BatchManifestCode)}}}

EPCIS_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The batch's business events from its log, streamed",
    "content": {JSON_LD: {"schema": EPCIS_DOCUMENT}}}}

EXTRA_MODELS = (ManifestDocument, ManifestHeader, ManifestCode, BatchManifestHeader,
                BatchManifestCode)
"""Models named only by hand-written response declarations (``$ref``): the OpenAPI
document must still define them."""
