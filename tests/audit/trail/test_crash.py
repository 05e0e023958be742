"""Crash test: a real process appending records is SIGKILLed at random moments."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.trail.log import AuditLog
from core.storage.connection import Database

HELPER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_sigkill_never_loses_a_returned_record(tmp_path: Path) -> None:
    db_path, key_path = tmp_path / "crash.duckdb", tmp_path / "crash.key"
    rng = random.Random(20261126)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    printed: list[int] = []
    runs = 20
    for _run in range(runs):
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), str(db_path), str(key_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until it is appending
        assert first.strip().isdigit(), proc.stderr.read() if proc.stderr else first
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, _err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        seqs = [int(first)] + [int(line) for line in out.decode().split("\n") if line.strip().isdigit()]
        printed.extend(seqs)
        # every printed seq is on disk and the chain (with its checkpoints) verifies after each kill
        log = AuditLog(Database(db_path), key_path=key_path)
        report = log.verify()
        assert report.ok, report.fault
        assert report.records >= max(printed)
        stored = {e.seq for e in log.list()}
        assert set(seqs) <= stored
        log.db.close()
    assert len(printed) == len(set(printed))
    assert printed == sorted(printed)
    assert len(printed) > runs
