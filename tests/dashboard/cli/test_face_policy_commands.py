"""``--face-policy`` on verify, search and gallery enroll, and the records naming the detector of each face.

From the operator's side: an image showing two people, the larger off to one side and the
other in the middle, is searched under each policy, and what comes back (and what the
signed log says was done) must follow the policy asked for. A portrait turned until
dlib's HOG detector misses it is found by the cascade's CNN detector, and the record says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from core import Engine, default_config
from tests.dashboard.cli.test_engine_commands import lines, run

pytestmark = [pytest.mark.model, pytest.mark.data, pytest.mark.slow]


def _two_people(big: Path, middle: Path, out: Path) -> Path:
    """``big`` scaled 1.3x at the left edge, ``middle`` at its own size in the centre of a 1200x520 canvas."""
    canvas = PILImage.new("RGB", (1200, 520), (255, 255, 255))
    with PILImage.open(big) as a, PILImage.open(middle) as b:
        a = a.convert("RGB")
        b = b.convert("RGB")
        a = a.resize((round(a.width * 1.3), round(a.height * 1.3)))
        canvas.paste(a, (0, (520 - a.height) // 2))
        canvas.paste(b, ((1200 - b.width) // 2, (520 - b.height) // 2))
    canvas.save(out, quality=95)
    return out


def _records(db: Path, action: str) -> list[dict]:
    proc = run(["audit", "list", "--action", action, "--json"], db)
    assert proc.returncode == 0, proc.stderr
    return [r["record"] for r in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, congress_pairs):
    """Gallery ``g``: the 2019 photos of eight members; the enrolment's record and the database."""
    root = tmp_path_factory.mktemp("policy")
    folder = root / "people"
    for pid, old, _ in congress_pairs[:8]:
        (folder / pid).mkdir(parents=True)
        shutil.copy(old, folder / pid / "2019.jpg")
    db = root / "cli.duckdb"
    assert run(["gallery", "create", "g", "--json"], db, "admin").returncode == 0
    proc = run(["gallery", "enroll", "g", "--folder", str(folder), "--face-policy", "refuse", "--json"], db, "admin")
    assert proc.returncode == 0, proc.stderr
    return root, db, json.loads(proc.stdout)


def test_the_enrolment_record_names_the_detector_of_every_face_and_the_policy(enrolled) -> None:
    _, db, report = enrolled
    record = _records(db, "enroll")[-1]
    details = record["details"]
    assert report["enrolled"] == 8 and len(details["new_face_ids"]) == 8
    assert set(details["face_detectors"]) == set(details["new_face_ids"])  # one entry per enrolled face, by its id
    assert set(details["face_detectors"].values()) == {"dlib"}  # upright portraits: HOG found every one
    assert details["face_policy"] == "refuse"


def test_search_follows_the_policy_asked_for_and_the_record_says_which(enrolled, congress_pairs) -> None:
    root, db, _ = enrolled
    (big, _, big_new), (middle, _, middle_new) = congress_pairs[1], congress_pairs[5]
    photo = _two_people(big_new, middle_new, root / "two.jpg")
    out = {policy: lines(run(["search", str(photo), "--gallery", "g", "--top-k", "1", "--face-policy", policy, "--json"], db))[0]
           for policy in ("largest", "central", "refuse")}
    assert out["largest"]["faces_detected"] == 2 and out["largest"]["candidates"][0]["subject_id"] == big
    assert out["central"]["faces_detected"] == 2 and out["central"]["candidates"][0]["subject_id"] == middle
    assert out["refuse"]["code"] == "multiple_faces"
    records = _records(db, "search")[-3:]
    assert [(r["outcome"], r["details"]["face_policy"]) for r in records] == [
        ("ok", "largest"), ("ok", "central"), ("multiple_faces", "refuse")]
    assert [r["details"].get("detector") for r in records] == ["dlib", "dlib", None]  # no face was chosen: none named


def test_refuse_exits_2_and_an_unknown_policy_is_named(enrolled, congress_pairs) -> None:
    root, db, _ = enrolled
    photo = _two_people(congress_pairs[1][2], congress_pairs[5][2], root / "two-verify.jpg")
    refused = run(["verify", str(photo), str(congress_pairs[1][1]), "--face-policy", "refuse", "--json"], db)
    assert refused.returncode == 2 and lines(refused)[0]["code"] == "multiple_faces"
    assert _records(db, "verify")[-1]["details"]["face_policy"] == "refuse"
    unknown = run(["verify", str(photo), str(congress_pairs[1][1]), "--face-policy", "nearest"], db)
    assert unknown.returncode == 2
    assert "--face-policy: invalid choice: 'nearest'" in unknown.stderr and "'central'" in unknown.stderr


@pytest.fixture(scope="module")
def turned(enrolled, congress_pairs) -> tuple[Path, Path]:
    """A 2023 portrait turned until dlib's HOG detector finds no face in it (searched in a fixed order), and its 2019 photo."""
    hog_only = Engine(default_config("Dlib", "dlib", "dlib_5pt", fallback_detectors=()))
    root = enrolled[0]
    for _, old, new in congress_pairs[:40]:
        with PILImage.open(new) as image:
            upright = image.convert("RGB")
        for angle in (30, 35, 40):  # HOG covers roughly +-30 degrees of roll; dlib's CNN detector more
            pixels = upright.rotate(angle, resample=PILImage.Resampling.BILINEAR, fillcolor=(255, 255, 255))
            if not hog_only.detect(np.asarray(pixels)):
                pixels.save(root / "turned.png")
                return root / "turned.png", old
    pytest.fail("HOG found a face in every one of 40 portraits turned by 30 to 40 degrees")


def test_a_face_only_the_fallback_finds_is_named_in_the_verify_record(enrolled, turned) -> None:
    _, db, _ = enrolled
    photo, old = turned
    proc = run(["verify", str(photo), str(old), "--json"], db)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc)[0]["detectors"] == ["dlib_cnn", "dlib"]
    details = _records(db, "verify")[-1]["details"]
    assert details["detectors"] == ["dlib_cnn", "dlib"] and details["face_policy"] == "largest"
