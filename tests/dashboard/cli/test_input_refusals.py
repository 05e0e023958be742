"""Bad values on the command line are refused with a message that names them, exit 2, and are recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth import token_for

pytestmark = [pytest.mark.slow, pytest.mark.model]


def _run(db: Path, *args: str, role: str = "operator") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACETRAIL_TOKEN": token_for(db, f"cli-{role}", role), "FACETRAIL_PURPOSE": "testing",
           "FACETRAIL_CONFIG_DIR": str(db.parent / "config")}
    env.pop("FACETRAIL_OPERATOR", None)
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", str(db), *args],
                          capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.parametrize("value", ["nan", "1e309", "-inf"])
def test_a_non_finite_search_threshold_is_refused_and_recorded(tmp_path: Path, value: str) -> None:
    db = tmp_path / "t.duckdb"
    assert _run(db, "gallery", "create", "g", "--json", role="admin").returncode == 0
    probe = tmp_path / "p.jpg"
    probe.write_bytes(b"not even an image")
    out = _run(db, "search", str(probe), "--gallery", "g", f"--threshold={value}", "--json")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    error = json.loads(out.stdout.splitlines()[-1])
    assert error["code"] == "bad_input" and "threshold" in error["error"]
    records = json.loads(_run(db, "audit", "list", "--action", "refused", "--json").stdout)
    assert [r["record"]["details"]["attempted"] for r in records] == ["search"]
