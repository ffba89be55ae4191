"""What a running batch is made of: its item flow and its case and pallet stations, wired to
the line's devices, database calls and outputs. Built at every Start; the PackML loop in
:mod:`edge.daemon.line` only runs and halts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.daemon.case_station import CaseStation
from edge.daemon.dbworker import StorageGuard
from edge.daemon.devices import Devices
from edge.daemon.item_flow import ItemFlow
from edge.daemon.pallet_station import PalletStation
from edge.daemon.signals import LineCounters, LineOutputs
from edge.daemon.stations import StationContext
from edge.domain import batches
from edge.domain.payloads import BatchLabel
from line_config.models import CasePackStation, Line, PalletBuildStation, Product


@dataclass
class Production:
    """One batch's flow and stations."""

    batch: batches.Batch
    flow: ItemFlow
    case_station: CaseStation | None
    pallet_station: PalletStation | None

    @classmethod
    async def wire(cls, line: Line, product: Product, batch: batches.Batch, commissioned: int,
                   devices: Devices, storage: StorageGuard, outputs: LineOutputs,
                   counters: LineCounters, alarm: Callable[[str, str, bool], None],
                   ending: Callable[[], bool], commit_times: Callable[[float], None],
                   previous_pallet: PalletStation | None) -> Production:
        """The flow and stations of ``batch``. A pallet station of the same batch (a Start
        after Stop) hands its open pallet over; otherwise the open pallet is loaded from
        the database."""
        label = BatchLabel(batch.lot, batch.expiry)
        flow = ItemFlow(line, product, label, batch.id, devices.printer, devices.reader,
                        storage, outputs, counters, target=batch.planned_qty,
                        commissioned=commissioned, on_alarm=alarm, commit_times=commit_times)
        ctx = StationContext(line, product, label, batch.id, storage, outputs, counters, alarm,
                             ending)
        case_station: CaseStation | None = None
        pallet_station: PalletStation | None = None
        for station in line.stations:
            if isinstance(station, PalletBuildStation) and devices.pallet_reader:
                pallet_station = PalletStation(
                    ctx, devices.bench_for(station), station.id, devices.pallet_reader,
                    lambda: case_station is None or case_station.finished.is_set())
        for station in line.stations:
            if isinstance(station, CasePackStation) and devices.case_camera:
                pallet = pallet_station
                case_station = CaseStation(
                    ctx, devices.bench_for(station), station.id, devices.case_camera,
                    pallet.case_sealed if pallet else (lambda serial: None))
        if pallet_station is not None:
            if previous_pallet is not None and previous_pallet.ctx.batch_id == batch.id:
                pallet_station.carry_over(previous_pallet)
            else:
                await pallet_station.load_open_pallet()
        return cls(batch, flow, case_station, pallet_station)
