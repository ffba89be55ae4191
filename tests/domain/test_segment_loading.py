"""Bulk loads in short transactions: a loading segment is invisible to the line until its one
publishing commit, an interrupted load leaves no rows, a killed one is removed by the next
bulk command, and the drawn serials are valid, sorted and spread over the whole space."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.domain import flow, pool, pool_import, segments
from edge.domain.errors import ImportRejected, PoolExhausted
from edge.domain.segment_loading import SegmentLoad, purge_abandoned
from edge.domain.serials import CheckCharacter, SerialScheme
from edge.store.database import Store
from line_config.models import SiteConfig
from tests.conftest import fingerprint, running_batch


def codes_of(store: Store, segment: int) -> int:
    return int(store.read().execute("SELECT count(*) FROM codes WHERE segment_id = ?",
                                    (segment,)).fetchone()[0])


def test_a_loading_segment_is_not_in_the_pool_until_it_is_published(
        store: Store, site: SiteConfig) -> None:
    line = site.lines[0]
    batch = running_batch(store, site, items=10)
    flow.reserve(store, batch, "st", "item", 10)  # the pool is empty now
    scheme = SerialScheme.from_config(line.codes.item.serial)
    with SegmentLoad(store, line.id, "item", "generated", "") as load:
        assert load.add_fixed(scheme.draw_sorted(5000), scheme.total_length, 1) == 5000
        assert pool.available_count(store.read(), line.id, "item") == 0
        stats = {s.level: s.available for s in pool.stats(store, site.lines)}
        assert stats["item"] == 0
        with pytest.raises(PoolExhausted):
            flow.reserve(store, batch, "st", "item", 1)
        with load.publishing(5000):
            pass
    assert pool.available_count(store.read(), line.id, "item") == 5000
    assert len(flow.reserve(store, batch, "st", "item", 5000).codes) == 5000
    assert load.figures.transactions >= 3 and load.figures.rows == 5000


def test_a_failed_load_leaves_no_rows(store: Store, site: SiteConfig) -> None:
    line = site.lines[0]
    before = fingerprint(store)
    scheme = SerialScheme.from_config(line.codes.item.serial)
    with pytest.raises(RuntimeError), SegmentLoad(store, line.id, "item", "imported",
                                                  "x.txt") as load:
        load.add_fixed(scheme.draw_sorted(30_000), scheme.total_length, 1)
        assert codes_of(store, load.segment) == 30_000
        raise RuntimeError("the operator pressed Ctrl-C")
    assert fingerprint(store) == before


def test_a_load_whose_process_was_killed_is_removed_by_the_next_bulk_command(
        store: Store, site: SiteConfig) -> None:
    line = site.lines[0]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=30)
    dead_pid = int(gone.stdout)
    scheme = SerialScheme.from_config(line.codes.item.serial)
    load = SegmentLoad(store, line.id, "item", "imported", "killed.txt")
    load.add_fixed(scheme.draw_sorted(2000), scheme.total_length, 1)
    with store.transaction() as conn:  # as if the loading process had been SIGKILLed
        conn.execute("UPDATE segments SET loading = ? WHERE id = ?", (dead_pid, load.segment))
    assert purge_abandoned(store) == 2000
    assert codes_of(store, load.segment) == 0
    assert store.read().execute("SELECT count(*) FROM segments").fetchone()[0] == 0


def test_a_load_of_a_live_process_is_left_alone(store: Store, site: SiteConfig) -> None:
    line = site.lines[0]
    scheme = SerialScheme.from_config(line.codes.item.serial)
    load = SegmentLoad(store, line.id, "item", "imported", "busy.txt")
    load.add_fixed(scheme.draw_sorted(100), scheme.total_length, 1)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            with store.transaction() as conn:
                conn.execute("UPDATE segments SET loading = ? WHERE id = ?",
                             (other.pid, load.segment))
            assert purge_abandoned(store) == 0
            assert codes_of(store, load.segment) == 100
        finally:
            other.kill()


def test_an_import_refused_for_known_serials_keeps_its_transactions_short_and_leaves_nothing(
        store: Store, site: SiteConfig, tmp_path: Path) -> None:
    line = site.lines[0]
    pool.generate(store, line, "item", 50_000, operator="t")
    known = store.read().execute("SELECT serial FROM codes ORDER BY random() LIMIT 1"
                                 ).fetchone()[0]
    scheme = SerialScheme.from_config(line.codes.item.serial)
    path = tmp_path / "segment.txt"
    path.write_text("\n".join([*scheme.draw(60_000), known]) + "\n")
    before = fingerprint(store)
    with pytest.raises(ImportRejected, match="already known"):
        pool_import.import_file(store, line, site.products, "item", path, operator="t")
    assert fingerprint(store) == before


ALPHABETS = ["23456789ABCDEFGHJKLMNPQRSTUVWXYZ", "0123456789ABCDEFGHIJKLMNOPQ",
             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "0123", "ABCDEFG"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ALPHABETS), st.integers(4, 20), st.booleans(), st.integers(1, 3000))
def test_drawn_serials_are_valid_sorted_and_of_the_scheme(
        alphabet: str, length: int, check: bool, count: int) -> None:
    scheme = SerialScheme(alphabet, length, CheckCharacter(alphabet) if check else None)
    block = scheme.draw_sorted(count)
    width = scheme.total_length
    serials = [block[i:i + width].decode() for i in range(0, len(block), width)]
    assert len(serials) == count and serials == sorted(serials)
    assert all(scheme.problem(s) is None for s in serials)


def test_every_character_is_drawn_uniformly() -> None:
    """An alphabet of 33 does not divide 256: bytes past 231 are drawn again, so no character
    is favoured (a plain modulo would favour the first 25 by 1/8)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
    scheme = SerialScheme(alphabet, 10, None)
    block = scheme.draw_sorted(40_000).decode()
    counts = Counter(block)
    expected = len(block) / len(alphabet)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in alphabet)
    assert chi2 < 80  # 32 degrees of freedom: p < 1e-6 above 80


def test_a_withdrawal_interrupted_while_deleting_is_finished_by_the_next_bulk_command(
        store: Store, site: SiteConfig) -> None:
    line = site.lines[0]
    segment = pool.generate(store, line, "item", 30_000, operator="t")
    assert segments.retire(store, segment, operator="t", reason="wrong file").codes == 30_000
    assert codes_of(store, segment) == 0
    kept = pool.generate(store, line, "item", 25_000, operator="t")
    with store.transaction() as conn:  # as if killed after the withdrawal committed
        conn.execute("UPDATE segments SET retired_at = 1, retire_reason = 'x' WHERE id = ?",
                     (kept,))
    assert pool.available_count(store.read(), line.id, "item") == 0
    assert purge_abandoned(store) == 0  # withdrawn codes are counted by the withdrawal
    assert codes_of(store, kept) == 0
