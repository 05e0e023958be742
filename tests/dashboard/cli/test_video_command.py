"""``facetrail search-video``: JSON keys, progress on stderr, exit codes, bad files recorded, reviews of its hits.

Most tests run the real handlers in this process on a real database file, with the face
models replaced by the fake of :mod:`tests.video_fakes` (coloured squares are faces);
they need the installed weights only for the configuration's checksums. The last test
runs the real command, as a subprocess with the real models, on footage rendered from
congress_small portraits (never committed): the gallery holds the 2019 photos, the
footage shows the 2023 ones.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from audit import Runtime
from audit.trail.log import AuditLog
from core.storage.connection import Database
from dashboard.cli import main
from tests.auth import session_token_for, token_for
from tests.core.footage import Actor, Scene, load_portrait, write_frames, write_video
from tests.video_fakes import VideoFakePipeline, Walk, enroll_fake, write_footage

pytestmark = [pytest.mark.model]

ALPHA, BRAVO, STRANGER = "subject-alpha", "subject-bravo", "stranger-echo"
#: 16 s: alpha, a stranger, bravo, alpha again; each 1.5 s or more after the last one left (a new track each).
WALKS = [
    Walk(ALPHA, 1.0, 4.0, (0, 40), (200, 60)),
    Walk(STRANGER, 5.5, 7.0, (120, 120), (130, 120)),
    Walk(BRAVO, 9.0, 11.0, (100, 80), (140, 80)),
    Walk(ALPHA, 13.0, 15.0, (220, 40), (10, 60)),
]
KEYS = ["video", "video_sha256", "duration_ms", "frames_sampled", "faces_detected", "tracks", "audit_seq"]
TRACK_KEYS = ["track_id", "start_ms", "end_ms", "faces", "best_ms", "candidates"]
CANDIDATE_KEYS = ["subject_id", "face_id", "distance", "similarity", "rank"]


class Cli:
    """``facetrail --db DB ...`` run in this process: returns (exit code, stdout JSON lines, stderr)."""

    def __init__(self, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.db, self._mp, self._capsys = db, monkeypatch, capsys
        self.tokens = {"operator": token_for(db, "op1", "operator"), "reviewer": token_for(db, "rev0", "reviewer")}

    def text(self, *argv: str, token: str | None = None, as_: str | None = "operator") -> tuple[int, str, str]:
        """Run the command; return (exit code, stdout, stderr)."""
        token = token if token is not None else (self.tokens[as_] if as_ else None)
        if token is None:
            self._mp.delenv("FACETRAIL_TOKEN", raising=False)
        else:
            self._mp.setenv("FACETRAIL_TOKEN", token)
        self._mp.setattr("sys.stdin", io.StringIO(""))
        code = main(["--db", str(self.db), *argv])
        captured = self._capsys.readouterr()
        return code, captured.out, captured.err

    def __call__(self, *argv: str, token: str | None = None, as_: str | None = "operator") -> tuple[int, list[Any], str]:
        """Run the command; return (exit code, the JSON lines of stdout, stderr)."""
        code, out, err = self.text(*argv, token=token, as_=as_)
        return code, [json.loads(line) for line in out.splitlines() if line.strip()], err

    def records(self) -> list[Any]:
        log = AuditLog(Database(str(self.db)))
        try:
            return [e.record for e in log.list()]
        finally:
            log.db.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """A database with gallery ``g`` (alpha and bravo) under the installed default configuration; fake models."""
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_TOKEN", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_PURPOSE", "identify a suspect")
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = tmp_path / "video.duckdb"
    rt = Runtime(str(db))
    enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, BRAVO])
    rt.close()
    return Cli(db, monkeypatch, capsys)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "cam.mp4"
    write_footage(path, WALKS, 16.0)
    return path


def test_json_has_exactly_the_issue_keys_and_the_progress_bar_is_on_stderr(cli: Cli, clip: Path) -> None:
    code, out, err = cli("search-video", str(clip), "--gallery", "g", "--json")
    assert code == 0, err
    (payload,) = out  # one JSON object on stdout, nothing else
    assert list(payload) == KEYS
    assert [list(t) for t in payload["tracks"]] == [TRACK_KEYS] * 4
    assert [list(c) for t in payload["tracks"] for c in t["candidates"]] == [CANDIDATE_KEYS] * 3
    assert payload["video"] == str(clip) and payload["duration_ms"] == 16000 and payload["frames_sampled"] == 32
    assert [(t["start_ms"], t["end_ms"], [c["subject_id"] for c in t["candidates"]]) for t in payload["tracks"]] == [
        (1000, 4000, [ALPHA]), (5500, 7000, []), (9000, 11000, [BRAVO]), (13000, 15000, [ALPHA])]
    assert "video" in err and "32/32" in err  # tqdm on stderr
    (record,) = [r for r in cli.records() if r.action == "search_video"]
    assert record.seq == payload["audit_seq"] and record.operator == "op1" and record.outcome == "ok"
    assert record.probe_sha256 == (payload["video_sha256"],) and record.purpose == "identify a suspect"


def test_text_output_lists_tracks_with_times_and_candidates(cli: Cli, clip: Path) -> None:
    code, out, err = cli.text("search-video", str(clip), "--gallery", "g", "--fps", "1")
    assert code == 0, err
    assert "16 frames sampled" in out and "4 track(s), 3 with candidates (audit record #1)" in out
    assert f"track 1 00:01.0-00:04.0 (4 faces): #1 {ALPHA} (similarity 1.000)" in out
    assert "track 2 00:06.0-00:07.0 (2 faces): no candidate within the threshold" in out


def test_the_job_verifies_and_its_hits_need_two_reviewers_other_than_the_operator(cli: Cli, clip: Path) -> None:
    code, (payload,), _ = cli("search-video", str(clip), "--gallery", "g", "--json")
    seq = str(payload["audit_seq"])
    alpha = payload["tracks"][0]["candidates"][0]["face_id"]
    code, (report,), _ = cli("audit", "verify", "--json", as_=None)
    assert code == 0 and report["ok"] is True
    first = f"1:{alpha}"
    code, (shown,), _ = cli("audit", "show", seq, "--json", as_=None)
    assert [c["candidate_id"] for c in shown["review"]["candidates"]] == [
        first, f"3:{payload['tracks'][2]['candidates'][0]['face_id']}", f"4:{alpha}"]
    review = ("review", seq, "--decision", "confirm", "--json")
    code, (refused,), _ = cli(*review, "--face-id", alpha, token=session_token_for(cli.db, "rev1", "reviewer"))
    assert code == 2 and refused["code"] == "review_refused" and f"name one: {first}, 4:{alpha}" in refused["error"]
    code, (refused,), _ = cli(*review, "--face-id", first)  # the operator's own job
    assert code == 2 and refused["code"] == "forbidden"
    code, (refused,), _ = cli(*review, "--face-id", first, token=session_token_for(cli.db, "op1", "reviewer"))
    assert code == 2 and "two-person" in refused["error"]  # op1 ran it; made a reviewer, still may not
    code, (one,), _ = cli(*review, "--face-id", first, token=session_token_for(cli.db, "rev1", "reviewer"))
    assert code == 0 and [c["status"] for c in one["status"]["candidates"]] == ["pending"] * 3
    code, (two,), _ = cli(*review, "--face-id", first, token=session_token_for(cli.db, "rev2", "reviewer"))
    assert code == 0 and [c["status"] for c in two["status"]["candidates"]] == ["confirmed", "pending", "pending"]
    assert two["review"]["record"]["target_face_id"] == first
    code, (report,), _ = cli("audit", "verify", "--json", as_=None)
    assert code == 0 and report["ok"] is True


def _truncated(path: Path) -> None:
    whole = path.with_name("whole-" + path.name)
    write_footage(whole, WALKS[:1], 6.0)
    path.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])


def _no_frames(path: Path) -> None:
    cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240)).release()


BAD = {
    "not_a_video": ("notes.mp4", lambda p: p.write_text("not a video"), "unreadable_video", "not a video file"),
    "truncated": ("cut.avi", _truncated, "unreadable_video", "truncated or damaged"),
    "no_frames": ("empty.avi", _no_frames, "unreadable_video", "no video frame|no video stream"),
    "too_large": ("8k.avi", lambda p: write_frames([np.zeros((4320, 7680, 3), np.uint8)], p, fps=1.0),
                  "frame_too_large", "7680x4320"),
    "fifo": ("pipe.mp4", lambda p: os.mkfifo(p), "unreadable_video", r"is a FIFO \(named pipe\)"),
    "missing": ("gone.mp4", lambda p: None, "unreadable_video", "no such file"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_exit_2_with_a_clear_message_and_are_recorded(cli: Cli, tmp_path: Path, case: str) -> None:
    name, make, code_name, message = BAD[case]
    path = tmp_path / name
    make(path)
    code, (out,), err = cli("search-video", str(path), "--gallery", "g", "--json")
    assert code == 2 and out["code"] == code_name and re.search(message, out["error"]), out
    assert err.strip().splitlines()[-1].startswith(f"facetrail: error: {path}")
    (record,) = [r for r in cli.records() if r.action == "search_video"]
    assert record.outcome == code_name and record.operator == "op1"
    regular = path.is_file() and not path.is_fifo()
    assert (record.probe_sha256 is not None) == regular


def test_a_video_over_max_duration_exits_2_and_is_recorded(cli: Cli, clip: Path) -> None:
    code, (out,), _ = cli("search-video", str(clip), "--gallery", "g", "--max-duration", "5", "--json")
    assert code == 2 and out["code"] == "video_too_long" and "lasts 16.0 s; the limit (max_duration) is 5 s" in out["error"]
    (record,) = [r for r in cli.records() if r.action == "search_video"]
    assert record.outcome == "video_too_long" and record.details["video"]["duration_ms_declared"] == "16000.000000"


def test_refusals_exit_2_before_the_video_is_read(cli: Cli, clip: Path) -> None:
    code, (out,), _ = cli("search-video", str(clip), "--gallery", "g", "--json", as_=None)
    assert code == 2 and out["code"] == "not_authenticated"
    code, (out,), _ = cli("search-video", str(clip), "--gallery", "g", "--json", as_="reviewer")
    assert code == 2 and out["code"] == "forbidden"
    code, (out,), _ = cli("search-video", str(clip), "--gallery", "g", "--threshold", "3", "--json")
    assert code == 2 and out["code"] == "bad_input"
    code, (out,), _ = cli("search-video", str(clip), "--gallery", "nope", "--json")
    assert code == 2 and out["code"] == "gallery_not_found"
    refused = [(r.outcome, r.details["attempted"]) for r in cli.records() if r.action == "refused"]
    assert refused == [("not_authenticated", "search_video"), ("forbidden", "search_video"),
                       ("bad_input", "search_video")]
    assert not [r for r in cli.records() if r.action == "search_video"]


# -- the real command with the real models -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.timeout(900)
def test_the_real_command_finds_each_member_in_footage_of_their_2023_portraits(tmp_path: Path, congress_pairs) -> None:
    members = congress_pairs[:4]
    folder = tmp_path / "people"
    for pid, old, _ in members:
        (folder / pid).mkdir(parents=True)
        shutil.copy(old, folder / pid / "2019.jpg")
    db = tmp_path / "real.duckdb"
    env = {**os.environ, "FACETRAIL_PURPOSE": "testing", "FACETRAIL_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("FACETRAIL_OPERATOR", None)

    def run(*args: str, role: str) -> subprocess.CompletedProcess[str]:
        token = token_for(db, {"admin": "cli-admin", "operator": "cli-operator"}[role], role)
        return subprocess.run([sys.executable, "-m", "dashboard.cli", "--db", str(db), *args], capture_output=True,
                              text=True, env={**env, "FACETRAIL_TOKEN": token}, check=False, timeout=600)

    assert run("gallery", "create", "g", "--json", role="admin").returncode == 0
    enrolled = run("gallery", "enroll", "g", "--folder", str(folder), "--json", role="admin")
    assert enrolled.returncode == 0, enrolled.stderr
    left, right = (load_portrait(new) for _, _, new in members[:2])
    scene = Scene(640, 360, 10.0, actors=[Actor(left, path=[(1.0, 10, 20, 0.8), (8.0, 60, 30, 0.75)]),
                                          Actor(right, path=[(2.0, 400, 40, 0.7), (9.0, 340, 20, 0.8)])], seed=1)
    video = tmp_path / "two.mov"
    write_video(scene, video)
    done = run("search-video", str(video), "--gallery", "g", "--json", role="operator")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert list(payload) == KEYS and "20/20" in done.stderr
    found = sorted(t["candidates"][0]["subject_id"] for t in payload["tracks"] if t["candidates"])
    assert found == sorted(pid for pid, _, _ in members[:2]) and len(payload["tracks"]) == 2
    shown = run("audit", "show", str(payload["audit_seq"]), "--json", role="operator")
    record = json.loads(shown.stdout)
    assert record["record"]["action"] == "search_video" and record["record"]["model_config"]["model"] == "Dlib"
    assert record["record"]["model_config"]["threshold_source"]["kind"] in ("calibrated", "deepface_builtin")
    assert run("audit", "verify", "--json", role="operator").returncode == 0
    bad = tmp_path / "notes.mov"
    bad.write_text("not a video")
    refused = run("search-video", str(bad), "--gallery", "g", "--json", role="operator")
    assert refused.returncode == 2 and json.loads(refused.stdout)["code"] == "unreadable_video"
