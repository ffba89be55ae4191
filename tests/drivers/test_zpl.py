"""The ZPL driver against the label printer simulator, with a DMCC label verifier."""

from __future__ import annotations

import re

import pytest

from drivers.errors import DeviceFault
from drivers.labels.zpl import ZplPrinter
from drivers.labels.zpl_codec import LabelText, datamatrix_label, parse_format, sscc_label
from drivers.readers.dmcc import DmccReader
from line_config.devices import DmccReader as DmccConfig
from line_config.devices import ZplLabelPrinter as ZplConfig
from simulators.dmcc import DmccReaderSim, DmccSettings
from simulators.zpl import ZplPrinterSim, ZplSettings
from tests.drivers.helpers import tcp


async def start(settings: ZplSettings) -> tuple[ZplPrinterSim, ZplPrinter, DmccReaderSim,
                                                  DmccReader]:
    sim = ZplPrinterSim(settings)
    verifier = DmccReaderSim(DmccSettings(send_grade=False), sim.labels)
    printer = ZplPrinter(ZplConfig(id="labeler", driver="zpl", transport=tcp(
        await sim.serve_tcp()), confirm_timeout_ms=300))
    reader = DmccReader(DmccConfig(id="label-reader", driver="dmcc",
                                   transport=tcp(await verifier.serve_tcp())))
    await printer.connect(attempts=3)
    await reader.connect(attempts=3)
    return sim, printer, verifier, reader


async def stop(printer: ZplPrinter, reader: DmccReader, sim: ZplPrinterSim,
               verifier: DmccReaderSim) -> None:
    await printer.close()
    await reader.close()
    await sim.stop()
    await verifier.stop()


def case_payload(n: int) -> str:
    return "0116901234567899" + f"10L7\x1d21CASE{n:04d}"


async def test_a_label_is_confirmed_by_the_odometer_and_reads_back() -> None:
    sim, printer, verifier, reader = await start(ZplSettings())
    try:
        await printer.print_label(datamatrix_label(case_payload(1), LabelText(("Tea",))))
        assert (await reader.read()).data == case_payload(1)
        await printer.print_label(sscc_label("369012340000000420", LabelText(("Pallet",))))
        assert (await reader.read()).data == "00369012340000000420"
        assert sim.odometer == 2 and printer.labels_confirmed == 2
    finally:
        await stop(printer, reader, sim, verifier)


@pytest.mark.parametrize("fault, words", [
    ({"ribbon_out_after": 1}, "ribbon out"),
    ({"paper_out_after": 1}, "media out"),
    ({"head_open": True}, "head open"),
    ({"paused": True}, "paused"),
])
async def test_printer_faults_refuse_the_label(fault: dict[str, object], words: str) -> None:
    sim, printer, verifier, reader = await start(ZplSettings.model_validate(fault))
    try:
        if "after" in next(iter(fault)):
            await printer.print_label(datamatrix_label(case_payload(1), LabelText(())))
        with pytest.raises(DeviceFault, match=words):
            await printer.print_label(datamatrix_label(case_payload(2), LabelText(())))
        status = await printer.status()
        assert not status.ready and any(words in e for e in status.errors)
    finally:
        await stop(printer, reader, sim, verifier)


async def test_a_label_that_never_came_out_is_a_fault() -> None:
    sim, printer, verifier, reader = await start(ZplSettings(not_printed_every=2))
    try:
        await printer.print_label(datamatrix_label(case_payload(1), LabelText(())))
        with pytest.raises(DeviceFault, match="NOT_PRINTED"):
            await printer.print_label(datamatrix_label(case_payload(2), LabelText(())))
    finally:
        await stop(printer, reader, sim, verifier)


async def test_a_roll_change_reprint_is_caught_by_the_verifier() -> None:
    sim, printer, verifier, reader = await start(ZplSettings(roll_change_at=3))
    try:
        reads = []
        for n in range(1, 5):
            await printer.print_label(datamatrix_label(case_payload(n), LabelText(())))
            reads.append((await reader.read()).data)
        mismatches = [n for n, got in zip(range(1, 5), reads, strict=True)
                      if got != case_payload(n)]
        assert mismatches == [3], "the odometer said printed; only the read-back shows it"
    finally:
        await stop(printer, reader, sim, verifier)


async def test_garbage_on_the_wire_is_skipped() -> None:
    sim, printer, verifier, reader = await start(ZplSettings())
    try:
        printer.write(b"\x00\xffnoise")
        await printer.print_label(datamatrix_label(case_payload(7), LabelText(())))
        assert sim.garbage >= 7 and sim.odometer == 1
    finally:
        await stop(printer, reader, sim, verifier)


@pytest.mark.parametrize("dpi", [203, 300, 600])
def test_a_label_keeps_its_size_at_every_print_resolution(dpi: int) -> None:
    text = LabelText(("Bench", "LOT L7"))
    sscc = "369012340000000017"
    label = sscc_label(sscc, text, dpi=dpi)
    height = int(re.search(r"\^BCN,(\d+),", label).group(1))  # type: ignore[union-attr]
    assert abs(height / dpi - 200 / 203) < 0.01  # the bar height in inches is kept
    matrix = datamatrix_label("0116901234567899211234567890", text, dpi=dpi)
    module = int(re.search(r"\^BXN,(\d+),", matrix).group(1))  # type: ignore[union-attr]
    assert abs(module / dpi - 8 / 203) < 0.003
    assert [s.data for s in parse_format(label)[0]] == [f"00{sscc}"]
