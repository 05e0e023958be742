"""AuditedEngine.search_video: one record per video job, reviewable track candidates, failed jobs recorded.

The engine, tracker, gallery store, audit log and review rule are the real ones; the face
models are the fake of :mod:`tests.video_fakes` (coloured squares are faces), so every
expected value comes from the footage's script. The same job with the real models, from
the command line, is in ``tests/dashboard/cli/test_video_command.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from audit import (
    AuditContext,
    AuditedEngine,
    AuditFilter,
    AuditLog,
    AuditSession,
    Forbidden,
    MissingContext,
    ReviewRefused,
    audited_export,
)
from audit.accounts import Actor
from core import Database, Engine, GalleryStore
from core.errors import BadInput, FrameTooLarge, GalleryNotFound, UnreadableVideo, VideoTooLong
from tests.auth import actor_for
from tests.conftest import make_config
from tests.core.footage import write_frames
from tests.video_fakes import VideoFakePipeline, Walk, enroll_fake, write_footage

CTX = AuditContext(purpose="robbery investigation", case_ref="CASE-7", legal_basis="warrant 12")
ALPHA, BRAVO, CHARLIE, STRANGER = "subject-alpha", "subject-bravo", "subject-charlie", "stranger-echo"

#: 16 s: alpha crosses (1-5 s) while a stranger stands below (2-4 s), bravo (6-9 s), alpha again (11.5-15 s).
WALKS = [
    Walk(ALPHA, 1.0, 5.0, (0, 40), (220, 60)),
    Walk(STRANGER, 2.0, 4.0, (200, 140), (180, 140)),
    Walk(BRAVO, 6.0, 9.0, (100, 80), (140, 80)),
    Walk(ALPHA, 11.5, 15.0, (220, 40), (10, 60)),
]
#: What the script says each track is: (subject or None, first and last sampled ms in view).
EXPECTED = [(ALPHA, 1000, 5000), (None, 2000, 4000), (BRAVO, 6000, 9000), (ALPHA, 11500, 15000)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def engine() -> Engine:
    engine = Engine(make_config(threshold=0.3))
    engine._pipeline = VideoFakePipeline()  # type: ignore[assignment]
    return engine


@pytest.fixture
def galleries(db: Database, engine: Engine) -> GalleryStore:
    store = GalleryStore(db)
    enroll_fake(store, "g", engine.config, [ALPHA, BRAVO, CHARLIE])
    return store


@pytest.fixture
def alice(db: Database) -> Actor:
    return actor_for(db, "alice", "operator")


@pytest.fixture
def audited(log: AuditLog, engine: Engine, galleries: GalleryStore, alice: Actor) -> AuditedEngine:
    return AuditedEngine(AuditSession(log, CTX, alice), engine, galleries)


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("footage") / "cam.mp4"
    write_footage(path, WALKS, 16.0)
    return path


def reviewer(log: AuditLog, name: str, *, method: str = "password_session") -> AuditSession:
    return AuditSession(log, AuditContext(), actor_for(log.db, name, "reviewer", method=method))  # type: ignore[arg-type]


def test_a_video_job_is_one_record_with_hash_gallery_config_sampling_and_tracks(
    audited: AuditedEngine, log: AuditLog, galleries: GalleryStore, footage: Path
) -> None:
    before = galleries.ref("g")
    done = audited.search_video("g", footage, fps=2.0, top_k=5)
    assert log.size() == 1 and done.seq == 1
    rec = log.get(done.seq).record
    assert (rec.action, rec.outcome, rec.operator, rec.purpose, rec.case_ref, rec.legal_basis) == (
        "search_video", "ok", "alice", "robbery investigation", "CASE-7", "warrant 12")
    assert rec.probe_sha256 == (sha(footage),) == (done.result.video_sha256,)
    assert rec.gallery is not None and (rec.gallery.name, rec.gallery.fingerprint, rec.gallery.size) == (
        before.name, before.fingerprint, 3)
    config = audited.engine.config
    assert rec.model_config is not None and rec.model_config["threshold_source"]["kind"] == "user"
    assert rec.model_config["embedding_key"] == config.embedding_key and rec.model_config["threshold"] == "0.300000"
    assert rec.faces_found == done.result.faces_detected > 0
    d = rec.details
    assert d["video"] == {"duration_ms": 16000, "frames_decoded": 160, "frames_sampled": 32, "width": 320,
                          "height": 240, "rotation": 0}
    assert d["sampling"]["fps"] == "2.000000" and d["sampling"]["searches_per_track"] == 3
    assert d["sampling"]["max_duration_s"] == "7200.000000" and d["sampling"]["detection_scale"] == "0.500000"
    assert (d["top_k"], d["threshold"], d["exact"]) == (5, "0.300000", True)
    assert d["expected_fpir"] is None and d["expected_fpir_per"] == "search"  # no calibration of this config
    # the best crop of each track with candidates is kept sealed for its review (audit.evidence)
    assert d["retained"]["video"] is False and d["retained"]["crops"] == sum(1 for t in d["tracks"] if t["candidates"])
    assert d["auth"]["method"] == "password_session"
    tracks = d["tracks"]
    assert [(t["start_ms"], t["end_ms"]) for t in tracks] == [(a, b) for _, a, b in EXPECTED]
    assert [t["track_id"] for t in tracks] == [1, 2, 3, 4]
    assert d["searches"] == sum(t["searches"] for t in tracks) == done.result.searches
    face_of = {c.subject_id: c.face_id for c in rec.candidates}
    assert [t["candidates"] for t in tracks] == [[face_of[s]] if s else [] for s, _, _ in EXPECTED]
    # every track's candidates, track after track, in the record's one candidate format
    assert [(c.subject_id, c.rank, c.distance) for c in rec.candidates] == [
        (ALPHA, 1, "0.000000"), (BRAVO, 1, "0.000000"), (ALPHA, 1, "0.000000")]
    assert all(t["start_ms"] <= t["best_ms"] <= t["end_ms"] for t in tracks)
    assert abs(tracks[0]["best_face"]["w"] - 80) <= 4  # the 80 px square, found at half scale
    assert set(tracks[0]["best_face"]) == {"x", "y", "w", "h", "confidence", "detector"}


def test_the_record_names_the_video_only_by_its_hash_and_keeps_no_pixels(
    audited: AuditedEngine, log: AuditLog, footage: Path
) -> None:
    done = audited.search_video("g", footage)
    raw = log.get(done.seq).record.canonical().decode()
    assert footage.name not in raw and str(footage.parent) not in raw
    assert len(raw) < 8000  # ids, times and boxes: no image data
    assert sorted(p.name for p in footage.parent.iterdir()) == ["cam.mp4"]  # nothing written beside it


def test_crops_of_tracks_with_candidates_are_held_in_memory_for_the_evidence_store(
    audited: AuditedEngine, footage: Path
) -> None:
    result = audited.search_video("g", footage).result
    kept = {t.track_id: t.crop for t in result.tracks}
    assert kept[2] is None  # the stranger's track has no candidate: nothing of it is held
    for track_id in (1, 3, 4):
        crop = kept[track_id]
        assert crop is not None and crop.dtype == np.uint8 and crop.shape[2] == 3 and not crop.flags.writeable
    bravo = kept[3]
    assert bravo is not None
    centre = bravo[bravo.shape[0] // 2 - 10 : bravo.shape[0] // 2 + 10, bravo.shape[1] // 2 - 10 : bravo.shape[1] // 2 + 10]
    assert np.median(centre[:, :, 1]) > 150 > np.median(centre[:, :, 0])  # bravo's green face, not the background


def test_the_record_verifies_and_tampering_with_it_is_found(audited: AuditedEngine, log: AuditLog,
                                                           footage: Path) -> None:
    done = audited.search_video("g", footage)
    log.checkpoint()
    report = log.verify()
    assert report.ok and (report.records, report.checkpoints) == (1, 1)
    with log.db.connect() as con:  # move a track's time range: the chain no longer verifies
        row = con.execute("SELECT record FROM audit_log WHERE seq = ?", [done.seq]).fetchone()
        forged = bytes(row[0]).replace(b'"start_ms":6000', b'"start_ms":7000')
        assert forged != bytes(row[0])
        con.execute("UPDATE audit_log SET record = ? WHERE seq = ?", [forged, done.seq])
    assert not log.verify().ok


def test_track_candidates_are_confirmed_only_by_two_reviewers_other_than_the_operator(
    audited: AuditedEngine, log: AuditLog, footage: Path
) -> None:
    seq = audited.search_video("g", footage).seq
    rec = log.get(seq).record
    alpha = next(c.face_id for c in rec.candidates if c.subject_id == ALPHA)
    bravo = next(c.face_id for c in rec.candidates if c.subject_id == BRAVO)
    first, second = f"1:{alpha}", f"4:{alpha}"

    def status() -> dict[str | None, str]:
        return {c.candidate_id: c.status for c in log.match_status(seq).candidates}

    assert status() == {first: "pending", f"3:{bravo}": "pending", second: "pending"}
    # the operator, now also a reviewer, may not review her own job
    actor_for(log.db, "alice", "reviewer")
    with pytest.raises(ReviewRefused, match="two-person"):
        reviewer(log, "alice").review(seq, "confirm", face_id=first)
    # the same face in two tracks: a bare face id is ambiguous, and the refusal names both candidates
    with pytest.raises(ReviewRefused, match=rf"candidate of 2 tracks .*name one: {first}, {second}"):
        reviewer(log, "rev1").review(seq, "confirm", face_id=alpha)
    with pytest.raises(ReviewRefused, match="has no candidate '2:"):
        reviewer(log, "rev1").review(seq, "confirm", face_id=f"2:{alpha}")  # the stranger's track has none
    with pytest.raises(ReviewRefused, match="3 track candidates; name one as TRACK:FACE_ID"):
        reviewer(log, "rev1").review(seq, "confirm")
    with pytest.raises(ReviewRefused, match="own password"):  # a script's token is not a person
        reviewer(log, "rev3", method="api_token").review(seq, "confirm", face_id=first)
    reviewer(log, "rev1").review(seq, "confirm", face_id=first)
    with pytest.raises(ReviewRefused, match="already reviewed candidate"):  # the same account again: refused
        reviewer(log, "REV1 ").review(seq, "confirm", face_id=first)
    assert status()[first] == "pending"
    reviewer(log, "rev2").review(seq, "confirm", face_id=first)
    assert status() == {first: "confirmed", f"3:{bravo}": "pending", second: "pending"}  # only that appearance
    # a face id only one track has is accepted and recorded as its candidate id
    entry = reviewer(log, "rev2").review(seq, "reject", face_id=bravo)
    assert entry.record.target_face_id == f"3:{bravo}"
    reviewer(log, "rev1").review(seq, "confirm", face_id=f"3:{bravo}")
    assert status()[f"3:{bravo}"] == "rejected"  # one rejection vetoes
    statuses = log.match_status(seq).to_dict()["candidates"]
    assert [(c["track_id"], c["face_id"], c["subject_id"], c["rank"]) for c in statuses] == [
        (1, alpha, ALPHA, 1), (3, bravo, BRAVO, 1), (4, alpha, ALPHA, 1)]
    refusals = [e.record for e in log.list(AuditFilter(action="refused"))]
    assert [r.outcome for r in refusals] == ["review_refused"] * 6 and all(r.target_seq == seq for r in refusals)
    assert log.verify().ok


def test_a_video_without_candidates_is_no_match_and_not_reviewable(audited: AuditedEngine, log: AuditLog,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "stranger.avi"
    write_footage(path, [Walk(STRANGER, 0.5, 3.0, (20, 20), (120, 40))], 4.0)
    done = audited.search_video("g", path)
    rec = log.get(done.seq).record
    assert rec.outcome == "no_match" and rec.candidates == () and len(rec.details["tracks"]) == 1
    assert rec.details["tracks"][0]["candidates"] == [] and done.result.tracks[0].crop is None
    with pytest.raises(ReviewRefused, match="outcome 'no_match'"):
        reviewer(log, "rev1").review(done.seq, "confirm")
    assert log.match_status(done.seq).candidates == ()


def test_a_pseudonymised_export_hides_every_subject_of_a_video_job(
    audited: AuditedEngine, log: AuditLog, footage: Path, tmp_path: Path
) -> None:
    audited.search_video("g", footage)
    auditor = AuditSession(log, AuditContext(purpose="oversight"), actor_for(log.db, "aud", "auditor"))
    out = tmp_path / "export.jsonl"
    audited_export(auditor, log, out, "jsonl", pseudonymize=True)
    text = out.read_text()
    assert "search_video" in text and ALPHA not in text and BRAVO not in text
    (video,) = [row["record"] for row in map(json.loads, text.splitlines())
                if row["record"]["action"] == "search_video"]
    assert [c["subject_id"].startswith("ps_") for c in video["candidates"]] == [True] * 3


# -- failed jobs: recorded with their code and what is known of the file -------------------------------


def _eight_k(path: Path) -> None:
    write_frames([np.zeros((4320, 7680, 3), np.uint8)], path, fps=1.0)


def _truncated(path: Path) -> None:
    whole = path.with_name("whole.avi")
    write_footage(whole, WALKS[:1], 6.0)
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()


def _no_frames(path: Path) -> None:
    cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240)).release()


BAD_FILES = {
    "not_a_video": ("notes.mp4", lambda p: p.write_text("minutes of the meeting"), UnreadableVideo,
                    "not a video file", {"container": None}),
    "truncated": ("cut.avi", _truncated, UnreadableVideo, "truncated or damaged", {"container": "avi"}),
    "no_frames": ("empty.avi", _no_frames, UnreadableVideo, "no video frame|no video stream", {"container": "avi"}),
    "too_large": ("8k.avi", _eight_k, FrameTooLarge, "7680x4320", {"width": 7680, "height": 4320}),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_a_typed_error_recorded_with_its_hash(audited: AuditedEngine, log: AuditLog, tmp_path: Path,
                                                           case: str) -> None:
    name, make, error, message, facts = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(error, match=message):
        audited.search_video("g", path)
    (entry,) = log.list()
    rec = entry.record
    assert rec.action == "search_video" and rec.outcome == error.code and rec.operator == "alice"
    assert rec.probe_sha256 == (sha(path),) and rec.details["video"]["sha256"] == sha(path)
    assert rec.details["video"]["size_bytes"] == path.stat().st_size
    assert {k: rec.details["video"][k] for k in facts} == facts
    assert rec.gallery is not None and rec.gallery.name == "g" and rec.candidates == ()
    assert rec.details["error"].startswith(error.__name__) and rec.details["retained"] == {"video": False, "crops": 0}
    assert log.verify().ok


def test_a_video_too_long_is_recorded_with_its_declared_duration(audited: AuditedEngine, log: AuditLog,
                                                                 footage: Path) -> None:
    with pytest.raises(VideoTooLong, match=r"lasts 16\.0 s; the limit \(max_duration\) is 10 s"):
        audited.search_video("g", footage, max_duration=10.0)
    rec = log.get(1).record
    assert rec.outcome == "video_too_long" and rec.probe_sha256 == (sha(footage),)
    assert rec.details["video"]["duration_ms_declared"] == "16000.000000"
    assert rec.details["requested"]["max_duration_s"] == "10.000000"


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_at_once_and_recorded_without_reading_it(audited: AuditedEngine, log: AuditLog,
                                                                  tmp_path: Path) -> None:
    fifo = tmp_path / "camera.mp4"
    os.mkfifo(fifo)  # nobody ever writes to it: a read would hang
    with pytest.raises(UnreadableVideo, match=r"is a FIFO \(named pipe\); only regular files"):
        audited.search_video("g", fifo)
    rec = log.get(1).record
    assert rec.outcome == "unreadable_video" and rec.probe_sha256 is None
    assert rec.details["video"] == {"sha256": None, "size_bytes": None, "container": None, "width": None,
                                    "height": None, "duration_ms_declared": None}


def test_bad_options_and_an_unknown_gallery_are_recorded_without_reading_the_video(
    audited: AuditedEngine, log: AuditLog, footage: Path
) -> None:
    with pytest.raises(BadInput, match="fps nan is not a sampling rate"):
        audited.search_video("g", footage, fps=float("nan"))
    with pytest.raises(GalleryNotFound):
        audited.search_video("nope", footage)
    first, second = (e.record for e in log.list())
    assert (first.outcome, first.details["requested"]["fps"], first.probe_sha256) == ("bad_input", "nan", None)
    assert "video" not in first.details  # the engine refused the options before it opened the file
    assert (second.outcome, second.gallery, second.details["gallery_name"]) == ("gallery_not_found", None, "nope")


def test_who_and_why_are_checked_before_the_video_is_read(
    log: AuditLog, engine: Engine, galleries: GalleryStore, db: Database, footage: Path
) -> None:
    pipeline = engine.pipeline
    nobody = AuditedEngine(AuditSession(log, AuditContext(case_ref="CASE-7"), actor_for(db, "bob", "operator")),
                           engine, galleries)
    with pytest.raises(MissingContext):
        nobody.search_video("g", footage)
    wrong = AuditedEngine(AuditSession(log, CTX, actor_for(db, "rita", "reviewer")), engine, galleries)
    with pytest.raises(Forbidden, match="lacks the permission 'search'"):
        wrong.search_video("g", footage)
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), engine, galleries)
    with pytest.raises(BadInput, match="threshold"):
        operator.search_video("g", footage, threshold=3.0)
    refusals = [e.record for e in log.list()]
    assert [(r.action, r.outcome, r.details["attempted"]) for r in refusals] == [
        ("refused", "missing_context", "search_video"), ("refused", "forbidden", "search_video"),
        ("refused", "bad_input", "search_video")]
    assert isinstance(pipeline, VideoFakePipeline) and pipeline.detections == 0  # no frame was looked at


def test_someone_stepping_in_a_second_after_another_left_is_a_track_of_their_own(
    audited: AuditedEngine, tmp_path: Path
) -> None:
    """At 2 fps one missed sample lies between them: geometry alone would join them into one track."""
    path = tmp_path / "handover.mp4"
    write_footage(path, [Walk(ALPHA, 1.0, 5.0, (0, 40), (220, 60)), Walk(STRANGER, 6.0, 9.0, (220, 140), (160, 140))],
                  10.0)
    tracks = audited.search_video("g", path, fps=2.0).result.tracks
    assert [(t.start_ms, t.end_ms, [c.subject_id for c in t.candidates]) for t in tracks] == [
        (1000, 5000, [ALPHA]), (6000, 9000, [])]
