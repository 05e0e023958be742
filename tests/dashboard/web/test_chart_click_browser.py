"""A real browser (headless Chromium): clicking a chart's bar opens the matching records.

The click is a real mouse click on the mark plotly drew (its position read from the page), not a
link: on the Overview, a bar of "Searches by operator" opens the Match log filtered by that
operator (in the address), whose table then lists only that operator's records; on Demographic
performance, a group's dot opens the searches whose operator stated that probe's group.
"""

from __future__ import annotations

import time

import pytest

from audit.runtime import Runtime
from tests.dashboard.web.browser import WebDriver, chromium_or_skip, dashboard, exceptions_on_page, settle, sign_in

pytestmark = pytest.mark.slow

#: Finds the dot of category ``y`` in the plotly chart whose title includes ``title``; returns its centre.
_DOT = """
const [title, y] = arguments;
for (const gd of document.querySelectorAll('.js-plotly-plot')) {
  if (!gd.layout || !gd.layout.title || !String(gd.layout.title.text).includes(title)) continue;
  gd.scrollIntoView({block: 'center'});
  const traces = gd.querySelectorAll('.scatterlayer .trace');
  const data = gd._fullData;
  for (let t = 0; t < data.length; t++) {
    const points = traces[t] ? traces[t].querySelectorAll('.points .point') : [];
    for (let i = 0; i < data[t].y.length; i++) {
      if (String(data[t].y[i]) !== y || !points[i]) continue;
      const r = points[i].getBoundingClientRect();
      return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2), data[t].name];
    }
  }
}
return null;
"""

#: Finds the bar of category ``y`` in the plotly chart titled ``title`` with a non-zero length; returns its centre.
_BAR = """
const [title, y] = arguments;
for (const gd of document.querySelectorAll('.js-plotly-plot')) {
  if (!gd.layout || !gd.layout.title || !String(gd.layout.title.text).includes(title)) continue;
  gd.scrollIntoView({block: 'center'});
  const traces = gd.querySelectorAll('.barlayer .trace');
  const data = gd._fullData;  // decoded (the figure's arrays arrive base64-encoded)
  for (let t = 0; t < data.length; t++) {
    const points = traces[t] ? traces[t].querySelectorAll('.point') : [];
    for (let i = 0; i < data[t].y.length; i++) {
      if (String(data[t].y[i]) !== y || !(data[t].x[i] > 0) || !points[i]) continue;
      const r = points[i].getBoundingClientRect();
      if (r.width < 2) continue;
      return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2), data[t].name];
    }
  }
}
return null;
"""


def click_at(driver: WebDriver, x: int, y: int) -> None:
    """A real mouse click at viewport position (x, y)."""
    driver.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                                                 "actions": [{"type": "pointerMove", "duration": 100, "origin": "viewport",
                                                              "x": x, "y": y},
                                                             {"type": "pointerDown", "button": 0},
                                                             {"type": "pause", "duration": 50},
                                                             {"type": "pointerUp", "button": 0}]}]})


def bar(driver: WebDriver, title: str, category: str, timeout: float = 30, script: str = _BAR) -> tuple[int, int, str]:
    deadline = time.monotonic() + timeout
    while True:
        found = driver.js(script, title, category)
        if found:
            time.sleep(0.5)  # scrolled into view: read the position again once it is still
            x, y, name = driver.js(script, title, category)
            return int(x), int(y), str(name)
        if time.monotonic() > deadline:
            raise AssertionError(f"no bar {category!r} in a chart titled {title!r}")
        time.sleep(0.3)


def records_table(driver: WebDriver) -> str:
    return str(driver.js("return document.querySelector('[data-testid=\"stDataFrame\"] table').textContent;"))


def test_clicking_an_operators_bar_on_the_overview_opens_their_records(fake_db: str) -> None:
    with dashboard(fake_db) as url:
        driver = WebDriver(*chromium_or_skip())
        try:
            driver.get(url)
            sign_in(driver, "auditor1")
            settle(driver, "Overview", 120)
            x, y, _ = bar(driver, "Searches by operator", "operator2")
            click_at(driver, x, y)
            settle(driver, "Match log", 120)
            assert "operator=operator2" in str(driver.js("return window.location.search;"))
            shown = records_table(driver)
            assert "operator2" in shown and "operator1" not in shown and "operator3" not in shown
            assert not exceptions_on_page(driver)
        finally:
            driver.quit()


def stated_searches(db: str, groups: list[str]) -> list[int]:
    """Append searches whose operator stated these probe groups (as the audited search records them); their seqs."""
    rt = Runtime(db)
    try:
        return [rt.log.append({
            "action": "search", "outcome": "no_match", "operator": "operator1", "purpose": "identify a suspect",
            "case_ref": "CR-9", "gallery": {"name": "arrest_photos", "fingerprint": "10-" + "0" * 32, "size": 10},
            "probe_sha256": ["1" * 64], "faces_found": 1, "candidates": [],
            "details": {"top_k": 5, "threshold": 0.07, "probe_group": group}, "latency_ms": 10.0}).seq
            for group in groups]
    finally:
        rt.close()


def test_clicking_a_groups_dot_on_demographic_performance_opens_its_searches(fake_db: str) -> None:
    seqs = stated_searches(fake_db, ["race=a", "race=b", "race=a"])
    with dashboard(fake_db) as url:
        driver = WebDriver(*chromium_or_skip())
        try:
            driver.get(f"{url}/demographics")
            sign_in(driver, "auditor1")
            settle(driver, "Demographic performance", 120)
            x, y, _ = bar(driver, "alse-match rate by group", "a", script=_DOT)  # the race grouping, group a
            click_at(driver, x, y)
            settle(driver, "Match log", 120)
            assert "probe_group=race%3Da" in str(driver.js("return window.location.search;"))
            rows = driver.js("return [...document.querySelectorAll('[data-testid=\"stDataFrame\"] table')][0]"
                             ".querySelectorAll('tbody tr').length;")
            assert rows == 2  # the two searches stated race=a, not race=b's nor the others
            shown = records_table(driver)
            assert str(seqs[0]) in shown and str(seqs[2]) in shown
            assert not exceptions_on_page(driver)
        finally:
            driver.quit()
