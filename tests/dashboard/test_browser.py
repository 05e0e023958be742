"""A real browser (headless Debian Chromium) on the running dashboard: sign in, visit every page, screenshot.

Fails on any Streamlit exception shown on a page. Screenshots go to
``data/screenshots/`` (git-ignored). Needs ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard.browser import REPO, chromium_paths, dashboard, tour

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
