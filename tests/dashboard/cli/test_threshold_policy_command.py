"""The threshold policy from the operator's and the admin's side on the command line.

``search``/``search-video --threshold T`` looser than the policy: the warning on stderr, refused
(exit 2, recorded with that warning) without ``--threshold-reason``, run and flagged with one;
past the hard limit refused whatever the reason. ``policy threshold`` (admins only) moves the
limits; ``policy show`` prints them. The real handlers run in this process on a database file;
the face models are the fake of :mod:`tests.video_fakes` (coloured squares are faces).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from audit import Runtime
from tests.auth import token_for
from tests.dashboard.cli.test_video_command import Cli
from tests.video_fakes import PALETTE, VideoFakePipeline, Walk, enroll_fake, write_footage

pytestmark = [pytest.mark.model]

ALPHA, BRAVO = "subject-alpha", "subject-bravo"
REASON = "low-light still from the depot camera; approved by the duty sergeant"


class PolicyCli(Cli):
    """:class:`Cli` with an admin's token too, and the gallery's default threshold."""

    def __init__(self, db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(db, monkeypatch, capsys)
        self.tokens["admin"] = token_for(db, "root", "admin")
        rt = Runtime(str(db))
        try:
            self.default = rt.engine_for_gallery("g").config.threshold
        finally:
            rt.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> PolicyCli:
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_TOKEN", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_PURPOSE", "identify a suspect")
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = tmp_path / "policy.duckdb"
    rt = Runtime(str(db))
    enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, BRAVO])
    rt.close()
    return PolicyCli(db, monkeypatch, capsys)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still with alpha's face (the fake pipeline's coloured square) on a dark background."""
    rgb = np.full((200, 200, 3), 35, np.uint8)
    yy, xx = np.mgrid[0:80, 0:80]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 25, -25)[:, :, None]
    rgb[60:140, 60:140] = np.clip(np.asarray(PALETTE[ALPHA], np.int16) + checker, 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("still") / "still.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "cam.mp4"
    write_footage(path, [Walk(ALPHA, 1.0, 3.0, (0, 40), (100, 60))], 4.0)
    return path


def warning_of(err: str) -> str:
    (line,) = [x for x in err.splitlines() if x.startswith("facetrail: warning: ")]
    return line.removeprefix("facetrail: warning: ")


def test_a_looser_search_without_a_reason_is_refused_with_the_warning_recorded(cli: PolicyCli, photo: Path) -> None:
    looser = f"{cli.default * 1.1:.4f}"
    code, out, err = cli("search", str(photo), "--gallery", "g", "--threshold", looser, "--json")
    assert code == 2
    assert out == [{"error": out[0]["error"], "code": "threshold_reason_required"}]
    assert "needs a written reason" in out[0]["error"] and "--threshold-reason" in out[0]["error"]
    shown = warning_of(err)
    assert f"Threshold {float(looser):.3f} is looser" in shown
    (refusal,) = cli.records()
    assert (refusal.action, refusal.outcome, refusal.operator) == ("refused", "threshold_reason_required", "op1")
    assert refusal.details["threshold_policy"]["warning"] == shown  # what the operator saw, word for word


def test_a_looser_search_with_a_reason_runs_and_is_flagged(cli: PolicyCli, photo: Path) -> None:
    looser = f"{cli.default * 1.1:.4f}"
    code, (payload,), err = cli("search", str(photo), "--gallery", "g", "--threshold", looser,
                                "--threshold-reason", REASON, "--json")
    assert code == 0, err
    assert [c["subject_id"] for c in payload["candidates"]] == [ALPHA]
    (record,) = cli.records()
    assert record.seq == payload["audit_seq"] and record.action == "search"
    flag = record.details["threshold_policy"]
    assert (flag["status"], flag["reason"], flag["warning"]) == ("looser", REASON, warning_of(err))


def test_at_the_default_there_is_no_warning_and_the_record_says_within(cli: PolicyCli, photo: Path) -> None:
    code, (payload,), err = cli("search", str(photo), "--gallery", "g", "--json")
    assert code == 0 and "warning" not in err
    (record,) = cli.records()
    assert record.details["threshold_policy"]["status"] == "within"


def test_past_the_hard_limit_is_refused_whatever_the_reason(cli: PolicyCli, photo: Path) -> None:
    code, (out,), err = cli("search", str(photo), "--gallery", "g", "--threshold", f"{cli.default * 1.3:.4f}",
                            "--threshold-reason", REASON, "--json")
    assert code == 2 and out["code"] == "threshold_beyond_limit"
    assert "refused whatever the reason" in warning_of(err)
    (refusal,) = cli.records()
    assert (refusal.action, refusal.outcome) == ("refused", "threshold_beyond_limit")


def test_an_admin_moves_the_policy_and_an_operator_cannot(cli: PolicyCli, photo: Path) -> None:
    loosest, hard = cli.default * 1.2, cli.default * 1.6
    code, _, err = cli("policy", "threshold", "--loosest", f"{loosest * 2:.4f}", "--reason",
                       "an operator loosening their own searches")
    assert code == 2 and "permission" in err
    code, (set_,), err = cli("policy", "threshold", "--loosest", f"{loosest:.6f}", "--hard-limit", f"{hard:.6f}",
                             "--reason", "accepted by the oversight board, minutes 2026-11", "--json", as_="admin")
    assert code == 0, err
    code, (shown,), _ = cli("policy", "show", "--json")
    assert shown["seq"] == set_["audit_seq"] and shown["set_by"] == "root"
    assert abs(shown["loosest"] - loosest) < 1e-6 and abs(shown["hard_limit"] - hard) < 1e-6
    code, (payload,), err = cli("search", str(photo), "--gallery", "g", "--threshold", f"{cli.default * 1.1:.4f}",
                                "--json")
    assert code == 0 and "warning" not in err  # within the new policy
    code, _, _ = cli("search", str(photo), "--gallery", "g", "--threshold", f"{cli.default * 1.4:.4f}", "--json")
    assert code == 2  # looser than the new loosest, no reason
    records = cli.records()
    assert [(r.action, r.outcome) for r in records] == [
        ("refused", "forbidden"), ("threshold_policy", "ok"), ("search", "ok"), ("refused", "threshold_reason_required")]
    assert records[2].details["threshold_policy"]["policy_seq"] == set_["audit_seq"]


def test_search_video_follows_the_same_policy(cli: PolicyCli, clip: Path) -> None:
    looser = f"{cli.default * 1.1:.4f}"
    code, (out,), err = cli("search-video", str(clip), "--gallery", "g", "--threshold", looser, "--json")
    assert code == 2 and out["code"] == "threshold_reason_required"
    assert "video" not in err.replace("search_video", "")  # refused before the video was read: no progress bar
    code, (payload,), err = cli("search-video", str(clip), "--gallery", "g", "--threshold", looser,
                                "--threshold-reason", REASON, "--json")
    assert code == 0, err
    refusal, job = cli.records()
    assert (refusal.action, refusal.outcome, refusal.details["attempted"]) == (
        "refused", "threshold_reason_required", "search_video")
    assert job.seq == payload["audit_seq"] and job.details["threshold_policy"]["status"] == "looser"
    assert job.details["threshold_policy"]["reason"] == REASON
