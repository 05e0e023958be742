"""The Video search page in a real browser, on footage with no real face in it.

:func:`video_dashboard` serves the dashboard in a subprocess whose face models are the
fake of :mod:`tests.video_fakes` (coloured squares are faces), on a database with a
gallery of those squares, so a job over generated footage finds, tracks and matches
people without any dataset face. :func:`video_job` signs in as an operator, uploads the
footage through the page's file input, runs the job and screenshots the result.

Run by hand to make the README screenshot (synthetic footage only)::

    .venv/bin/python -m tests.dashboard.web.video_browser --docs docs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.dashboard.web.browser import (
    APP,
    REPO,
    WebDriver,
    chromium_paths,
    exceptions_on_page,
    free_port,
    settle,
    shrink_png,
    wait_http,
)

OPERATOR = "operator1"
PASSWORD = "operator1-video-demo"
GALLERY = "watchlist"
SUBJECTS = ("subject-alpha", "subject-bravo", "subject-charlie")

#: Serve the dashboard with the fake face models (argv: the streamlit arguments after ``run``).
SERVER = """
import sys
import core.engine
from streamlit.web import cli
from tests.video_fakes import VideoFakePipeline
core.engine.FacePipeline = lambda *args, **kwargs: VideoFakePipeline()
sys.argv = ["streamlit", "run", *sys.argv[1:]]
sys.exit(cli.main())
"""


def build_video_db(db: Path) -> None:
    """A database with an operator account (:data:`PASSWORD`) and a gallery of three fake subjects."""
    from argon2 import PasswordHasher

    from audit import Runtime
    from audit.accounts import UserStore
    from tests.video_fakes import enroll_fake

    rt = Runtime(str(db))
    UserStore(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(OPERATOR, "operator",
                                                                                            PASSWORD)
    enroll_fake(rt.galleries, GALLERY, rt.config(), SUBJECTS)
    rt.close()


def write_demo_footage(path: Path) -> None:
    """20 s of generated footage: alpha crosses twice, a stranger and bravo are in view together."""
    from tests.video_fakes import Walk, write_footage

    write_footage(path, [
        Walk("subject-alpha", 1.0, 5.0, (0, 40), (220, 60)),
        Walk("stranger-echo", 6.0, 9.0, (220, 140), (160, 140)),
        Walk("subject-bravo", 7.0, 11.0, (20, 60), (100, 40)),
        Walk("subject-alpha", 14.0, 18.5, (230, 30), (10, 50)),
    ], 20.0)


@contextlib.contextmanager
def video_dashboard(db: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve the dashboard on ``db`` with the fake face models; yield its URL."""
    port = free_port()
    command = [sys.executable, "-c", SERVER, str(APP), "--server.headless", "true", "--server.port", str(port),
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
               "--server.fileWatcherType", "none", "--", "--db", str(db)]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    with tempfile.TemporaryFile() as log, subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
    ) as proc:
        try:
            try:
                wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
            except TimeoutError:
                log.seek(0)
                raise TimeoutError(f"the dashboard did not start: {log.read().decode(errors='replace')[-2000:]}"
                                   ) from None
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class VideoJob:
    """What the browser saw of one job."""

    heading: str
    screenshot: bytes
    charts: int
    crops: int
    text: str
    exceptions: list[str]


def _wait_for(driver: WebDriver, script: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not driver.js(script):
        if time.monotonic() > deadline:
            shown = driver.js("return document.querySelector('[data-testid=\"stMain\"]').innerText;")
            raise TimeoutError(f"{what} did not appear within {timeout} s; the page shows: {str(shown)[-1500:]}")
        time.sleep(0.5)


def video_job(url: str, footage: Path, chromium: str, chromedriver: str, *, timeout: float = 180) -> VideoJob:
    """Sign in as the operator, open Video search, upload ``footage``, run the job; return what the page shows."""
    driver = WebDriver(chromium, chromedriver)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": 1150})
        driver.get(url)
        settle(driver, "facetrail")
        driver.type('input[aria-label="Account"]', OPERATOR)
        driver.type('input[aria-label="Password"]', PASSWORD)
        driver.click_text("button", "Sign in")
        driver.click_text('a[data-testid="stSidebarNavLink"]', "Video search")
        settle(driver, "Video search")
        driver.type('input[aria-label="Purpose (required)"]', "find the person seen leaving the depot")
        driver.type('input[aria-label="Case reference (required)"]', "CR-2026-0042")
        upload = driver.find('[data-testid="stFileUploader"] input[type="file"]')
        driver.cmd("POST", f"/element/{upload}/value", {"text": str(footage.resolve())})
        _wait_for(driver, "return [...document.querySelectorAll('[data-testid=\"stFileChip\"]')].length > 0;",
                  "the uploaded file", 60)
        time.sleep(2.0)  # the chip shows while the upload is still under way
        driver.click_text("button", "Search the video")
        _wait_for(driver, "return [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('Result'))"
                          " && !document.querySelector('[data-testid=\"stStatusWidget\"]');", "the result", timeout)
        _wait_for(driver, "return document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 && "
                          "[...document.querySelectorAll('[data-testid=\"stImage\"] img')].every(i => i.complete);",
                  "the timeline and the crops", 60)
        driver.js("[...document.querySelectorAll('h3')].find(h => h.innerText.startsWith('Result'))"
                  ".scrollIntoView({block: 'start'});")
        time.sleep(2.5)  # let plotly finish drawing
        heading = str(driver.js("return [...document.querySelectorAll('h3')].map(h => h.innerText)"
                                ".find(t => t.startsWith('Result'));"))
        return VideoJob(
            heading=heading,
            screenshot=driver.screenshot(),
            charts=int(driver.js("return document.querySelectorAll('.js-plotly-plot .main-svg').length;")),
            crops=int(driver.js("return document.querySelectorAll('[data-testid=\"stImage\"] img').length;")),
            text=str(driver.js("return document.querySelector('[data-testid=\"stMain\"]').innerText;")),
            exceptions=exceptions_on_page(driver),
        )
    finally:
        driver.quit()


REVIEWER = "reviewer1"
REVIEWER_PASSWORD = "reviewer1-video-demo"
ARROW_RIGHT = "\ue014"
ENTER = "\ue007"


def add_reviewer(db: Path) -> None:
    """Add the reviewer account (:data:`REVIEWER_PASSWORD`) to a database made by :func:`build_video_db`."""
    from argon2 import PasswordHasher

    from audit import Runtime
    from audit.accounts import UserStore

    rt = Runtime(str(db))
    UserStore(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(REVIEWER, "reviewer",
                                                                                            REVIEWER_PASSWORD)
    rt.close()


def _sign_in(driver: WebDriver, url: str, account: str, password: str) -> None:
    driver.get(url)
    settle(driver, "facetrail")
    driver.type('input[aria-label="Account"]', account)
    driver.type('input[aria-label="Password"]', password)
    driver.click_text("button", "Sign in")


def _main_text(driver: WebDriver) -> str:
    return str(driver.js("return document.querySelector('[data-testid=\"stMain\"]').innerText;"))


def _choose(driver: WebDriver, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a combobox: type the option, press Enter)."""
    box = driver.find(f'input[role="combobox"][aria-label="{label}"]')
    driver.cmd("POST", f"/element/{box}/click", {})
    driver.cmd("POST", f"/element/{box}/clear", {})
    driver.cmd("POST", f"/element/{box}/value", {"text": option + ENTER})


def looser_search_then_review(url: str, still: Path, steps: int, reason: str, chromium: str, chromedriver: str,
                              *, timeout: float = 120) -> dict[str, str]:
    """As the operator, search ``still`` ``steps`` slider steps looser than the default: first without a reason,
    then with ``reason``; then, as the reviewer, open the looser searches in the match log.

    Returns the page text after each stage (``refused``, ``searched``, ``match_log``).
    """
    seen: dict[str, str] = {}
    driver = WebDriver(chromium, chromedriver)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": 1400})
        _sign_in(driver, url, OPERATOR, PASSWORD)
        driver.click_text('a[data-testid="stSidebarNavLink"]', "Search")
        settle(driver, "Search a gallery")
        slider = driver.find('[data-testid="stSlider"] input[type="range"]')  # the thumb's (visually hidden) input
        driver.cmd("POST", f"/element/{slider}/value", {"text": ARROW_RIGHT * steps})
        _wait_for(driver, "return !!document.querySelector('textarea');", "the reason field", 30)
        driver.type('input[aria-label="Purpose (required)"]', "identify the person on the depot still")
        driver.type('input[aria-label="Case reference (required)"]', "CR-2026-0042")
        upload = driver.find('[data-testid="stFileUploader"] input[type="file"]')
        driver.cmd("POST", f"/element/{upload}/value", {"text": str(still.resolve())})
        _wait_for(driver, "return document.querySelectorAll('[data-testid=\"stFileChip\"]').length > 0;",
                  "the uploaded file", 60)
        time.sleep(2.0)
        driver.click_text("button", "Search")
        _wait_for(driver, "return [...document.querySelectorAll('[data-testid=\"stAlertContentError\"]')]"
                          ".some(e => e.innerText.includes('written reason'));", "the refusal", timeout)
        seen["refused"] = _main_text(driver)
        driver.type("textarea", reason)
        driver.click_text("button", "Search")
        _wait_for(driver, "return [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('Result'));",
                  "the result", timeout)
        seen["searched"] = _main_text(driver)
        driver.click_text("button", "Sign out")
        _sign_in(driver, url, REVIEWER, REVIEWER_PASSWORD)
        driver.click_text('a[data-testid="stSidebarNavLink"]', "Match log")
        settle(driver, "Match log")
        _choose(driver, "Threshold policy", "looser")
        _wait_for(driver, "return document.querySelector('[data-testid=\"stMain\"]').innerText"
                          ".includes('Reason given:');", "the looser search's reason", timeout)
        seen["match_log"] = _main_text(driver)
        seen["exceptions"] = "\n".join(exceptions_on_page(driver))
    finally:
        driver.quit()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    found = chromium_paths()
    if found is None:
        sys.exit("install chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="facetrail-video-shot-") as folder:
        db, footage = Path(folder) / "video.duckdb", Path(folder) / "depot-camera.mp4"
        env = {"FACETRAIL_CONFIG_DIR": str(Path(folder) / "config")}
        os.environ.update(env)
        build_video_db(db)
        write_demo_footage(footage)
        with video_dashboard(db, env) as url:
            job = video_job(url, footage, *found)
    if job.exceptions:
        print("\n".join(job.exceptions), file=sys.stderr)
        return 1
    args.docs.mkdir(parents=True, exist_ok=True)
    data = shrink_png(job.screenshot)
    (args.docs / "video-page.png").write_bytes(data)
    print(f"{args.docs / 'video-page.png'}: {len(data) // 1024} KB ({job.heading})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
