"""The demo scene's review screen on real faces: the gallery keeps its reference photos (sealed), so a reviewer
opening a demo match sees the probe and the candidate's photo (needs the shared data and the Dlib model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audit import Runtime
from dashboard.demo import GALLERY
from tests.dashboard.conftest import APP, DATA, as_user, copy_db

pytestmark = [pytest.mark.data, pytest.mark.model, pytest.mark.slow]


def test_demo_gallery_keeps_each_reference_photo_as_enrolled(demo_db: str, tmp_path: Path) -> None:
    rt = Runtime(copy_db(Path(demo_db), tmp_path))
    try:
        faces = rt.galleries.faces(GALLERY)
        assert faces
        for face in faces[:5]:
            enrolled = (DATA / "lfw_small" / face["image_name"]).read_bytes()
            assert rt.galleries.photo(GALLERY, face["face_id"]) == enrolled
    finally:
        rt.close()


def test_a_reviewer_sees_both_photos_of_a_demo_match(demo_db: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator searches the demo gallery with another photo of an enrolled person; a reviewer opens it."""
    copy = copy_db(Path(demo_db), tmp_path)
    monkeypatch.setenv("FACETRAIL_DB", copy)
    rt = Runtime(copy)
    try:
        enrolled = {f["image_name"] for f in rt.galleries.faces(GALLERY)}
        subjects = {f["subject_id"] for f in rt.galleries.faces(GALLERY)}
    finally:
        rt.close()
    others = [p for s in sorted(subjects) for p in sorted((DATA / "lfw_small" / "images" / s).glob("*.jpg"))
              if f"images/{s}/{p.name}" not in enrolled]
    probe = (others or [DATA / "lfw_small" / sorted(enrolled)[0]])[0].read_bytes()
    search = AppTest.from_file(APP, default_timeout=180)
    search.session_state["auth_user"] = as_user("operator3", "operator")
    search.run()
    search.switch_page("app_pages/search.py").run()
    search.text_input(key="search_purpose").input("identify a person seen on CCTV")
    search.text_input(key="search_case").input("CR-2024-9998")
    search.file_uploader(key="search_upload").set_value(("probe.jpg", probe, "image/jpeg"))
    search.button[0].click().run()
    assert not search.exception, search.exception
    seq = int(next(s.value for s in search.subheader if s.value.startswith("Result")).rsplit("#", 1)[1])
    rt = Runtime(copy)
    try:
        record = rt.log.get(seq).record
    finally:
        rt.close()
    assert record.candidates, "the search of an enrolled person's photo returns candidates"
    at = AppTest.from_file(APP.replace("streamlit_app.py", "app_pages/match_log.py"), default_timeout=120)
    at.session_state["auth_user"] = as_user("reviewer2", "reviewer")
    at.run()
    at.selectbox(key="matchlog_open").set_value(seq).run()
    assert not at.exception, at.exception
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert captions == ["Probe: kept for this review", "the gallery's reference photo"]
