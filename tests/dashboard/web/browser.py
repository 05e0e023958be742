"""A real browser on the running dashboard: headless Debian Chromium driven through chromedriver.

The W3C WebDriver protocol is plain JSON over HTTP, so this speaks it with
``urllib`` (no selenium needed). :func:`tour` starts the dashboard on a
database, signs in, visits every page the account may open, saves a screenshot
of each, and returns the Streamlit exceptions shown on any page.

Run by hand to make the README screenshots from a demo database::

    .venv/bin/python -m tests.dashboard.web.browser --db data/facetrail.duckdb --docs docs
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "dashboard" / "web" / "streamlit_app.py"
ELEMENT = "element-6066-11e4-a52f-4a5c4a5c4a5c"  # W3C element key (chromedriver may answer with its own)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1000",
]


def chromium_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` if both are installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_or_skip() -> tuple[str, str]:
    """``(chromium, chromedriver)``, or skip the test saying what to install (``.ci/run`` fails on skipped tests)."""
    import pytest  # noqa: PLC0415 (this module also runs as a script, without pytest)

    found = chromium_paths()
    if found is None:
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.3)


@contextlib.contextmanager
def dashboard(db: str, port: int | None = None) -> Iterator[str]:
    """Serve the dashboard on ``db``; yield its URL."""
    port = port or free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer", "--server.fileWatcherType", "none",
        "--", "--db", db,
    ]
    with tempfile.TemporaryFile() as log, subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    ) as proc:
        try:
            try:
                wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60)
            except TimeoutError:  # only the health check's timeout means it did not start (not the caller's)
                log.seek(0)
                raise TimeoutError(
                    f"the dashboard did not start: {log.read().decode(errors='replace')[-2000:]}") from None
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class WebDriver:
    """The few WebDriver commands the tour needs."""

    def __init__(self, chromium: str, chromedriver: str) -> None:
        self.port = free_port()
        self._profile = tempfile.TemporaryDirectory(prefix="facetrail-chromium-")
        self._proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(self.base + "/status", 20)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}").get("value")
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"webdriver {method} {path}: {err.read().decode(errors='replace')[:500]}") from err

    def cmd(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
            if found:
                return str(next(iter(found[0].values())))
            if time.monotonic() > deadline:
                raise TimeoutError(f"no element {css!r} within {timeout} s")
            time.sleep(0.25)

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self.cmd("POST", f"/element/{element}/click", {})
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def click_text(self, selector: str, text: str, timeout: float = 30) -> None:
        """Click the first ``selector`` element whose text is ``text``."""
        deadline = time.monotonic() + timeout
        script = ("const [sel, text] = arguments; for (const el of document.querySelectorAll(sel)) {"
                  " if (el.innerText.trim().split('\\n').pop().trim() === text) { el.click(); return true; } } return false;")
        while not self.js(script, selector, text):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {selector!r} with text {text!r} within {timeout} s")
            time.sleep(0.25)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def quit(self) -> None:
        with contextlib.suppress(RuntimeError, urllib.error.URLError):
            self.cmd("DELETE", "")
        self._proc.terminate()
        self._proc.wait(10)
        self._profile.cleanup()


def settle(driver: WebDriver, title: str, timeout: float = 60) -> None:
    """Wait until the page shows ``title`` and the script has finished running."""
    deadline = time.monotonic() + timeout
    script = ("const h = [...document.querySelectorAll('h1')].map(e => e.innerText.trim());"
              "const running = document.querySelector('[data-testid=\"stStatusWidget\"]');"
              "const loading = document.querySelector("
              "'[data-testid^=\"stSkeleton\"], [data-testid=\"stAppSkeleton\"]');"
              "return h.includes(arguments[0]) && !running && !loading;")
    while not driver.js(script, title):
        if time.monotonic() > deadline:
            raise TimeoutError(f"page {title!r} did not finish rendering within {timeout} s")
        time.sleep(0.3)
    time.sleep(2.0)  # let plotly draw


def main_text(driver: WebDriver, selector: str = '[data-testid="stMain"]') -> str:
    """The text the page shows in ``selector`` (default: the main area, without the sidebar)."""
    return str(driver.js("return document.querySelector(arguments[0]).innerText;", selector))


def wait_for(driver: WebDriver, words: str, timeout: float = 60, selector: str = '[data-testid="stMain"]') -> None:
    """Wait until ``words`` show in ``selector``; fail naming what the page shows instead."""
    deadline = time.monotonic() + timeout
    while words not in main_text(driver, selector):
        if time.monotonic() > deadline:
            raise AssertionError(f"{words!r} not shown within {timeout} s; the page shows: "
                                 f"{main_text(driver, selector)[-2500:]}")
        time.sleep(0.3)


def sign_in(driver: WebDriver, name: str, password: str | None = None) -> None:
    """Sign in on the sign-in page as ``name`` (demo password ``<name>-demo`` unless given)."""
    settle(driver, "facetrail")
    driver.type('input[aria-label="Account"]', name)
    driver.type('input[aria-label="Password"]', password or f"{name}-demo")
    driver.click_text("button", "Sign in")


def exceptions_on_page(driver: WebDriver) -> list[str]:
    return list(driver.js("return [...document.querySelectorAll('[data-testid=\"stException\"]')]"
                          ".map(e => e.innerText.slice(0, 500));"))


@dataclass
class TourResult:
    screenshots: dict[str, Path] = field(default_factory=dict)
    exceptions: dict[str, list[str]] = field(default_factory=dict)
    charts: dict[str, int] = field(default_factory=dict)


#: Page title in the navigation -> the page's h1.
PAGE_TITLES = {
    "Overview": "Overview",
    "Search": "Search a gallery",
    "Verify": "Verify two photos",
    "Match log": "Match log",
    "Demographic performance": "Demographic performance",
    "Integrity": "Integrity of the audit log",
    "Exports": "Exports",
    "Administration": "Administration",
}


def tour(url: str, account: str, password: str, pages: list[str], out: Path, chromium: str,
         chromedriver: str, height: int = 1000) -> TourResult:
    """Sign in as ``account`` and visit ``pages`` (navigation titles); screenshot each into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    result = TourResult()
    driver = WebDriver(chromium, chromedriver)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": height})
        driver.get(url)
        settle(driver, "facetrail")
        driver.type('input[aria-label="Account"]', account)
        driver.type('input[aria-label="Password"]', password)
        driver.click_text("button", "Sign in")
        for page in pages:
            driver.click_text('a[data-testid="stSidebarNavLink"]', page)
            settle(driver, PAGE_TITLES[page])
            path = out / f"{account}-{page.lower().replace(' ', '_')}.png"
            path.write_bytes(driver.screenshot())
            result.screenshots[page] = path
            result.charts[page] = int(driver.js("return document.querySelectorAll('.js-plotly-plot .main-svg').length;"))
            shown = exceptions_on_page(driver)
            if shown:
                result.exceptions[page] = shown
    finally:
        driver.quit()
    return result


def shrink_png(data: bytes, max_width: int = 1200, colors: int = 128) -> bytes:
    """Downscale and palette-quantise a screenshot for the README (well under 300 KB)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "screenshots")
    args = parser.parse_args()
    found = chromium_paths()
    if found is None:
        sys.exit("install chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    with dashboard(args.db) as url:
        result = tour(url, "auditor1", "auditor1-demo", ["Overview", "Demographic performance"], args.out, *found,
                      height=1250)
    if result.exceptions:
        print(json.dumps(result.exceptions, indent=1), file=sys.stderr)
        return 1
    args.docs.mkdir(parents=True, exist_ok=True)
    for page, name in (("Overview", "overview.png"), ("Demographic performance", "demographics.png")):
        data = shrink_png(result.screenshots[page].read_bytes())
        (args.docs / name).write_bytes(data)
        print(f"{args.docs / name}: {len(data) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
