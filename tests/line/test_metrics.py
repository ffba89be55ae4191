"""``GET /metrics`` of a real ``codeline run``, read with Prometheus' own text parser and held
against the physical line and the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulators.line import LineSimSettings
from tests.line.harness import COMPLETE, rig

pytestmark = pytest.mark.timeout(240)

PLANNED = 2 * 10 * 24


async def test_metrics_agree_with_the_physical_line_and_the_database(tmp_path: Path) -> None:
    settings = LineSimSettings(seed=3, rate=200, transit_ms=600, noread_rate=0.03)
    # The pull API runs elsewhere: /metrics has the API's address to itself.
    async with rig(tmp_path, settings, PLANNED, sync_in_run=("metrics",)) as r:
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(COMPLETE, within=120)
        url = f"http://127.0.0.1:{r.config.sync.api.port}/metrics"
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(response.text)
                   for s in family.samples}

        def value(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted({"line": "L1", **labels}.items())))]

        assert value("codeline_line_state") == COMPLETE
        assert value("codeline_items_printed_total") == len(r.sim.items.items)
        assert value("codeline_items_commissioned_total") == PLANNED
        rejected = {dict(labels)["reason"]: v for (name, labels), v in samples.items()
                    if name == "codeline_items_rejected_total"}
        assert sum(rejected.values()) == len(r.sim.rejected) > 0 and "no-read" in rejected
        assert value("codeline_containers_sealed_total", level="case") == len(r.sim.cases)
        assert value("codeline_items_in_transit") == 0
        for device in r.config.lines[0].devices:
            assert value("codeline_device_up", device=device.id) == 1
        with sqlite3.connect(r.db_path) as db:
            left = dict(db.execute(
                "SELECT s.level, count(*) FROM codes c JOIN segments s ON s.id = c.segment_id "
                "WHERE c.state = 0 AND s.line_id = 'L1' GROUP BY s.level").fetchall())
        assert value("codeline_pool_available_codes", level="item") == left[0]
        assert value("codeline_pool_available_codes", level="case") == left[1]
        site = (("site", r.config.site.id),)
        assert samples[("codeline_outbox_pending_manifests", site)] == 0
        assert samples[("codeline_push_last_attempt_timestamp_seconds", site)] == 0
        commits = value("codeline_commit_seconds_count")
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                         if name == "codeline_commit_seconds_bucket")
        assert commits > 0 and buckets[-1] == (float("inf"), commits)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
