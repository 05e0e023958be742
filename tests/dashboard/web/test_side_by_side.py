"""The dashboard and the CLI on one database at the same time, as two real processes.

DuckDB lets one process hold a database file; ``core.storage.connection.Database`` leases its
connection briefly and retries a held lock, so neither side may see a lock error
and no record may be lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.runtime import Runtime
from tests.auth import token_for
from tests.dashboard.conftest import DATA, copy_db, data_or_skip

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow

WRITER = """
import sys
from audit.runtime import Runtime
log = Runtime(sys.argv[1]).log
for i in range(int(sys.argv[2])):
    log.append({"action": "search", "outcome": "no_match", "operator": "operator1", "purpose": "batch",
                "case_ref": "CR-side", "gallery": {"name": "arrest_photos", "fingerprint": "10-x", "size": 10},
                "details": {"i": i}})
"""


def _copy(db: str, tmp_path: Path) -> str:
    """The demo database with everything beside it that it needs (WAL, key store, keys, evidence)."""
    folder = tmp_path / "side"
    folder.mkdir()
    return copy_db(Path(db), folder)


def _reader(db: str, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.dashboard.web.side_reader", db, str(rounds)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_writer_process_and_dashboard_process(fake_db: str, tmp_path: Path) -> None:
    db = _copy(fake_db, tmp_path)
    before = Runtime(db).log.size()
    n = 400
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db, str(n)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    reader = _reader(db, 4)
    w = _finish(writer, 600)
    r = _finish(reader, 600)
    assert w[0] == 0, w[2][-3000:]
    assert r[0] == 0, r[1][-3000:] + r[2][-3000:]
    summary = json.loads(r[1].strip().splitlines()[-1])
    assert not summary["problems"]
    runtime = Runtime(db)
    assert runtime.log.size() == before + n + summary["reviews"]
    assert runtime.log.verify().ok


@pytest.mark.data
@pytest.mark.model
def test_cli_search_while_dashboard_watches(demo_db: str, tmp_path: Path) -> None:
    """An operator searching from the CLI while an auditor watches the dashboard."""
    data = data_or_skip()
    db = _copy(demo_db, tmp_path)
    before = Runtime(db).log.size()
    probes = sorted(str(p) for p in (data / "congress_small" / "images").glob("*/c116.jpg"))[:12]
    search = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--db", db, "search", *probes, "--gallery", "arrest_photos",
         "--operator", "operator2", "--purpose", "side-by-side test", "--case", "CR-side", "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FACETRAIL_TOKEN": token_for(db, "operator2", "operator")},
    )
    reader = _reader(db, 3)
    s = _finish(search, 900)
    r = _finish(reader, 900)
    assert s[0] == 0, s[2][-3000:]
    assert r[0] == 0, r[1][-3000:] + r[2][-3000:]
    lines = [json.loads(line) for line in s[1].splitlines() if line.strip()]
    assert len(lines) == len(probes) and all("audit_seq" in line for line in lines)
    summary = json.loads(r[1].strip().splitlines()[-1])
    runtime = Runtime(db)
    assert runtime.log.size() == before + len(probes) + summary["reviews"]
    for line in lines:
        assert runtime.log.get(line["audit_seq"]).record.operator == "operator2"
    assert runtime.log.verify().ok
    assert DATA.exists()
