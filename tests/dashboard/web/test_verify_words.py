"""Verify says what a 1:1 comparison can say: above or below the threshold, never "Not the same person".

Real audited service and log; fake face models (:mod:`tests.video_fakes`), no dataset image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from audit import Runtime
from tests.dashboard.conftest import APP, as_user
from tests.video_fakes import PALETTE, VideoFakePipeline

pytestmark = [pytest.mark.model]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = str(tmp_path / "verify.duckdb")
    Runtime(db).close()
    monkeypatch.setenv("FACETRAIL_DB", db)
    yield db


def photo(subject: str) -> bytes:
    rgb = np.full((200, 200, 3), 35, np.uint8)
    yy, xx = np.mgrid[0:80, 0:80]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 25, -25)[:, :, None]
    rgb[60:140, 60:140] = np.clip(np.asarray(PALETTE[subject], np.int16) + checker, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes()


def verify(first: str, second: str) -> str:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user("operator1", "operator")
    at.run()
    at.switch_page("app_pages/verify.py").run()
    at.text_input(key="verify_purpose").input("confirm an identity document")
    at.text_input(key="verify_case").input("CR-2026-0007")
    at.file_uploader(key="verify_first").set_value(("a.png", photo(first), "image/png"))
    at.file_uploader(key="verify_second").set_value(("b.png", photo(second), "image/png"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return next(m.value for m in (*at.success, *at.info) if "Audit record #" in m.value)


def test_a_pair_below_the_threshold_is_not_called_different_people(env: str) -> None:
    subjects = list(PALETTE)
    same = verify(subjects[0], subjects[0])
    other = verify(subjects[0], subjects[1])
    assert same.startswith("Above the threshold: similarity ")
    assert other.startswith("Below the threshold: similarity ")
    for message in (same, other):
        assert "same person" not in message.lower().replace("does not prove two different people", "")
        assert "%" not in message and "None" not in message
    assert "does not prove two different people" in other
