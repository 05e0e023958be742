"""`facetrail dashboard` serves an existing database on localhost, and stops with its server."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.dashboard.web.browser import REPO, free_port, wait_http

pytestmark = pytest.mark.slow


def test_dashboard_command_serves_and_stops(fake_db: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--db", fake_db, "dashboard", "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in err
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
