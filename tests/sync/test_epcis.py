"""EPCIS 2.0 from the business event log: valid against the GS1 JSON Schema, event ids equal
to GS1's reference event-hash generator, history that rework appends to and never rewrites,
and only events that happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from epcis_event_hash_generator import hash_generator
from epcis_event_hash_generator.json_to_py import event_list_from_epcis_document_json

from edge.domain import aggregation, batches, flow, shipments
from edge.domain.event_hash import event_id, namespaces_of
from edge.domain.lifecycle import Reason
from edge.store.database import Store
from line_config.loading import parse_config
from line_config.models import SiteConfig
from line_config.standards import standards_dir
from sync import epcis
from tests.conftest import SMALL_SITE, commissioned, packed_pallet, running_batch

STANDARDS = standards_dir()
SCHEMA_FILE = STANDARDS / "gs1-epcis" / "EPCIS-JSON-Schema.json"
EXAMPLES = sorted((STANDARDS / "gs1-epcis" / "examples").glob("*.jsonld"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def reference_ids(document: dict[str, Any]) -> list[str]:
    """The event ids GS1's reference implementation gives the events of ``document``."""
    events = event_list_from_epcis_document_json(json.loads(json.dumps(document)))
    return list(hash_generator.epcis_hashes_from_events(events))


def assert_valid(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def full_life(store: Store, site: SiteConfig) -> tuple[int, dict[str, Any]]:
    """A batch with every kind of event: commission, reject, void, pack, ship, cancel,
    decommission; returns it and what was done to whom."""
    batch = running_batch(store, site, items=60)
    items = commissioned(store, batch, "item", 12)
    block = flow.reserve(store, batch, "p", "item", 4)
    flow.mark_printed(store, batch, "item", [block.codes[0].id, block.codes[1].id])
    flow.record_verdicts(store, batch, "item", [flow.Verdict(block.codes[0].id, Reason.NO_READ),
                                                flow.Verdict(block.codes[1].id)])
    flow.recover(store)  # the two never printed become VOID
    cases, pallet = packed_pallet(store, batch, items)
    aggregation.decommission(store, items[9], operator="t", reason="QA sample")
    loose_case = commissioned(store, batch, "case", 1)[0]
    aggregation.pack(store, loose_case, [items[8], items[10], items[11], block.codes[1].serial],
                     operator="t", close=True)
    first = shipments.create(store, "D-7", "east", operator="t", reference="DN-2026-0001",
                             distributor_gln="9520001111112")
    shipments.add(store, first.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, first.id, operator="t")
    shipments.cancel(store, first.id, operator="t", reason="wrong truck")
    again = shipments.create(store, "D-8", "north", operator="t")
    shipments.add(store, again.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, again.id, operator="t")
    facts = {"batch": batch, "items": items, "loose_case": loose_case,
             "rejected": block.codes[0].serial, "voided": [c.serial for c in block.codes[2:]]}
    return batch, facts


def rework(store: Store, facts: dict[str, Any]) -> None:
    """A case not shipped is reopened: an item replaced by a new one, another unpacked and
    decommissioned and its place filled, the case closed again."""
    case, items = facts["loose_case"], facts["items"]
    spares = commissioned(store, facts["batch"], "item", 2)
    aggregation.reopen(store, case, operator="t", reason="bad cap")
    aggregation.replace(store, items[8], spares[0], operator="t", reason="bad cap")
    aggregation.unpack(store, items[10], operator="t", reason="dented")
    aggregation.decommission(store, items[10], operator="t", reason="dented")
    aggregation.pack(store, case, [spares[1]], operator="t", close=True)


def test_an_export_of_every_event_kind_validates_and_every_id_is_gs1s_hash(
        store: Store, site: SiteConfig, validator: jsonschema.Draft7Validator) -> None:
    batch, _ = full_life(store, site)
    doc = epcis.document(store.read(), batch, created_ms=1_790_000_000_000)
    assert_valid(validator, doc)
    events = doc["epcisBody"]["eventList"]
    assert [e["eventID"] for e in events] == reference_ids(doc)
    steps = [e["bizStep"] for e in events]
    assert set(steps) == {"commissioning", "packing", "shipping", "void_shipping",
                          "decommissioning"}
    assert steps.count("shipping") == 2 and steps.count("packing") == 4


def test_rework_appends_to_the_history_and_rewrites_nothing(
        store: Store, site: SiteConfig, validator: jsonschema.Draft7Validator) -> None:
    batch, facts = full_life(store, site)
    before = list(epcis.event_texts(store.read(), epcis.span(store.read(), batch)))
    rework(store, facts)
    after_doc = epcis.document(store.read(), batch, created_ms=1_790_000_000_000)
    assert_valid(validator, after_doc)
    after = list(epcis.event_texts(store.read(), epcis.span(store.read(), batch)))
    assert after[:len(before)] == before, "the earlier export is a prefix, byte for byte"
    added = [json.loads(t) for t in after[len(before):]]
    assert [(e["type"], e["action"], e["bizStep"]) for e in added] == [
        ("ObjectEvent", "ADD", "commissioning"),       # the spares
        ("AggregationEvent", "DELETE", "unpacking"),   # replace: the old item out
        ("AggregationEvent", "ADD", "packing"),        # and the spare in
        ("AggregationEvent", "DELETE", "unpacking"),   # the dented one out
        ("ObjectEvent", "DELETE", "decommissioning"),  # and withdrawn
        ("AggregationEvent", "ADD", "packing"),        # its replacement in
    ]
    assert [e["eventID"] for e in after_doc["epcisBody"]["eventList"]] == \
        reference_ids(after_doc)


def test_codes_never_commissioned_appear_in_no_event(store: Store, site: SiteConfig) -> None:
    batch, facts = full_life(store, site)
    text = "\n".join(epcis.event_texts(store.read(), epcis.span(store.read(), batch)))
    assert facts["rejected"] not in text
    assert not any(serial in text for serial in facts["voided"])
    assert "destroying" not in text


def test_lot_and_expiry_only_on_trade_items(store: Store, site: SiteConfig) -> None:
    batch, _ = full_life(store, site)
    for event in epcis.batch_events(store.read(), batch):
        if event["bizStep"] != "commissioning":
            assert "ilmd" not in event
            continue
        sscc = all(e.startswith("https://id.gs1.org/00/") for e in event["epcList"])
        assert ("ilmd" in event) != sscc, event["epcList"][0]
        if not sscc:
            assert event["ilmd"]["cbvmda:lotNumber"] == "LOT1"


def test_every_event_says_where_and_shipping_says_from_whom_to_whom(
        store: Store, site: SiteConfig) -> None:
    batch, _ = full_life(store, site)
    events = list(epcis.batch_events(store.read(), batch))
    for event in events:
        assert event["readPoint"] == {"id": "https://id.gs1.org/414/6901234000009/254/L1"}
        assert event["bizLocation"] == {"id": "https://id.gs1.org/414/6901234000009"}
        assert event["eventTimeZoneOffset"] == "+08:00"
    shipped = [e for e in events if e["bizStep"] == "shipping"]
    first, second = shipped
    assert first["sourceList"] == [
        {"type": "owning_party", "source": "https://id.gs1.org/417/6901234000009"},
        {"type": "location", "source": "https://id.gs1.org/414/6901234000009"}]
    assert first["destinationList"] == [
        {"type": "owning_party", "destination": "https://id.gs1.org/417/9520001111112"}]
    assert first["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000009:DN-2026-0001"}]
    assert second["destinationList"][0]["destination"] == "urn:codeline:distributor:D-8"
    assert "bizTransactionList" not in second
    assert all(e.startswith("https://id.gs1.org/00/") for e in first["epcList"])


def test_a_site_without_a_gln_names_itself_by_urn(store: Store) -> None:
    site = parse_config(SMALL_SITE.replace('gln: "6901234000009", ', ""))
    batch = running_batch(store, site, items=8)
    commissioned(store, batch, "item", 2)
    (event,) = epcis.batch_events(store.read(), batch)
    assert event["readPoint"]["id"] == "urn:codeline:test-site:line:L1"
    assert event["bizLocation"]["id"] == "urn:codeline:test-site"


def test_the_log_refuses_to_be_changed_or_emptied(store: Store, site: SiteConfig) -> None:
    batch, _ = full_life(store, site)
    with pytest.raises(Exception, match="append-only"), store.transaction() as conn:
        conn.execute("UPDATE business_events SET body = '{}' WHERE batch_id = ?", (batch,))
    with pytest.raises(Exception, match="append-only"), store.transaction() as conn:
        conn.execute("DELETE FROM business_events")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_gs1s_example_events_hash_as_gs1s_reference_does(example: Path) -> None:
    doc = json.loads(example.read_text())
    ours = [event_id(e, namespaces_of(doc)) for e in doc["epcisBody"]["eventList"]]
    assert ours == reference_ids(doc)


def test_the_shipped_examples_validate_too(validator: jsonschema.Draft7Validator) -> None:
    """The validator itself is sound: GS1's own examples pass, a broken event does not."""
    example: dict[str, Any] = json.loads(
        (STANDARDS / "gs1-epcis" / "examples" / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    assert not list(validator.iter_errors(example))
    broken = json.loads(json.dumps(example))
    broken["epcisBody"]["eventList"][0]["action"] = "SHIP"
    assert list(validator.iter_errors(broken))


def test_a_batch_with_nothing_commissioned_exports_an_empty_list(store: Store,
                                                                 site: SiteConfig) -> None:
    batch = batches.create(store, site, "L1", "p1", "EMPTY", operator="t")
    doc = epcis.document(store.read(), batch.id, created_ms=0)
    assert doc["epcisBody"]["eventList"] == []
