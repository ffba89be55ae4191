"""PackML: the state table as a rule, and the commands as a PLC sends them over OPC-UA."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua.ua.uaerrors import BadInvalidState
from hypothesis import given
from hypothesis import strategies as st

from edge.cli.line_harness import loopback_config, running_line, stock_line
from edge.daemon.packml import ACTING_DONE, TRANSITIONS, Command, CommandRefused, PackML, State
from edge.domain import batches
from edge.store.database import Store
from line_config.loading import example_path, load_config
from simulators.line import LineSimSettings

pytestmark = pytest.mark.timeout(120)

SUSPENDED, EXECUTE, HELD, COMPLETE = 5, 6, 11, 17


@given(st.lists(st.one_of(st.sampled_from(list(Command)), st.just("done")), max_size=60))
def test_packml_moves_only_along_its_table_and_a_refused_command_changes_nothing(
        steps: list[Command | str]) -> None:
    packml = PackML()
    for step in steps:
        before = packml.state
        if step == "done":
            expected = ACTING_DONE.get(before)
            if expected is None:
                with pytest.raises(CommandRefused):
                    packml.done()
                assert packml.state is before
            else:
                assert packml.done() is expected
            continue
        assert isinstance(step, Command)
        target = TRANSITIONS[step].get(before)
        if target is None:
            with pytest.raises(CommandRefused, match=before.label):
                packml.command(step)
            assert packml.state is before
        else:
            assert packml.command(step) is target


async def test_suspend_keeps_the_printer_buffer_and_hold_refuses_start(tmp_path: Path) -> None:
    config = loopback_config(load_config(example_path("simulated")), tmp_path, sync_in_run=())
    db_path = Path(config.store.path)
    planned = 240
    stock_line(config, db_path, {"item": planned * 2, "case": 40, "pallet": 5}, "LOT1",
               planned, "test")
    settings = LineSimSettings(rate=150, transit_ms=400)
    async with running_line(config, db_path, tmp_path, settings) as run:
        plc, runtime = run.plc, run.site.lines[0]
        await plc.run_batch("LOT1")
        await plc.wait_state(EXECUTE, within=30)
        flow = runtime.flow
        assert flow is not None
        await flow.settled(lambda: flow.commissioned >= 24)

        await plc.call("Suspend")
        await plc.wait_state(SUSPENDED, within=10)
        buffered = runtime.devices.printer.pending
        assert buffered > 0
        await flow.settled(lambda: flow.in_fifo == 0)  # the conveyor ran empty
        assert runtime.devices.printer.pending == buffered  # armed, buffer kept
        with Store(db_path) as store:
            assert batches.report(store.read(), 1).levels["item"].void == 0
        with pytest.raises(BadInvalidState):
            await plc.call("Start")
        assert runtime.state is State.SUSPENDED
        await plc.call("Unsuspend")
        await plc.wait_state(EXECUTE, within=10)

        await plc.call("Hold")
        await plc.wait_state(HELD, within=10)
        with pytest.raises(BadInvalidState):
            await plc.call("Unsuspend")
        await plc.call("Unhold")
        await plc.wait_state(EXECUTE, within=10)
        await plc.wait_state(COMPLETE, within=60)
        run.check_alive()
        assert runtime.counters.batch.commissioned == planned
        assert plc.rejected_no_verdict == 0


@given(st.lists(st.tuples(st.sampled_from(list(Command)), st.floats(0, 1000)), max_size=40))
def test_the_time_in_each_state_adds_up_to_the_time_elapsed(
        steps: list[tuple[Command, float]]) -> None:
    now = [0.0]
    packml = PackML(clock=lambda: now[0])
    for command, pause in steps:
        now[0] += pause
        if packml.allowed(command):
            before = packml.state
            packml.command(command)
            assert packml.requested is TRANSITIONS[command][before]
            assert packml.seconds_in_state() == 0
    assert sum(packml.seconds_per_state().values()) == pytest.approx(now[0])
