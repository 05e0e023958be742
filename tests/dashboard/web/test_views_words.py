"""What people read in the tables: a verification never shows ``None``, a similarity is a score."""

from __future__ import annotations

from pathlib import Path

from audit.runtime import Runtime
from dashboard.web.views import plain, records_frame, status_frame

SHOWN = ["seq", "action", "outcome", "operator", "gallery", "candidates", "top_subject", "top_similarity"]


def test_a_verification_row_says_what_it_is_instead_of_none(tmp_path: Path) -> None:
    rt = Runtime(str(tmp_path / "v.duckdb"))
    try:
        rt.log.append({"action": "verify", "outcome": "ok", "operator": "operator1", "purpose": "check an ID",
                       "case_ref": "CR-1", "probe_sha256": ["a" * 64, "b" * 64], "faces_found": 2,
                       "details": {"verified": True, "distance": "0.040000", "similarity": "0.960000",
                                   "threshold": "0.070000"}})
        entries = rt.log.list()
        row = records_frame(entries).iloc[0]
        assert row["gallery"] == "(1:1, no gallery)" and row["top_subject"] == "(the pair compared)"
        assert row["top_similarity"] == 0.96  # the pair's score, where a search shows its top candidate's
        assert row[SHOWN].notna().all()
        status = status_frame([rt.log.match_status(1)])
        assert status[["subject_id", "face_id"]].values.tolist() == [["(the pair compared)", "(the pair compared)"]]
    finally:
        rt.db.close()


def test_plain_escapes_every_markdown_character() -> None:
    assert plain("**x** [a](b) <i>") == "\\*\\*x\\*\\* \\[a\\]\\(b\\) \\<i\\>"
