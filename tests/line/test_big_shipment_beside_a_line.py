"""A big shipment is confirmed at the dock (`codeline ship confirm`, its own process: codes
activated, manifest listed, digested and signed) while a line runs on the same database: no
transaction holds the write lock long enough to delay the line's verdicts, so no good item
reaches the gate without one (the gate would reject it), and the line matches the database
item by item. (Confirmed in one transaction, 150,000 codes held the lock about half a
second: longer than the 400 ms an item takes from the printer to the gate here.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store import pack_all, produce
from edge.domain import batches, pool, shipments
from edge.store.database import Store
from line_config.models import SiteConfig
from simulators.line import LineSimSettings
from sync import keys
from tests.line.harness import compare, printed, rig, wait_complete

# solo: whether each item gets its verdict within its 400 ms is a timing figure of a real
# line, which two other test workers on the same two cores would disturb.
pytestmark = [pytest.mark.timeout(300), pytest.mark.solo]

EXECUTE = 6
BIG = 150_000


def ship_a_big_batch(config: SiteConfig, db: Path, items: int) -> int:
    """A finished batch of ``items`` packed onto pallets, all on one open shipment: its id."""
    line = config.lines[0]
    per_case, per_pallet = line.packaging.items_per_case, line.packaging.cases_per_pallet
    cases_n = items // per_case
    pallets_n = cases_n // per_pallet
    with Store(db) as store:
        pool.generate(store, line, "item", cases_n * per_case, operator="t")
        pool.generate(store, line, "case", cases_n, operator="t")
        pool.generate(store, line, "pallet", pallets_n, operator="t")
        batch = batches.create(store, config, line.id, config.products[0].id, "BIG",
                               operator="t")
        batches.start(store, batch.id, operator="t")
        item_codes = produce(store, batch.id, "item", pallets_n * per_pallet * per_case, 5000)
        case_codes = produce(store, batch.id, "case", pallets_n * per_pallet, 5000)
        pallet_codes = produce(store, batch.id, "pallet", pallets_n)
        pack_all(store, item_codes, case_codes, pallet_codes, per_case, per_pallet, "t")
        batches.stop(store, batch.id, operator="t")
        shipment = shipments.create(store, "D1", "east", operator="t")
        for pallet in pallet_codes:
            shipments.add(store, shipment.id, pallet, operator="t", allow_mixed_batches=False)
        return shipment.id


async def test_a_big_shipment_confirmed_beside_a_running_line_costs_no_good_item(
        tmp_path: Path) -> None:
    settings = LineSimSettings(seed=8, rate=200, transit_ms=400, noread_rate=0.01)
    async with rig(tmp_path, settings, 8 * 10 * 24, item_pool=4000) as r:
        await r.plc.connected.wait()  # the controller's start-up recovery is over
        shipment_id = await asyncio.to_thread(ship_a_big_batch, r.config, r.db_path, BIG)
        keys.generate(Path(r.config.sync.signing_key_file))
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(EXECUTE, within=60)
        await printed(r, 100)
        confirm = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.cli.main", "--config", str(r.config_path), "ship",
            "confirm", str(shipment_id), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await confirm.communicate()
        assert confirm.returncode == 0, err.decode()
        assert r.plc.state == EXECUTE  # the line was still running when the confirm ended
        with Store(r.db_path) as store:
            confirmed = shipments.get(store.read(), shipment_id)
        assert confirmed.status == "confirmed" and confirmed.code_count is not None
        assert confirmed.code_count > BIG
        await wait_complete(r.plc, 180)
        assert await r.stop_daemon() == 0
        assert r.plc.rejected_no_verdict == 0
        found = compare(r)
        assert found.problems == []
        assert found.stranded == 0
