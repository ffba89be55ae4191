"""EPCIS 2.0 export: every document validates against the GS1 JSON Schema; ids are stable."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from edge.domain import aggregation, batches, flow, shipments
from edge.domain.lifecycle import Reason
from edge.store.database import Store
from line_config.models import SiteConfig
from simulators.standards import standards_dir
from sync import epcis
from tests.conftest import commissioned, packed_pallet, running_batch

STANDARDS = standards_dir()
SCHEMA_FILE = STANDARDS / "gs1-epcis" / "EPCIS-JSON-Schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def full_life(store: Store, site: SiteConfig) -> int:
    """A batch with every kind of event: commission, reject, void, pack, ship, cancel,
    decommission."""
    batch = running_batch(store, site, items=60)
    items = commissioned(store, batch, "item", 12)
    block = flow.reserve(store, batch, "p", "item", 4)
    flow.mark_printed(store, batch, "item", [block.codes[0].id, block.codes[1].id])
    flow.record_verdicts(store, batch, "item", [flow.Verdict(block.codes[0].id, Reason.NO_READ),
                                                flow.Verdict(block.codes[1].id)])
    flow.recover(store)  # the two never printed become VOID
    _, pallet = packed_pallet(store, batch, items)
    aggregation.decommission(store, items[9], operator="t", reason="QA sample")
    first = shipments.create(store, "D-7", "east", operator="t")
    shipments.add(store, first.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, first.id, operator="t")
    shipments.cancel(store, first.id, operator="t", reason="wrong truck")
    again = shipments.create(store, "D-8", "north", operator="t")
    shipments.add(store, again.id, pallet, operator="t", allow_mixed_batches=False)
    shipments.confirm(store, again.id, operator="t")
    return batch


def test_an_export_of_every_event_kind_validates(store: Store, site: SiteConfig,
                                                 validator: jsonschema.Draft7Validator) -> None:
    batch = full_life(store, site)
    doc = epcis.document(store.read(), site, batch, created_ms=1_790_000_000_000)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    steps: dict[str, int] = {}
    for event in doc["epcisBody"]["eventList"]:
        steps[event["bizStep"]] = steps.get(event["bizStep"], 0) + 1
    assert set(steps) == {"commissioning", "packing", "shipping", "void_shipping", "destroying",
                          "decommissioning"}
    assert steps["shipping"] == 2 and steps["packing"] == 3


def test_identifiers_are_gs1_digital_link_where_a_gtin_or_sscc_exists(
    store: Store, site: SiteConfig
) -> None:
    batch = full_life(store, site)
    events = list(epcis.batch_events(store.read(), site, batch))
    packing = [e for e in events if e["type"] == "AggregationEvent"]
    pallet_event = next(e for e in packing if e["parentID"].startswith("https://id.gs1.org/00/"))
    assert all(c.startswith("https://id.gs1.org/01/16901234567899/21/")
               for c in pallet_event["childEPCs"])
    item_uris = [u for e in events if e["bizStep"] == "commissioning" for u in e["epcList"]]
    assert any(u.startswith("https://id.gs1.org/01/06901234567892/21/") for u in item_uris)
    shipping = next(e for e in events if e["bizStep"] == "shipping")
    assert shipping["destinationList"][0]["destination"] == "urn:codeline:distributor:D-7"
    assert shipping["codeline:region"] == "east"
    commissioning = next(e for e in events if e["bizStep"] == "commissioning")
    assert commissioning["ilmd"]["cbvmda:lotNumber"] == "LOT1"


def test_event_ids_are_stable_across_two_exports(store: Store, site: SiteConfig) -> None:
    batch = full_life(store, site)
    first = [e["eventID"] for e in epcis.batch_events(store.read(), site, batch)]
    second = [e["eventID"] for e in epcis.batch_events(store.read(), site, batch)]
    assert first == second and len(set(first)) == len(first)


def test_the_shipped_examples_validate_too(validator: jsonschema.Draft7Validator) -> None:
    """The validator itself is sound: GS1's own examples pass, a broken event does not."""
    example: dict[str, Any] = json.loads(
        (STANDARDS / "gs1-epcis" / "examples" / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    assert not list(validator.iter_errors(example))
    broken = json.loads(json.dumps(example))
    broken["epcisBody"]["eventList"][0]["action"] = "SHIP"
    assert list(validator.iter_errors(broken))


def test_a_batch_with_nothing_printed_exports_an_empty_list(store: Store,
                                                            site: SiteConfig) -> None:
    batch = batches.create(store, site, "L1", "p1", "EMPTY", operator="t")
    doc = epcis.document(store.read(), site, batch.id, created_ms=0)
    assert doc["epcisBody"]["eventList"] == []
