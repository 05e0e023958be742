"""The README screenshot of the review screen, made from generated faces only.

Builds the fake scene with the review scene of :mod:`tests.dashboard.web.review_scene` (a search by
operator1 with the probe and both reference photos kept for review, run looser than the policy), serves
the dashboard on it (the photos drawn faces, :func:`drawn_face`), opens the search from reviewer2's queue in headless Chromium and writes
``review-screen.png``: the probe and the reference photo side by side, the score's error context and the
decision form. No dataset face is used, so the image may be committed.

Run by hand::

    .venv/bin/python -m tests.dashboard.web.review_shot --docs docs
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

from tests.dashboard.web.browser import (
    REPO,
    WebDriver,
    chromium_paths,
    dashboard,
    exceptions_on_page,
    main_text,
    settle,
    shrink_png,
    sign_in,
    wait_for,
)

REVIEWER = "reviewer2"
QUEUE = "Open from my queue (oldest first)"
ENTER = "\ue007"
PHOTOS_LOADED = ("const i = [...document.querySelectorAll('[data-testid=\"stImage\"] img')];"
                 "return i.length === 2 && i.every(x => x.complete && x.naturalWidth > 0);")


def drawn_face(subject: str, variant: int) -> bytes:
    """A drawn face (PNG, 160x200) for ``subject``: head shape, skin, hair and eyes from a hash of the name.

    Nobody's photo: a README screenshot must never show a dataset face. ``variant`` shifts the pose a little.
    The bottom-right pixel's red channel is 1, so the fake pipeline finds one face in it (:mod:`tests.fakes`).
    """
    from PIL import Image, ImageDraw

    h = hashlib.sha256(subject.encode()).digest()
    skin = [(241, 204, 170), (224, 172, 128), (198, 134, 90), (141, 85, 54), (92, 58, 38)][h[0] % 5]
    hair = [(40, 30, 25), (95, 60, 30), (160, 120, 60), (120, 120, 120), (20, 20, 20)][h[1] % 5]
    width, height, dx = 44 + h[2] % 10, 58 + h[3] % 8, 4 * variant
    image = Image.new("RGB", (160, 200), (214, 222, 230))
    draw = ImageDraw.Draw(image)
    cx, cy = 80 + dx, 104
    draw.rectangle((cx - 34, cy + height - 14, cx + 34, 200), fill=(70, 90, 120))  # shoulders
    draw.ellipse((cx - 60, cy + height - 30, cx + 60, cy + height + 70), fill=(70, 90, 120))
    draw.rectangle((cx - 12, cy + height - 24, cx + 12, cy + height - 2), fill=skin)  # neck
    draw.ellipse((cx - width - 4, cy - height - 8, cx + width + 4, cy + 10), fill=hair)  # hair behind the head
    draw.ellipse((cx - width, cy - height, cx + width, cy + height), fill=skin)
    draw.chord((cx - width - 2, cy - height - 6, cx + width + 2, cy + 6), 180, 360, fill=hair)  # fringe
    eye_dx, eye_y = 18 + h[4] % 6, cy - 4 + h[5] % 6
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse((ex - 7, eye_y - 4, ex + 7, eye_y + 4), fill=(250, 250, 250))
        draw.ellipse((ex - 3, eye_y - 3, ex + 3, eye_y + 3), fill=(50, 40, 30))
        draw.line((ex - 8, eye_y - 10, ex + 8, eye_y - 11 + h[6] % 3), fill=hair, width=3)  # brows
    draw.line((cx, eye_y + 4, cx - 4, eye_y + 22, cx + 2, eye_y + 24), fill=tuple(int(c * 0.8) for c in skin), width=2)
    mouth_y = eye_y + 36 + h[7] % 5
    draw.arc((cx - 14, mouth_y - 8, cx + 14, mouth_y + 6), 20, 160, fill=(150, 60, 60), width=3)
    image.putpixel((159, 199), (1, 90, 120))  # red 1: one face for the fake pipeline
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_scene(db: Path) -> int:
    """The fake scene plus the review scene in ``db``; the reviewed search's sequence number."""
    from core import Engine
    from tests.conftest import make_config
    from tests.dashboard.conftest import build_fake_scene
    from tests.dashboard.web.review_scene import add_review_scene
    from tests.fakes import FakePipeline

    build_fake_scene(db)
    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = FakePipeline()  # type: ignore[assignment]  # generated faces: no model, no dataset image
    return add_review_scene(str(db), engine, photo=drawn_face).seq


def review_screenshot(url: str, seq: int, chromium: str, chromedriver: str, height: int = 1800) -> bytes:
    """Sign in as reviewer2, open record ``seq`` from the queue, wait for both photos; the screenshot."""
    driver = WebDriver(chromium, chromedriver)
    try:
        driver.cmd("POST", "/window/rect", {"width": 1400, "height": height})
        driver.get(url)
        sign_in(driver, REVIEWER)
        driver.click_text('a[data-testid="stSidebarNavLink"]', "Match log")
        settle(driver, "Match log")
        wait_for(driver, "Pending for me")
        time.sleep(1.0)
        box = driver.find(f'input[role="combobox"][aria-label="{QUEUE}"]')
        driver.cmd("POST", f"/element/{box}/click", {})
        driver.cmd("POST", f"/element/{box}/value", {"text": "rank 1 Ann_Example"})
        time.sleep(0.8)
        driver.cmd("POST", f"/element/{box}/value", {"text": ENTER})
        wait_for(driver, f"Opened from your queue: record #{seq}.")
        wait_for(driver, "How often different people score this high")
        deadline = time.monotonic() + 60
        while not driver.js(PHOTOS_LOADED):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the two photos did not load; the page shows: {main_text(driver)[-1500:]}")
            time.sleep(0.3)
        shown = exceptions_on_page(driver)
        if shown:
            raise RuntimeError("the review screen shows an exception: " + " | ".join(shown))
        # scroll so the record header, both photos, the error context and the decision form are in view
        driver.js("document.querySelector('[data-testid=\"stImage\"]').scrollIntoView({block: 'center'});")
        time.sleep(1.0)
        return driver.screenshot()
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument("--height", type=int, default=1800, help="browser window height in pixels")
    args = parser.parse_args()
    found = chromium_paths()
    if found is None:
        sys.exit("install chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="facetrail-review-shot-") as folder:
        db = Path(folder) / "review.duckdb"
        seq = build_scene(db)
        with dashboard(str(db)) as url:
            shot = review_screenshot(url, seq, *found, height=args.height)
    args.docs.mkdir(parents=True, exist_ok=True)
    data = shrink_png(shot)
    (args.docs / "review-screen.png").write_bytes(data)
    print(f"{args.docs / 'review-screen.png'}: {len(data) // 1024} KB (record #{seq})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
