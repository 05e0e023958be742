"""A real browser (headless Debian Chromium) runs a video job on the Video search page.

The dashboard runs as its own process with the fake face models of :mod:`tests.video_fakes`
(generated footage, no dataset face); the browser signs in as an operator, uploads the
file through the page's file input and waits for the result. Needs
``apt-get install -y chromium chromium-driver`` and the installed weights (checksums).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import Runtime
from tests.dashboard.web.browser import chromium_paths
from tests.dashboard.web.video_browser import (
    OPERATOR,
    add_reviewer,
    build_video_db,
    looser_search_then_review,
    video_dashboard,
    video_job,
    write_demo_footage,
)

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_the_video_page_runs_a_job_in_a_real_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = chromium_paths()
    if found is None:
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    env = {"FACETRAIL_CONFIG_DIR": str(tmp_path / "config")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db, footage = tmp_path / "video.duckdb", tmp_path / "depot-camera.mp4"
    build_video_db(db)
    write_demo_footage(footage)
    with video_dashboard(db, env) as url:
        job = video_job(url, footage, *found)
    assert not job.exceptions, job.exceptions
    seq = int(job.heading.rsplit("#", 1)[1])
    record = Runtime(str(db)).log.get(seq).record
    assert (record.action, record.outcome, record.operator, record.case_ref) == (
        "search_video", "ok", OPERATOR, "CR-2026-0042")
    tracks = record.details["tracks"]
    with_candidates = [t for t in tracks if t["candidates"]]
    assert [c.subject_id for c in record.candidates] == ["subject-alpha", "subject-bravo", "subject-alpha"]
    assert len(tracks) == 4 and len(with_candidates) == 3
    assert job.charts > 0, "no timeline drawn"
    assert job.crops == len(with_candidates)  # one best crop per track with a candidate
    assert "Candidates by track" in job.text and "subject-bravo" in job.text
    assert len(job.screenshot) > 10_000


def test_a_looser_search_in_a_real_browser_needs_a_reason_and_is_flagged_to_reviewers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: refused without a reason, run with one, and the reviewer sees it flagged (with the reason)."""
    import cv2
    import numpy as np

    from tests.video_fakes import PALETTE

    found = chromium_paths()
    if found is None:
        pytest.skip("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    env = {"FACETRAIL_CONFIG_DIR": str(tmp_path / "config")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = tmp_path / "policy.duckdb"
    build_video_db(db)
    add_reviewer(db)
    rgb = np.full((200, 200, 3), 35, np.uint8)
    rgb[60:140, 60:140] = PALETTE["subject-alpha"]
    still = tmp_path / "depot-still.png"
    cv2.imwrite(str(still), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    reason = "a low-light still from the depot camera, approved by the duty sergeant"
    with video_dashboard(db, env) as url:
        seen = looser_search_then_review(url, still, 2, reason, *found)
    assert not seen["exceptions"], seen["exceptions"]
    assert "looser than this deployment allows" in seen["refused"] and "needs a written reason" in seen["refused"]
    assert "Result — audit record #" in seen["searched"]  # its candidates are a data grid (a canvas): checked below
    assert "looser than the deployment's policy" in seen["match_log"] and f"Reason given: {reason}" in seen["match_log"]
    log = Runtime(str(db)).log
    outcomes = [(e.record.action, e.record.outcome) for e in log.list() if e.record.action in ("search", "refused")]
    assert outcomes == [("refused", "threshold_reason_required"), ("search", "ok")]
    (flagged,) = [e.record for e in log.list() if e.record.action == "search"]
    assert flagged.details["threshold_policy"]["status"] == "looser"
    assert flagged.details["threshold_policy"]["reason"] == reason
    assert [c.subject_id for c in flagged.candidates] == ["subject-alpha"]
