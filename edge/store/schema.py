"""The database schema, as an ordered list of migrations (``PRAGMA user_version``).

Tables are created with sqlite-utils; partial indexes and the triggers that keep the event
log, the audit log and issued outbox rows append-only are plain SQL. Codes are kept small
(integer states, levels and timestamps; the serial stored once) to stay within ~150 bytes a
code including indexes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by migrate() only: it costs every command 120 ms of start-up
    import sqlite_utils

from edge.store.idpack import pack


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.table("segments").create(
        {
            "id": int,
            "line_id": str,
            "level": int,
            "source": str,  # generated | imported
            "origin": str,  # file name of an import, or empty
            "created_at": int,
            "count": int,
        },
        pk="id",
        not_null={"line_id", "level", "source", "created_at", "count"},
    )
    db.table("batches").create(
        {
            "id": int,
            "line_id": str,
            "product_id": str,
            "lot": str,
            "expiry": str,
            "planned_qty": int,
            "items_per_case": int,
            "cases_per_pallet": int,
            "state": str,  # created | running | stopped | closed
            "created_at": int,
            "started_at": int,
            "stopped_at": int,
            "closed_at": int,
            "close_reason": str,
            "forced": int,
        },
        pk="id",
        not_null={"line_id", "product_id", "lot", "state", "created_at"},
    )
    db.table("reservations").create(
        {"id": int, "batch_id": int, "station_id": str, "level": int, "count": int, "at": int},
        pk="id",
        not_null={"batch_id", "station_id", "level", "count", "at"},
    )
    db.table("codes").create(
        {
            "id": int,
            "serial": str,
            "level": int,
            "state": int,
            "segment_id": int,
            "batch_id": int,
            "reservation_id": int,
            "parent_id": int,
            "reason": int,
            "printed_at": int,
            "verified_at": int,
        },
        pk="id",
        not_null={"serial", "level", "state", "segment_id"},
    )
    db.table("codes").create_index(["serial"], index_name="codes_serial", unique=True)
    db.execute("CREATE INDEX codes_parent ON codes(parent_id) WHERE parent_id IS NOT NULL")
    db.execute("CREATE INDEX codes_available ON codes(segment_id, id) WHERE state = 0")
    db.execute(
        "CREATE INDEX codes_batch ON codes(batch_id) WHERE batch_id IS NOT NULL"
    )
    db.table("containers").create(
        {
            "code_id": int,
            "level": int,
            "capacity": int,
            "child_count": int,
            "status": str,  # open | closed
            "partial_reason": str,
            "opened_at": int,
            "closed_at": int,
        },
        pk="code_id",
        not_null={"level", "capacity", "child_count", "status", "opened_at"},
    )
    db.table("shipments").create(
        {
            "id": int,
            "distributor": str,
            "region": str,
            "status": str,  # open | confirmed | cancelled
            "created_at": int,
            "confirmed_at": int,
            "cancelled_at": int,
            "cancel_reason": str,
            "code_count": int,
        },
        pk="id",
        not_null={"distributor", "region", "status", "created_at"},
    )
    db.execute(
        "CREATE TABLE shipment_containers (shipment_id INTEGER NOT NULL, "
        "code_id INTEGER NOT NULL, PRIMARY KEY (shipment_id, code_id)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX shipment_containers_code ON shipment_containers(code_id)")
    db.table("events").create(
        {
            "id": int,
            "at": int,
            "kind": str,
            "line_id": str,
            "batch_id": int,
            "code_id": int,
            "shipment_id": int,
            "count": int,
            "detail": str,
        },
        pk="id",
        not_null={"at", "kind"},
    )
    db.execute("CREATE INDEX events_code ON events(code_id) WHERE code_id IS NOT NULL")
    db.execute("CREATE INDEX events_batch ON events(batch_id) WHERE batch_id IS NOT NULL")
    db.table("audit").create(
        {
            "id": int,
            "at": int,
            "operator": str,
            "action": str,
            "target": str,
            "reason": str,
            "detail": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
        not_null={"at", "operator", "action", "target", "prev_hash", "hash"},
    )
    db.execute(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "manifest_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, shipment_id INTEGER NOT NULL, "
        "created_at INTEGER NOT NULL, acked_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0, "
        "last_attempt_at INTEGER, last_error TEXT)"
    )
    db.table("counters").create({"name": str, "value": int}, pk="name", not_null={"value"})
    for table in ("events", "audit"):
        for op in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_append_only_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    db.execute(
        "CREATE TRIGGER outbox_immutable BEFORE UPDATE OF manifest_id, kind, shipment_id, "
        "created_at ON outbox BEGIN SELECT RAISE(ABORT, 'an issued manifest is immutable'); END"
    )
    db.execute(
        "CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox "
        "BEGIN SELECT RAISE(ABORT, 'an issued manifest is never deleted'); END"
    )


def _v2_manifest_snapshots(db: sqlite_utils.Database) -> None:
    """What each manifest covers, frozen when it is issued; its digest and signature."""
    db.execute(
        "CREATE TABLE manifest_codes (seq INTEGER NOT NULL, code_id INTEGER NOT NULL, "
        "parent_id INTEGER, PRIMARY KEY (seq, code_id)) WITHOUT ROWID"
    )
    db.execute("ALTER TABLE outbox ADD COLUMN code_count INTEGER")
    db.execute("ALTER TABLE outbox ADD COLUMN digest TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN signature TEXT")
    db.execute(
        "CREATE TRIGGER outbox_sealed BEFORE UPDATE OF digest, signature ON outbox "
        "WHEN OLD.digest IS NOT NULL "
        "BEGIN SELECT RAISE(ABORT, 'a signed manifest is immutable'); END"
    )
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER manifest_codes_frozen_{op.lower()} BEFORE {op} ON manifest_codes "
            "BEGIN SELECT RAISE(ABORT, 'an issued manifest is immutable'); END"
        )


def _v3_api_tokens(db: sqlite_utils.Database) -> None:
    """Bearer tokens of the pull API, stored as SHA-256 hashes with their scopes."""
    db.table("api_tokens").create(
        {"id": int, "name": str, "scopes": str, "token_hash": str, "created_at": int,
         "revoked_at": int, "last_used_at": int},
        pk="id",
        not_null={"name", "scopes", "token_hash", "created_at"},
    )
    db.table("api_tokens").create_index(["token_hash"], unique=True)


def _v4_frozen_manifests(db: sqlite_utils.Database) -> None:
    """A manifest's code list takes rows only while its issuing transaction is open: the
    outbox row is frozen when that transaction ends, and frozen stays frozen. (Manifests
    issued before this version are frozen as they are.)"""
    db.execute("ALTER TABLE outbox ADD COLUMN frozen INTEGER NOT NULL DEFAULT 1")
    db.execute(
        "CREATE TRIGGER manifest_codes_frozen_insert BEFORE INSERT ON manifest_codes "
        "WHEN coalesce((SELECT frozen FROM outbox WHERE seq = NEW.seq), 1) "
        "BEGIN SELECT RAISE(ABORT, 'an issued manifest is immutable: no code can be added'); "
        "END"
    )
    db.execute(
        "CREATE TRIGGER outbox_stays_frozen BEFORE UPDATE OF frozen ON outbox "
        "WHEN OLD.frozen AND NOT NEW.frozen "
        "BEGIN SELECT RAISE(ABORT, 'an issued manifest is immutable'); END"
    )


def _v5_refusals(db: sqlite_utils.Database) -> None:
    """A manifest the cloud refused (its digest or signature did not verify): when and why,
    so that `sync status` names it instead of counting it as merely pending."""
    db.execute("ALTER TABLE outbox ADD COLUMN refused_at INTEGER")
    db.execute("ALTER TABLE outbox ADD COLUMN refusal TEXT")


def _v6_case_arrivals(db: sqlite_utils.Database) -> None:
    """When the pallet station saw a sealed case arrive on the pallet it is building: after
    a restart the cases seen are on the open pallet, the others still on their way."""
    db.execute("ALTER TABLE containers ADD COLUMN arrived_at INTEGER")


def _v7_audit_anchors(db: sqlite_utils.Database) -> None:
    """The audit log's head (entry id and hash) when a manifest was issued: the manifest
    carries it, signed, so the cloud holds checkpoints of the chain."""
    db.execute("ALTER TABLE outbox ADD COLUMN audit_seq INTEGER")
    db.execute("ALTER TABLE outbox ADD COLUMN audit_hash TEXT")


def _v8_code_history(db: sqlite_utils.Database) -> None:
    """Every state change of every code, append-only (edge.domain.history); the codes in a
    state other than AVAILABLE when this version arrives are its first entries."""
    db.execute(
        "CREATE TABLE code_history (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, "
        "state INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, codes BLOB NOT NULL)")
    db.execute("CREATE INDEX code_history_reserved ON code_history(hi, lo) WHERE state = 1")
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER code_history_append_only_{op.lower()} BEFORE {op} ON "
            "code_history BEGIN SELECT RAISE(ABORT, 'code_history is append-only'); END")
    at = int(time.time() * 1000)
    # Every state but AVAILABLE and REVOKED was reached through RESERVED: entered first, so
    # the reserve path knows those codes were handed out; then the state they are in.
    for entered, states in ((1, range(1, 8)), *((state, (state,)) for state in range(2, 9))):
        marks = ",".join("?" * len(states))
        last = 0
        while True:
            ids = [r[0] for r in db.execute(
                f"SELECT id FROM codes WHERE state IN ({marks}) AND id > ? ORDER BY id "
                "LIMIT 100000", (*states, last)).fetchall()]
            if not ids:
                break
            db.execute("INSERT INTO code_history (at, state, lo, hi, codes) "
                       "VALUES (?, ?, ?, ?, ?)", (at, entered, ids[0], ids[-1], pack(ids)))
            last = ids[-1]


def _v9_business_events(db: sqlite_utils.Database) -> None:
    """The business event log (edge.domain.business_events), append-only; a batch's frozen
    identity and a shipment's despatch reference and distributor GLN, which its events name;
    a code's sequence number in its segment and a segment's id at the cloud (码段/流水号).
    Batches made before this version have no events."""
    db.execute(
        "CREATE TABLE business_events (seq INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL, "
        "at INTEGER NOT NULL, kind TEXT NOT NULL, event_id TEXT NOT NULL, body TEXT NOT NULL)")
    db.execute("CREATE INDEX business_events_batch ON business_events(batch_id, seq)")
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER business_events_append_only_{op.lower()} BEFORE {op} ON "
            "business_events BEGIN SELECT RAISE(ABORT, 'the business event log is "
            "append-only'); END")
    db.execute("ALTER TABLE batches ADD COLUMN identity TEXT")
    for column in ("reference", "reference_type", "distributor_gln"):
        db.execute(f"ALTER TABLE shipments ADD COLUMN {column} TEXT")
    db.execute("ALTER TABLE segments ADD COLUMN external_id TEXT")
    db.execute("ALTER TABLE codes ADD COLUMN seq INTEGER")
    # Codes from before: their place in the segment's insertion order.
    db.execute("CREATE TEMP TABLE segment_first (segment_id INTEGER PRIMARY KEY, "
               "first INTEGER NOT NULL)")
    db.execute("INSERT INTO segment_first SELECT segment_id, min(id) FROM codes "
               "GROUP BY segment_id")
    db.execute("UPDATE codes SET seq = id - (SELECT first FROM segment_first f WHERE "
               "f.segment_id = codes.segment_id) + 1")
    db.execute("DROP TABLE segment_first")


_LEVEL_NAMES = ("item", "case", "pallet")
_STATE_NAMES = ("AVAILABLE", "RESERVED", "PRINTED", "COMMISSIONED", "ACTIVE", "REJECTED", "VOID",
                "DECOMMISSIONED", "REVOKED")
_REASON_NAMES = {1: "no-read", 2: "misread", 3: "duplicate", 4: "unknown", 5: "grade",
                 6: "no-verdict", 10: "unconfirmed", 11: "printer-reset",
                 12: "batch-force-closed", 13: "operator"}


def _named(column: str, names: dict[int, str]) -> str:
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in names.items())
    return f"CASE {column} {whens} END"


def _time(column: str) -> str:
    """Stored epoch milliseconds as RFC 3339 UTC text (NULL stays NULL)."""
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {column} / 1000.0, 'unixepoch')"


def _v10_named_views(db: sqlite_utils.Database) -> None:
    """Views a person can read in sqlite-utils or Datasette: names instead of numbers,
    RFC 3339 UTC times, a code's batch, lot and container. The names are the domain's
    (tests hold them to its enums)."""
    level = _named("c.level", dict(enumerate(_LEVEL_NAMES)))
    db.execute(f"""CREATE VIEW codes_v AS SELECT c.serial, {level} AS level,
        {_named("c.state", dict(enumerate(_STATE_NAMES)))} AS state,
        {_named("c.reason", _REASON_NAMES)} AS reason, b.line_id AS line, c.batch_id AS batch,
        b.lot, b.product_id AS product, p.serial AS container, c.segment_id AS segment,
        s.external_id AS segment_ref, c.seq, {_time("c.printed_at")} AS printed_at,
        {_time("c.verified_at")} AS verified_at
        FROM codes c LEFT JOIN batches b ON b.id = c.batch_id
        LEFT JOIN codes p ON p.id = c.parent_id LEFT JOIN segments s ON s.id = c.segment_id""")
    db.execute(f"""CREATE VIEW containers_v AS SELECT c.serial, {level} AS level,
        k.status, k.child_count AS children, k.capacity, k.partial_reason,
        p.serial AS parent, b.lot, {_time("k.opened_at")} AS opened_at,
        {_time("k.closed_at")} AS closed_at
        FROM containers k JOIN codes c ON c.id = k.code_id
        LEFT JOIN codes p ON p.id = c.parent_id LEFT JOIN batches b ON b.id = c.batch_id""")
    db.execute(f"""CREATE VIEW batches_v AS SELECT id, line_id AS line, product_id AS product,
        lot, expiry, planned_qty AS planned, state, {_time("created_at")} AS created_at,
        {_time("started_at")} AS started_at, {_time("stopped_at")} AS stopped_at,
        {_time("closed_at")} AS closed_at, close_reason, forced FROM batches""")
    db.execute(f"""CREATE VIEW shipments_v AS SELECT id, distributor, region, status,
        reference, distributor_gln, code_count AS codes, {_time("created_at")} AS created_at,
        {_time("confirmed_at")} AS confirmed_at, {_time("cancelled_at")} AS cancelled_at,
        cancel_reason FROM shipments""")
    db.execute(f"""CREATE VIEW audit_v AS SELECT id, {_time("at")} AS at, operator, action,
        target, reason, detail FROM audit""")


def _v11_retired_segments(db: sqlite_utils.Database) -> None:
    """A segment withdrawn by ``pool retire``: when and why (its codes are gone)."""
    db.execute("ALTER TABLE segments ADD COLUMN retired_at INTEGER")
    db.execute("ALTER TABLE segments ADD COLUMN retire_reason TEXT")


def _v12_loading_segments(db: sqlite_utils.Database) -> None:
    """A segment still being loaded in short transactions: the loading process's id, NULL
    once published. No line reserves from it."""
    db.execute("ALTER TABLE segments ADD COLUMN loading INTEGER")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1_initial,
    _v2_manifest_snapshots,
    _v3_api_tokens,
    _v4_frozen_manifests,
    _v5_refusals,
    _v6_case_arrivals,
    _v7_audit_anchors,
    _v8_code_history,
    _v9_business_events,
    _v10_named_views,
    _v11_retired_segments,
    _v12_loading_segments,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one migration per transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version >= SCHEMA_VERSION:
        return SCHEMA_VERSION
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute(f"PRAGMA user_version={number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return SCHEMA_VERSION
