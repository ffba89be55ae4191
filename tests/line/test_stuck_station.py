"""A station that stops working is noticed: when the case camera goes blind mid-batch, the
items keep being commissioned and none is packed; a real ``codeline run`` alarms once the
wait exceeds what the packaging and the rate allow (the PLC sees the alarm), instead of
printing on silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.line import LineSimSettings
from tests.line.harness import rig, until_alarm

pytestmark = pytest.mark.timeout(180)

EXECUTE = 6


async def test_a_blind_case_camera_is_alarmed_while_items_wait_for_a_case(
        tmp_path: Path) -> None:
    settings = LineSimSettings(seed=3, rate=40, transit_ms=500, case_camera_blind_after=2)
    async with rig(tmp_path, settings, 100 * 24, item_pool=5000) as r:
        await r.plc.run_batch("LOT1")
        await r.plc.wait_state(EXECUTE, within=60)
        alarm = await until_alarm(r.plc, "waiting for a case", within=120)
        assert "waiting for a case: the case station sealed none for" in alarm
        assert r.plc.state == EXECUTE  # alarmed, not held: the operator decides
        assert len(r.sim.cases) == 2
        assert r.log_path is not None
        alarms = [json.loads(line) for line in r.log_path.read_text().splitlines()
                  if line.startswith("{") and "waiting for a case" in line]
        assert len(alarms) == 1 and alarms[0]["station"] == "case"
        await r.plc.call("Abort")


class _Station:
    """What the watch reads of a case station."""

    level = "case"
    child_level = "item"
    station_id = "case"
    capacity = 24
    held: str | None = None

    def __init__(self) -> None:
        self.sealed = 0
        self.ctx = type("Ctx", (), {"ending": staticmethod(lambda: False)})()


def test_the_packing_watch_allows_what_packaging_and_rate_allow_and_no_more() -> None:
    from edge.daemon.packing_watch import MIN_WAIT_S, PackingWatch

    station = _Station()
    made = [0]
    watch = PackingWatch(station, lambda: made[0], lambda: 10.0, 24)  # type: ignore[arg-type]
    ticks = []
    for second in range(200):  # a case sealed every 2.4 s at 10 items/s: never alarmed
        made[0] += 10
        if second % 3 == 2:
            station.sealed += 1
        ticks.append(watch.tick(1.0, running=True))
    assert set(ticks) == {None}
    station.sealed += 1
    assert watch.tick(1.0, running=True) is None
    for _ in range(int(MIN_WAIT_S) + 5):  # held: time does not count
        made[0] += 10
        assert watch.tick(1.0, running=False) is None
    texts = [watch.tick(1.0, running=True) for _ in range(int(MIN_WAIT_S))]
    assert texts[:-1] == [None] * (len(texts) - 1) and texts[-1] is not None
    assert texts[-1].startswith(f"{made[0] - watch.baseline} items waiting for a case")
    assert watch.tick(1.0, running=True) is None  # alarmed once
    station.sealed += 1
    assert watch.tick(1.0, running=True) == ""  # packs again: the alarm clears
