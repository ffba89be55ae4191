"""SIGKILL a real process mid-work, at random instants; every invariant holds afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.domain import flow
from edge.domain.lifecycle import State
from edge.store.database import Store
from line_config.models import SiteConfig
from tests.conftest import running_batch
from tests.domain.invariants import check_invariants, finish_interrupted

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20


def test_invariants_hold_after_sigkill_at_random_instants(tmp_path: Path,
                                                          site: SiteConfig) -> None:
    db = tmp_path / "crash.db"
    with Store(db, create=True) as store:
        batch = running_batch(store, site, items=20_000)
    rng = random.Random(2026)
    voided_before: set[str] = set()
    progress = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.domain.crash_worker", str(db), str(batch)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        child.stdout.read(1)  # it is working: one round is done
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err.decode()
        with Store(db) as store:
            flow.recover(store)
            check_invariants(store)
            if finish_interrupted(store):
                check_invariants(store)
            conn = store.read()
            voided = {r[0] for r in conn.execute("SELECT serial FROM codes WHERE state = ?",
                                                 (int(State.VOID),))}
            assert voided_before <= voided, "a voided code came back"
            voided_before = voided
            assert conn.execute("SELECT count(*) FROM codes WHERE state IN (?, ?)",
                                (int(State.RESERVED), int(State.PRINTED))).fetchone()[0] == 0
            done = conn.execute("SELECT count(*) FROM codes WHERE state = ?",
                                (int(State.ACTIVE),)).fetchone()[0]
            assert done >= progress
            progress = done
    assert progress > 0, "the worker never got as far as a shipment"
