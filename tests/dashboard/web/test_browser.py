"""A real browser (headless Debian Chromium) on the running dashboard: sign in, visit every page, screenshot.

Fails on any Streamlit exception shown on a page. Screenshots go to
``data/screenshots/`` (git-ignored). Needs ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from audit.runtime import Runtime
from tests.dashboard.web.browser import REPO, chromium_paths, dashboard, tour

pytestmark = pytest.mark.slow

TOURS = {
    "auditor1": ["Overview", "Match log", "Demographic performance", "Integrity", "Exports"],
    "operator1": ["Overview", "Search", "Verify", "Demographic performance"],
    "admin1": ["Administration", "Integrity"],
}


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    found = chromium_paths()
    if found is None:
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    return found


def test_every_page_in_a_real_browser(fake_db: str, browser: tuple[str, str]) -> None:
    out = REPO / "data" / "screenshots"
    shown: dict[str, list[str]] = {}
    with dashboard(fake_db) as url:
        for account, pages in TOURS.items():
            result = tour(url, account, f"{account}-demo", pages, out, *browser)
            assert set(result.screenshots) == set(pages)
            for page, path in result.screenshots.items():
                assert Path(path).stat().st_size > 10_000, f"{page}: blank screenshot?"
            shown.update({f"{account}/{p}": e for p, e in result.exceptions.items()})
            for page in {"Overview", "Demographic performance"} & set(pages):
                assert result.charts[page] > 0, f"{page}: no plotly chart drawn"
    assert not shown, f"Streamlit exceptions shown: {shown}"


WRITER = """
import sys
from audit.runtime import Runtime
log = Runtime(sys.argv[1]).log
for i in range(150):
    log.append({"action": "search", "outcome": "no_match", "operator": "operator2", "purpose": "cli batch",
                "case_ref": "CR-browser", "details": {"i": i}})
"""


def test_two_browser_sessions_while_the_cli_writes(fake_db: str, browser: tuple[str, str],
                                                   tmp_path: Path) -> None:
    """Two people on the dashboard at once while another process appends to the same database."""
    db = str(tmp_path / "browser.duckdb")
    shutil.copyfile(fake_db, db)
    before = Runtime(db).log.size()
    out = tmp_path / "shots"
    with dashboard(db) as url:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, db], cwd=REPO, stderr=subprocess.PIPE, text=True)
        with ThreadPoolExecutor(2) as pool:
            tours = [
                pool.submit(tour, url, "auditor1", "auditor1-demo", ["Overview", "Match log", "Integrity"], out,
                            *browser),
                pool.submit(tour, url, "reviewer1", "reviewer1-demo", ["Match log", "Overview"], out, *browser),
            ]
            results = [t.result(timeout=600) for t in tours]
        _, err = writer.communicate(timeout=600)
    assert writer.returncode == 0, err[-2000:]
    assert not [r.exceptions for r in results if r.exceptions]
    # the writer's 150 records, and the two sign-ins (each sign-in is a record)
    added = [e.record for e in Runtime(db).log.list()][before:]
    assert len(added) == 150 + 2
    assert sorted(r.operator for r in added if r.action == "sign_in") == ["auditor1", "reviewer1"]
    assert all(r.details["method"] == "dashboard_session" for r in added if r.action == "sign_in")
