"""The threshold policy on the dashboard, from the operator's and the reviewers' side (AppTest).

Search and Video search show the policy's warning as soon as the slider goes looser than the
policy, ask for a written reason, refuse (and record) the search without one or past the hard
limit, and flag the record; the match log lists looser searches, filters on them and shows
the reason and the warning to reviewers and auditors. Real audited service and log; fake
face models (:mod:`tests.video_fakes`), no dataset image.
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
from tests.video_fakes import PALETTE, VideoFakePipeline, Walk, enroll_fake, write_footage

pytestmark = [pytest.mark.model]

ALPHA = "subject-alpha"
REASON = "the still is a low-light frame from the depot camera"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, float]]:
    """A database with gallery ``g`` (alpha) served to the app; yields its path and the gallery's default threshold."""
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = str(tmp_path / "policy.duckdb")
    rt = Runtime(db)
    enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, "subject-bravo"])
    default = rt.engine_for_gallery("g").config.threshold
    rt.close()
    monkeypatch.setenv("FACETRAIL_DB", db)
    yield db, default


def records_table(at):  # type: ignore[no-untyped-def]
    """The Match log's records table (a reviewer's queue, above it, is another table)."""
    return next(d.value for d in at.dataframe if "seq" in d.value.columns)


def still() -> bytes:
    rgb = np.full((200, 200, 3), 35, np.uint8)
    yy, xx = np.mgrid[0:80, 0:80]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 25, -25)[:, :, None]
    rgb[60:140, 60:140] = np.clip(np.asarray(PALETTE[ALPHA], np.int16) + checker, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes()


def page(path: str, name: str = "operator1", role: str = "operator") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user(name, role)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def steps(default: float, factor: float) -> float:
    """The slider value (steps of 0.005 from 0.01) nearest ``factor`` times the default."""
    return round(0.01 + round((default * factor - 0.01) / 0.005) * 0.005, 3)


def search(at: AppTest, threshold: float, reason: str | None) -> AppTest:
    at.slider(key="search_threshold").set_value(threshold).run()
    at.text_input(key="search_purpose").input("identify the person on the still")
    at.text_input(key="search_case").input("CR-2026-0042")
    if reason is not None:
        at.text_area(key="search_threshold_reason").input(reason)
    at.file_uploader(key="search_upload").set_value(("still.png", still(), "image/png"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def records(db: str) -> list:  # noqa: ANN001
    return [e.record for e in Runtime(db).log.list()]


def test_at_the_default_the_page_shows_no_policy_warning_and_asks_no_reason(env: tuple[str, float]) -> None:
    at = page("app_pages/search.py")
    assert not [w for w in at.warning if "looser than this deployment" in w.value]
    assert not at.text_area


def test_a_looser_search_needs_a_reason_and_is_flagged(env: tuple[str, float]) -> None:
    db, default = env
    looser = steps(default, 1.15)
    assert default < looser <= default * 1.25
    at = page("app_pages/search.py")
    at.slider(key="search_threshold").set_value(looser).run()
    (shown,) = [w.value for w in at.warning if "looser than this deployment" in w.value]
    assert f"Threshold {looser:.3f}" in shown and at.text_area(key="search_threshold_reason") is not None
    at = search(at, looser, reason=None)  # the reason field left empty
    assert any("needs a written reason" in e.value for e in at.error)
    (refusal,) = records(db)[-1:]
    assert (refusal.action, refusal.outcome) == ("refused", "threshold_reason_required")
    assert refusal.details["threshold_policy"]["warning"] == shown  # the warning the page showed
    at = search(page("app_pages/search.py"), looser, REASON)
    heading = next(s.value for s in at.subheader if s.value.startswith("Result"))
    record = Runtime(db).log.get(int(heading.rsplit("#", 1)[1])).record
    flag = record.details["threshold_policy"]
    assert (record.action, flag["status"], flag["reason"], flag["warning"]) == ("search", "looser", REASON, shown)


def test_past_the_hard_limit_the_page_says_so_and_the_search_is_refused(env: tuple[str, float]) -> None:
    db, default = env
    beyond = steps(default, 1.6)
    at = page("app_pages/search.py")
    at.slider(key="search_threshold").set_value(beyond).run()
    assert any("refused whatever the reason" in e.value for e in at.error)
    assert not at.text_area  # no reason can help
    at = search(at, beyond, reason=None)
    assert any("hard limit" in e.value and "refused" in e.value for e in at.error)
    assert (records(db)[-1].action, records(db)[-1].outcome) == ("refused", "threshold_beyond_limit")
    assert not [r for r in records(db) if r.action == "search"]


def test_a_looser_video_search_needs_a_reason_too(env: tuple[str, float], tmp_path: Path) -> None:
    db, default = env
    clip = tmp_path / "cam.mp4"
    write_footage(clip, [Walk(ALPHA, 1.0, 3.0, (0, 40), (100, 60))], 4.0)
    looser = steps(default, 1.15)
    at = page("app_pages/video.py")
    at.slider(key="video_threshold").set_value(looser).run()
    assert any("looser than this deployment" in w.value for w in at.warning)
    at.text_input(key="video_purpose").input("find the person on the depot camera")
    at.text_input(key="video_case").input("CR-2026-0042")
    at.text_area(key="video_threshold_reason").input(REASON)
    at.file_uploader(key="video_upload").set_value(("cam.mp4", clip.read_bytes(), "video/mp4"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    (job,) = [r for r in records(db) if r.action == "search_video"]
    assert job.details["threshold_policy"]["status"] == "looser" and job.details["threshold_policy"]["reason"] == REASON


def test_reviewers_see_looser_searches_flagged_in_the_match_log(env: tuple[str, float]) -> None:
    db, default = env
    search(page("app_pages/search.py"), default, None)  # one at the default
    flagged = search(page("app_pages/search.py"), steps(default, 1.15), REASON)
    seq = int(next(s.value for s in flagged.subheader if s.value.startswith("Result")).rsplit("#", 1)[1])
    at = page("app_pages/match_log.py", "reviewer1", "reviewer")
    listed = records_table(at)
    assert listed.set_index("seq").loc[seq, "threshold_policy"] == "looser"
    assert listed.set_index("seq").loc[seq - 1, "threshold_policy"] == "within"
    at.selectbox(key="matchlog_policy").set_value("looser").run()
    assert records_table(at)["seq"].tolist() == [seq]
    at.selectbox(key="matchlog_open").set_value(seq).run()
    assert not at.exception
    assert any("looser than the deployment's policy" in w.value for w in at.warning)
    texts = [t.value for t in at.text]
    assert f"Reason given: {REASON}" in texts
    assert any(t.startswith("Warning shown: Threshold") for t in texts)
