"""The Video search page and video hits in the match log, from the operator's and the reviewers' side (AppTest).

The page runs the real audited video search (decoder, tracker, gallery store, audit log,
two-person rule) on footage rendered in the test (:mod:`tests.video_fakes`: coloured
squares are faces, no dataset image); only the face models are the fake pipeline. The
installed weights are read for the configuration's checksums (``model``).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from audit import REASON_CODES, Runtime
from core.engine import Engine
from tests.dashboard.conftest import APP, as_user
from tests.video_fakes import VideoFakePipeline, Walk, enroll_fake, write_footage

pytestmark = [pytest.mark.model]

ALPHA, BRAVO, STRANGER = "subject-alpha", "subject-bravo", "stranger-echo"
#: 16 s: alpha, a stranger, bravo, alpha again: 4 tracks, 3 with a candidate.
WALKS = [
    Walk(ALPHA, 1.0, 4.0, (0, 40), (200, 60)),
    Walk(STRANGER, 5.5, 7.0, (120, 120), (130, 120)),
    Walk(BRAVO, 9.0, 11.0, (100, 80), (140, 80)),
    Walk(ALPHA, 13.0, 15.0, (220, 40), (10, 60)),
]
VIDEO_PAGE = "app_pages/video.py"
MATCH_LOG = "app_pages/match_log.py"


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("footage")
    write_footage(folder / "cam.mp4", WALKS, 16.0)
    write_footage(folder / "stranger.avi", [Walk(STRANGER, 1.0, 3.0, (40, 40), (120, 60))], 5.0)
    return {"cam.mp4": (folder / "cam.mp4").read_bytes(), "stranger.avi": (folder / "stranger.avi").read_bytes()}


class Jobs:
    """What the engine was given: each job's file path and its mode while the job ran."""

    def __init__(self) -> None:
        self.seen: list[tuple[Path, int]] = []


@pytest.fixture
def video_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, Jobs]]:
    """A database with gallery ``g`` (alpha, bravo) for the dashboard; uploads land in a folder the test watches."""
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = str(tmp_path / "video.duckdb")
    rt = Runtime(db)
    enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, BRAVO])
    rt.close()
    monkeypatch.setenv("FACETRAIL_DB", db)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    jobs = Jobs()
    original = Engine.search_video

    def spy(self: Engine, gallery: Any, source: Any, **kwargs: Any) -> Any:
        path = Path(source)
        jobs.seen.append((path, stat.S_IMODE(os.stat(path).st_mode)))
        return original(self, gallery, source, **kwargs)

    monkeypatch.setattr(Engine, "search_video", spy)
    yield db, uploads, jobs


def signed_in(name: str, role: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_user"] = as_user(name, role)
    return at.run()


def video_page(name: str = "operator1") -> AppTest:
    at = signed_in(name, "operator")
    at.switch_page(VIDEO_PAGE).run()
    assert not at.exception, at.exception
    return at


def run_job(at: AppTest, name: str, data: bytes, *, purpose: str = "find the robbery suspect",
            case: str = "CR-2026-0042") -> AppTest:
    if purpose:
        at.text_input(key="video_purpose").input(purpose)
    if case:
        at.text_input(key="video_case").input(case)
    at.file_uploader(key="video_upload").set_value((name, data, "video/mp4"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def numbers(values: Any) -> list[float]:
    """A plotly trace's numbers, plain or binary-encoded (``{"dtype", "bdata"}``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return [float(v) for v in values]


def result_seq(at: AppTest) -> int:
    heading = next(s.value for s in at.subheader if s.value.startswith("Result"))
    return int(heading.rsplit("#", 1)[1])


def test_the_video_page_is_in_the_operators_menu_only(video_env: tuple[str, Path, Jobs]) -> None:
    operator = signed_in("operator1", "operator")
    operator.switch_page(VIDEO_PAGE).run()
    assert not operator.exception
    assert [t.value for t in operator.title] == ["Video search"]
    assert operator.file_uploader(key="video_upload") is not None
    for name, role in (("reviewer1", "reviewer"), ("auditor1", "auditor"), ("admin1", "admin")):
        other = signed_in(name, role)
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            other.switch_page(VIDEO_PAGE)
        direct = AppTest.from_file(APP.replace("streamlit_app.py", VIDEO_PAGE), default_timeout=60)
        direct.session_state["auth_user"] = as_user(name, role)
        direct.run()
        assert any("Access denied" in e.value for e in direct.error)
        assert not direct.file_uploader


def test_a_job_shows_its_timeline_candidates_and_crops_and_deletes_the_upload(
    video_env: tuple[str, Path, Jobs], footage: dict[str, bytes]
) -> None:
    db, uploads, jobs = video_env
    at = run_job(video_page(), "cam.mp4", footage["cam.mp4"])
    seq = result_seq(at)
    record = Runtime(db).log.get(seq).record
    assert (record.action, record.outcome, record.operator, record.case_ref) == (
        "search_video", "ok", "operator1", "CR-2026-0042")
    # the job read a private copy of the upload, gone once the job ended
    ((path, mode),) = jobs.seen
    assert path.parent == uploads and mode == 0o600
    assert not path.exists() and list(uploads.iterdir()) == []
    # the timeline: one bar per track, from its start to its end, labelled with its first candidate
    (figure,) = at.get("plotly_chart")
    bars = [t for t in json.loads(figure.proto.spec)["data"] if t["type"] == "bar"]
    spans = sorted((float(start), float(start + length), b["name"])
                   for b in bars for start, length in zip(numbers(b["base"]), numbers(b["x"]), strict=True))
    assert spans == [(1.0, 4.0, ALPHA), (5.5, 7.0, "(no candidate)"), (9.0, 11.0, BRAVO), (13.0, 15.0, ALPHA)]
    candidates = next(d.value for d in at.dataframe if "candidate_id" in d.value.columns)
    assert candidates["subject_id"].tolist() == [ALPHA, BRAVO, ALPHA]
    assert candidates["track_id"].tolist() == [1, 3, 4]
    assert candidates["status"].tolist() == ["pending"] * 3
    # the best crop of each track with a candidate, from this job's result in memory
    captions = [c for image in at.image for c in image.captions]
    assert [c.split(" at ")[0] for c in captions] == ["Track 1", "Track 3", "Track 4"]
    # and sealed for the reviewers by the audited service (audit.evidence), never the video
    assert record.details["retained"]["video"] is False and record.details["retained"]["crops"] == 3
    assert any("3 sealed for the reviewers" in m.value for m in at.markdown)


def test_crops_are_of_this_job_only_and_forgotten_on_request(
    video_env: tuple[str, Path, Jobs], footage: dict[str, bytes]
) -> None:
    at = run_job(video_page(), "cam.mp4", footage["cam.mp4"])
    assert len([c for image in at.image for c in image.captions]) == 3
    first = result_seq(at)
    at = run_job(at, "stranger.avi", footage["stranger.avi"])  # a second job: only a stranger in view
    assert result_seq(at) == first + 1
    assert not at.image  # nothing of the first job is shown any more
    assert any("No track has a candidate" in s.value for s in at.success)
    at = run_job(at, "cam.mp4", footage["cam.mp4"])
    assert len(at.image) > 0
    at.button(key="video_forget").click().run()
    assert not at.exception
    assert not at.image and "video_last" not in at.session_state
    assert not [s for s in at.subheader if s.value.startswith("Result")]


@pytest.mark.parametrize("kind", ["not a video", "truncated", "empty"])
def test_a_bad_upload_gets_a_clear_message_and_a_record(
    video_env: tuple[str, Path, Jobs], footage: dict[str, bytes], kind: str
) -> None:
    db, uploads, jobs = video_env
    data = {"not a video": b"\x89PNG\r\n\x1a\n" + bytes(4000), "truncated": footage["cam.mp4"][:5000],
            "empty": b""}[kind]
    before = Runtime(db).log.size()
    at = run_job(video_page(), "cam.mp4", data)
    (error,) = [e.value for e in at.error]
    assert error.startswith("Video search refused or failed (recorded):")
    assert str(uploads) not in error and "facetrail-video-" not in error  # the private copy is not named
    assert "video" in error.lower()
    assert not [s for s in at.subheader if s.value.startswith("Result")]
    added = [e.record for e in Runtime(db).log.list()][before:]
    (failed,) = [r for r in added if r.action == "search_video"]
    assert failed.outcome == "unreadable_video" and failed.operator == "operator1"
    assert failed.case_ref == "CR-2026-0042"
    assert list(uploads.iterdir()) == []


def test_a_job_without_purpose_is_refused_and_recorded(
    video_env: tuple[str, Path, Jobs], footage: dict[str, bytes]
) -> None:
    db, _, jobs = video_env
    before = Runtime(db).log.size()
    at = run_job(video_page(), "cam.mp4", footage["cam.mp4"], purpose="")
    assert any("refused" in e.value and "purpose" in e.value for e in at.error)
    assert jobs.seen == []  # the video was never read
    (refusal,) = [e.record for e in Runtime(db).log.list()][before:]
    assert (refusal.action, refusal.outcome, refusal.details["attempted"]) == (
        "refused", "missing_context", "search_video")


def _open_in_match_log(name: str, seq: int) -> AppTest:
    at = signed_in(name, "reviewer" if name.startswith("reviewer") else "auditor")
    at.switch_page(MATCH_LOG).run()
    at.selectbox(key="matchlog_action").set_value("search_video").run()
    at.selectbox(key="matchlog_open").set_value(seq).run()
    assert not at.exception, at.exception
    return at


def test_video_hits_are_in_the_match_log_and_reviewable_per_track(
    video_env: tuple[str, Path, Jobs], footage: dict[str, bytes]
) -> None:
    db, _, _ = video_env
    seq = result_seq(run_job(video_page(), "cam.mp4", footage["cam.mp4"]))
    auditor = _open_in_match_log("auditor1", seq)
    listed = auditor.dataframe[0].value
    assert listed["seq"].tolist() == [seq] and listed["candidates"].tolist() == [3]
    tracks = next(d.value for d in auditor.dataframe if "start_s" in d.value.columns)
    assert tracks[["track_id", "start_s", "end_s"]].values.tolist() == [[1, 1.0, 4.0], [2, 5.5, 7.0], [3, 9.0, 11.0],
                                                                        [4, 13.0, 15.0]]
    candidates = next(d.value for d in auditor.dataframe if "candidate_id" in d.value.columns)
    face = Runtime(db).log.get(seq).record.candidates[0].face_id
    assert candidates["candidate_id"].tolist()[0] == f"1:{face}"
    assert not auditor.radio  # auditors read, they do not review

    def review(name: str, decision: str) -> AppTest:
        at = _open_in_match_log(name, seq)
        label = next(o for o in at.selectbox(key="matchlog_candidate").options if o.startswith("track 4"))
        at.selectbox(key="matchlog_candidate").set_value(label).run()  # the page shows that candidate's evidence
        at.radio(key="matchlog_decision").set_value(decision)
        at.selectbox(key="matchlog_reason").set_value(REASON_CODES[0])
        at.button(key="FormSubmitter:matchlog_form-Record review").click().run()
        assert not at.exception, at.exception
        return at

    assert any("Review recorded" in s.value for s in review("reviewer1", "confirm").success)
    at = review("reviewer2", "confirm")
    candidates = next(d.value for d in at.dataframe if "candidate_id" in d.value.columns)
    assert candidates["status"].tolist() == ["pending", "pending", "confirmed"]  # track 4 only
    assert candidates["confirmations"].tolist()[2] == "reviewer1, reviewer2"
    status = Runtime(db).log.match_status(seq)
    assert [c.status for c in status.candidates] == ["pending", "pending", "confirmed"]
    # the operator, given a reviewer's role, still cannot review their own job
    own = _open_in_match_log("reviewer1", seq)
    own.session_state["auth_user"] = as_user("operator1", "reviewer")
    own.run()
    own.selectbox(key="matchlog_action").set_value("search_video").run()
    own.selectbox(key="matchlog_open").set_value(seq).run()
    assert any("cannot review it" in i.value for i in own.info)
    own.radio(key="matchlog_decision").set_value("confirm")
    own.selectbox(key="matchlog_reason").set_value(REASON_CODES[0])
    own.button(key="FormSubmitter:matchlog_form-Record review").click().run()
    assert any("two-person rule" in e.value for e in own.error)
    # the review-status filter sees video records too
    confirmed = _open_in_match_log("auditor1", seq)
    confirmed.selectbox(key="matchlog_review").set_value("confirmed").run()
    assert confirmed.dataframe[0].value["seq"].tolist() == [seq]
