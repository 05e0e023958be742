"""Dataset loading and validation on tiny synthetic files, and on the shared datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.evaluation.datasets import load_lfw, load_manifest, parse_lfw_pairs
from core.errors import ManifestError

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    return Path(os.environ.get("FACETRAIL_TEST_DATA", REPO.parent / "shared" / "datasets"))


def png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    png(tmp_path / "img" / "a1.png", 1)
    png(tmp_path / "img" / "a2.png", 2)
    png(tmp_path / "img" / "b1.png", 3)
    png(tmp_path / "img" / "b2.png", 1)  # same bytes as a1
    png(tmp_path / "img" / "c1.png", 4)
    (tmp_path / "img" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "m.csv").write_text(
        "image,person,sex,race\n"
        "img/a1.png,a,F,Black; Hispanic\n"
        "img/a2.png,a,F,Black; Hispanic\n"
        "img/b1.png,b,,white\n"
        "img/b2.png,b,M,white\n"
        "img/c1.png,c,M,\n"
        "img/bad.png,c,M,\n"
        "img/missing.png,d,F,asian\n"
    )
    return tmp_path / "m.csv"


def test_manifest_validation_report(manifest: Path):
    ds = load_manifest(manifest, "person", ["sex", "race"])
    v = ds.validation
    assert v.n_rows == 7 and v.n_images == 5 and v.n_subjects == 3
    assert v.missing_files == ("img/missing.png",)
    assert v.unreadable_files == ("img/bad.png",)
    assert v.duplicate_images == (("img/a1.png", "img/b2.png"),)
    assert v.single_image_subjects == ("c",)
    assert v.unknown_labels == {"sex": 1, "race": 2}
    assert v.multi_valued_labels == {"race": ("Black; Hispanic",)}
    assert not v.ok
    assert "unknown" in set(ds.table["sex"])  # kept, not dropped
    assert all(p.is_file() for p in ds.paths())
    d = v.to_dict()
    assert d["counts"]["missing_files"] == 1


def test_fingerprint_ignores_order_but_sees_labels(manifest: Path, tmp_path: Path):
    a = load_manifest(manifest, "person", ["sex", "race"])
    lines = manifest.read_text().splitlines()
    (tmp_path / "r.csv").write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    b = load_manifest(tmp_path / "r.csv", "person", ["sex", "race"])
    assert a.fingerprint == b.fingerprint
    (tmp_path / "c.csv").write_text(manifest.read_text().replace("white", "White"))
    c = load_manifest(tmp_path / "c.csv", "person", ["sex", "race"])
    assert c.fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("content", "subject", "labels", "match"),
    [
        ("img,person\nx.png,a\n", "person", None, "lacks column.*'image'"),
        ("image,who\nx.png,a\n", "person", None, "lacks column.*'person'"),
        ("image,person\nx.png,a\n", "person", ["sex"], "lacks label column.*'sex'"),
        ("image,person\n/etc/passwd,a\n", "person", None, "relative"),
        ("image,person\n../x.png,a\n", "person", None, "relative"),
        ("image,person\nx.png,\n", "person", None, "empty subject"),
    ],
)
def test_bad_manifest_raises_manifest_error(tmp_path: Path, content, subject, labels, match):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path / "m.csv", subject, labels)


def test_missing_manifest(tmp_path: Path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.csv", "person")


def lfw_folder(tmp_path: Path) -> Path:
    for name, k in (("Ann_A", 2), ("Bob_B", 2), ("Cy_C", 1)):
        for i in range(1, k + 1):
            png(tmp_path / "images" / name / f"{name}_{i:04d}.png", hash((name, i)) % 1000)
            (tmp_path / "images" / name / f"{name}_{i:04d}.png").rename(
                tmp_path / "images" / name / f"{name}_{i:04d}.jpg"
            )
    (tmp_path / "pairs.txt").write_text("2 1\nAnn_A 1 2\nAnn_A 1 Bob_B 1\nBob_B 1 2\nBob_B 2 Cy_C 1\n")
    (tmp_path / "labels.csv").write_text(
        "image,identity,sex\nimages/Ann_A/Ann_A_0001.jpg,Ann_A,F\nimages/Ann_A/Ann_A_0002.jpg,Ann_A,F\n"
        "images/Bob_B/Bob_B_0001.jpg,Bob_B,M\n"
    )
    return tmp_path


def test_lfw_layout(tmp_path: Path):
    ds = load_lfw(lfw_folder(tmp_path))
    assert len(ds.pairs) == 4
    assert [p.same for p in ds.pairs] == [True, False, True, False]
    assert [p.fold for p in ds.pairs] == [0, 0, 1, 1]
    assert ds.pairs[1].image_b == "images/Bob_B/Bob_B_0001.jpg"
    assert len(ds) == 5
    assert ds.label_columns == ("sex",)
    assert sorted(ds.table["sex"]) == ["F", "F", "M", "unknown", "unknown"]
    assert ds.validation.single_image_subjects == ("Cy_C",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("x y\n", "first line"),
        ("1 1\nA 1 2\n", "expected 3 lines"),
        ("1 1\nA 1\nA 1 B 2\n", "matched"),
        ("1 1\nA 1 2\nA 1 B\n", "mismatched"),
        ("1 1\nA x 2\nA 1 B 2\n", "integer"),
    ],
)
def test_bad_pairs_file(text, match):
    with pytest.raises(ManifestError, match=match):
        parse_lfw_pairs(text)


def test_not_an_lfw_folder(tmp_path: Path):
    with pytest.raises(ManifestError, match="images"):
        load_lfw(tmp_path)


@pytest.mark.data
@pytest.mark.parametrize(
    ("folder", "subject", "labels", "images", "subjects"),
    [
        ("congress_small", "bioguide_id", ["sex", "approx_age_at_photo", "race_house_historian"], 580, 290),
        ("lfw_small", "identity", ["sex", "race_usc_sail"], 1736, 463),
    ],
)
def test_shared_datasets_load(folder, subject, labels, images, subjects):
    csv = data_root() / folder / "labels.csv"
    if not csv.is_file():
        pytest.skip(f"shared dataset not found at {csv} (set FACETRAIL_TEST_DATA)")
    ds = load_manifest(csv, subject, labels)
    assert ds.validation.n_images == images
    assert ds.validation.n_subjects == subjects
    assert ds.validation.missing_files == ()
    col = labels[-1]
    assert ds.validation.multi_valued_labels[col]


def test_lfw_archive_layout_without_images_folder(tmp_path: Path):
    for name in ("Ann_A", "Bob_B"):
        for i in (1, 2):
            p = tmp_path / name / f"{name}_{i:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4, 3), i * 40, dtype=np.uint8)).save(p, format="JPEG")
    (tmp_path / "pairs.txt").write_text("1\t1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t2\n")
    ds = load_lfw(tmp_path)
    assert ds.pairs[0].image_a == "Ann_A/Ann_A_0001.jpg"
    assert len(ds) == 3 and all(p.is_file() for p in ds.paths())
