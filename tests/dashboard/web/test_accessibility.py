"""WCAG 2.1 AA in a real browser: axe-core on every page for every role, and the contrast ratios measured.

Each demo role signs in to the dashboard (the fake scene) in headless Chromium and opens every
page its navigation offers. On each page axe-core (vendored by the ``axe-core-python`` test
dependency; nothing is fetched) runs the WCAG 2.0/2.1 A and AA rules: any serious or critical
violation fails. The contrast of body text, captions and chart tick labels (>= 4.5:1) and of
chart marks (>= 3:1) is measured against the colour behind them and printed (run with ``-s``).
"""

from __future__ import annotations

import time

import pytest

from tests.dashboard.web.accessibility import PageAudit, audit_page, axe_source
from tests.dashboard.web.browser import WebDriver, chromium_paths, dashboard, settle

pytestmark = pytest.mark.slow

ROLES = ("operator1", "reviewer1", "auditor1", "admin1")
TEXT_MIN, MARK_MIN = 4.5, 3.0

_LINKS = ("return [...document.querySelectorAll('a[data-testid=\"stSidebarNavLink\"]')]"
          ".map(a => [a.innerText.trim().split('\\n').pop().trim(), new URL(a.href).pathname]);")
_SHOWN = ("const running = document.querySelector('[data-testid=\"stStatusWidget\"]');"
          "const loading = document.querySelector('[data-testid^=\"stSkeleton\"], [data-testid=\"stAppSkeleton\"]');"
          "return location.pathname === arguments[0] && !running && !loading && !!document.querySelector('h1');")


def open_page(driver: WebDriver, title: str, path: str, timeout: float = 90) -> None:
    driver.click_text('a[data-testid="stSidebarNavLink"]', title)
    deadline = time.monotonic() + timeout
    while not driver.js(_SHOWN, path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"page {title!r} did not finish rendering within {timeout} s")
        time.sleep(0.3)
    time.sleep(2.0)  # let plotly draw


def audit_role(url: str, account: str, browser: tuple[str, str], source: str) -> dict[str, PageAudit]:
    driver = WebDriver(*browser)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": 1000})
        driver.get(url)
        settle(driver, "facetrail")
        driver.type('input[aria-label="Account"]', account)
        driver.type('input[aria-label="Password"]', f"{account}-demo")
        driver.click_text("button", "Sign in")
        time.sleep(2.0)
        links = [tuple(x) for x in driver.js(_LINKS)]
        assert links, f"{account}: no navigation after signing in"
        return {title: (open_page(driver, title, path), audit_page(driver, source))[1] for title, path in links}
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser() -> tuple[str, str]:
    found = chromium_paths()
    assert found is not None, "needs chromium and chromedriver (apt-get install -y chromium chromium-driver)"
    return found


def test_no_serious_or_critical_violation_and_aa_contrast_on_every_page_for_every_role(
    fake_db: str, browser: tuple[str, str]
) -> None:
    source = axe_source()
    failing: dict[str, list] = {}
    low: dict[str, list] = {}
    lowest: dict[str, float] = {}
    pages = 0
    with dashboard(fake_db) as url:
        for account in ROLES:
            for title, audit in audit_role(url, account, browser, source).items():
                pages += 1
                where = f"{account}/{title}"
                if audit.failing():
                    failing[where] = audit.failing()
                for kind, floor in (("text", TEXT_MIN), ("caption", TEXT_MIN), ("tick", TEXT_MIN),
                                    ("mark", MARK_MIN)):
                    value = audit.lowest(kind)
                    if value is None:
                        continue
                    lowest[kind] = min(lowest.get(kind, value), value)
                    if value < floor:
                        low[where] = [*low.get(where, []), (kind, value,
                                      [m for m in audit.contrast[kind] if m["ratio"] < floor][:3])]
    print(f"\naccessibility: {pages} pages; lowest contrast ratios: "
          + ", ".join(f"{k} {v:.2f}:1" for k, v in sorted(lowest.items())))
    assert pages >= 12
    assert {"text", "caption", "tick", "mark"} <= set(lowest), f"not every kind was measured: {lowest}"
    assert not failing and not low, f"serious or critical axe violations: {failing}; contrast below AA: {low}"
