"""The site's figures for Prometheus (``GET /metrics``, text exposition format), from the
process that runs the lines: per line from its snapshot, per site from the database, read
when scraped; the group commit's duration as a histogram fed by every commit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.daemon.snapshot import LineSnapshot
from edge.domain import pool
from edge.store.database import Store
from line_config.models import LEVELS, Level
from sync import push

CONTENT_TYPE = CONTENT_TYPE_LATEST
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class StoreFigures:
    """What a scrape reads from the database."""

    pools: dict[tuple[str, Level], int]  # codes left to reserve, by line and level
    outbox_pending: int
    oldest_pending_at: float | None  # epoch s
    refused: int
    last_attempt_at: float | None  # epoch s
    last_error: str | None


def read_store(db_path: Path, line_ids: Iterable[str]) -> StoreFigures:
    """One read-only pass over the database (blocking: run it in a thread)."""
    with Store(db_path, cache_mb=8, read_only=True) as store:
        conn = store.read()
        pools = {(line_id, level): pool.available_count(conn, line_id, level)
                 for line_id in line_ids for level in LEVELS}
        status = push.status(conn)
    return StoreFigures(
        pools, status.pending,
        None if status.oldest_pending_at is None else status.oldest_pending_at / 1000,
        len(status.refused),
        None if status.last_attempt_at is None else status.last_attempt_at / 1000,
        status.last_error)


class SiteMetrics:
    """The registry of one ``codeline run``."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        self.registry = CollectorRegistry(auto_describe=True)
        self.commit_seconds = Histogram(
            "codeline_commit_seconds", "Duration of a line's durable group commit of print "
            "confirmations and verdicts", ["line"], buckets=COMMIT_BUCKETS,
            registry=self.registry)
        self.lock_wait_seconds = Histogram(
            "codeline_write_lock_wait_seconds", "How long the controller waited for the "
            "database's write lock before a transaction (another process's bulk command "
            "holding it)", buckets=COMMIT_BUCKETS, registry=self.registry)
        self._scrape = _Scrape(site_id)
        self.registry.register(self._scrape)

    def commit_observer(self, line_id: str) -> Callable[[float], None]:
        """What a line's committer calls with each commit's duration (seconds)."""
        return self.commit_seconds.labels(line=line_id).observe

    def render(self, lines: Sequence[LineSnapshot], store: StoreFigures) -> bytes:
        """The exposition text for these figures (synchronous: no scrape interleaves)."""
        self._scrape.lines, self._scrape.store = lines, store
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape.lines, self._scrape.store = (), None


class _Scrape(Collector):
    """The figures of the scrape in progress, as metric families."""

    def __init__(self, site_id: str) -> None:
        self.site_id = site_id
        self.lines: Sequence[LineSnapshot] = ()
        self.store: StoreFigures | None = None

    def describe(self) -> Iterable[Metric]:
        return ()  # names vary with the scrape: never registered up front

    def collect(self) -> Iterator[Metric]:
        yield from self._lines()
        if self.store is not None:
            yield from self._site(self.store)

    def _lines(self) -> Iterator[Metric]:
        def gauge(name: str, text: str, labels: Sequence[str] = ("line",)) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=list(labels))

        state = gauge("codeline_line_state", "PackML state, ISA-TR88 numbers (2 Stopped, "
                      "4 Idle, 6 Execute, 11 Held, 17 Complete...)")
        rate = gauge("codeline_line_rate_items_per_second",
                     "Items commissioned per second, last seconds")
        buffer = gauge("codeline_printer_buffer_codes",
                       "Codes sent to the item printer and not yet confirmed printed")
        transit = gauge("codeline_items_in_transit", "Items printed and not yet read")
        alarms = gauge("codeline_alarms_active", "Standing alarms")
        up = gauge("codeline_device_up", "1 while the device's link is up",
                   ("line", "device"))
        printed = CounterMetricFamily("codeline_items_printed", "Items printed on the "
                                      "line, all batches", labels=["line"])
        commissioned = CounterMetricFamily("codeline_items_commissioned", "Items judged good "
                                           "on the line, all batches", labels=["line"])
        rejected = CounterMetricFamily("codeline_items_rejected", "Items rejected on the "
                                       "line, all batches, by reason",
                                       labels=["line", "reason"])
        sealed = CounterMetricFamily("codeline_containers_sealed", "Cases and pallets "
                                     "sealed on the line, all batches",
                                     labels=["line", "level"])
        for snap in self.lines:
            line = [snap.line]
            total = snap.counts.total
            state.add_metric(line, snap.state)
            rate.add_metric(line, snap.rate)
            buffer.add_metric(line, snap.buffers.printer)
            transit.add_metric(line, snap.buffers.in_transit)
            alarms.add_metric(line, len(snap.active_alarms))
            for device, health in snap.devices.items():
                up.add_metric([snap.line, device], 1 if health.up else 0)
            printed.add_metric(line, total.printed)
            commissioned.add_metric(line, total.commissioned)
            for reason, count in sorted(total.rejected_by_reason.items()):
                rejected.add_metric([snap.line, reason], count)
            sealed.add_metric([snap.line, "case"], total.cases)
            sealed.add_metric([snap.line, "pallet"], total.pallets)
        yield from (state, rate, buffer, transit, alarms, up, printed, commissioned, rejected,
                    sealed)

    def _site(self, store: StoreFigures) -> Iterator[Metric]:
        codes = GaugeMetricFamily("codeline_pool_available_codes", "Codes a line can still "
                                  "reserve, by level", labels=["line", "level"])
        for (line_id, level), count in sorted(store.pools.items()):
            codes.add_metric([line_id, level], count)
        yield codes
        site = [self.site_id]
        pending = GaugeMetricFamily("codeline_outbox_pending_manifests", "Manifests issued "
                                    "and not yet acknowledged by the cloud", labels=["site"])
        pending.add_metric(site, store.outbox_pending)
        oldest = GaugeMetricFamily("codeline_outbox_oldest_pending_age_seconds", "Age of the "
                                   "oldest unacknowledged manifest (0: none)", labels=["site"])
        oldest.add_metric(site, 0.0 if store.oldest_pending_at is None
                          else max(0.0, time.time() - store.oldest_pending_at))
        refused = GaugeMetricFamily("codeline_outbox_refused_manifests", "Manifests the cloud "
                                    "refused and that are not acknowledged", labels=["site"])
        refused.add_metric(site, store.refused)
        last = GaugeMetricFamily("codeline_push_last_attempt_timestamp_seconds", "When a "
                                 "manifest was last offered to the cloud (0: never)",
                                 labels=["site"])
        last.add_metric(site, store.last_attempt_at or 0.0)
        ok = GaugeMetricFamily("codeline_push_last_attempt_ok", "1 if the last delivery "
                               "attempt succeeded, 0 if it failed", labels=["site"])
        if store.last_attempt_at is not None:
            ok.add_metric(site, 0 if store.last_error else 1)
        yield from (pending, oldest, refused, last, ok)
