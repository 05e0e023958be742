"""Dataset loading and validation on tiny synthetic files, and on the shared datasets when present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.image
from audit.evaluation.config import Band
from audit.evaluation.datasets import first_subjects, load_lfw, load_manifest, parse_lfw_pairs, with_bands
from core.errors import BadInput, ManifestError
from core.manifest import SourceImage

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
        ("img,person\nx.png,a\n", "person", None, "missing column.*image"),
        ("image,who\nx.png,a\n", "person", None, "missing column.*person"),
        ("image,person\nx.png,a\n", "person", ["sex"], "lacks label column.*'sex'"),
        ("image,person\n../x.png,a\n", "person", None, "no '..'"),
        ("image,person\nx.png,\n", "person", None, "empty 'image' or 'person' on line.*2"),
        ("image,person\n", "person", None, "no rows"),
    ],
)
def test_bad_manifest_raises_manifest_error(tmp_path: Path, content, subject, labels, match):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path / "m.csv", subject, labels)


def test_missing_manifest(tmp_path: Path):
    with pytest.raises(ManifestError, match="no such manifest"):
        load_manifest(tmp_path / "nope.csv", "person")


def test_manifest_rules_are_the_enrolment_rules(tmp_path: Path):
    """One manifest reader: a link out of the folder is refused, a bad subject id too, an absolute path is read."""
    outside = tmp_path / "outside"
    png(outside / "x.png", 9)
    inside = tmp_path / "set"
    inside.mkdir()
    (inside / "link.png").symlink_to(outside / "x.png")
    (inside / "m.csv").write_text("image,person\nlink.png,a\n")
    with pytest.raises(ManifestError, match="leaves the manifest's folder"):
        load_manifest(inside / "m.csv", "person")
    (inside / "m.csv").write_text("image,person\nx.png,\"a\u202eb\"\n")
    with pytest.raises(BadInput, match="bidirectional"):
        load_manifest(inside / "m.csv", "person")
    png(inside / "own.png", 3)
    (inside / "m.csv").write_text(f"image,person\n{outside / 'x.png'},a\nown.png,b\n")
    ds = load_manifest(inside / "m.csv", "person")
    assert [str(p) for p in ds.paths()] == [str(outside / "x.png"), str(inside / "own.png")]


def test_devices_and_pipes_are_unreadable_not_read(tmp_path: Path):
    png(tmp_path / "a.png", 1)
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "m.csv").write_text("image,person\na.png,a\npipe.png,b\nfolder.png,c\n/dev/zero,d\n")
    ds = load_manifest(tmp_path / "m.csv", "person")  # returns at once: nothing waits on the pipe or the device
    assert ds.validation.unreadable_files == ("pipe.png", "folder.png", "/dev/zero")
    assert ds.table["image"].tolist() == ["a.png"]


def test_each_image_is_read_once(manifest: Path, monkeypatch: pytest.MonkeyPatch):
    opened: list[str] = []
    real = core.image.open_regular

    def counting(path):
        opened.append(str(path))
        return real(path)

    monkeypatch.setattr("audit.evaluation.datasets.open_regular", counting)
    ds = load_manifest(manifest, "person", ["sex", "race"])
    assert sorted(opened) == sorted(str(manifest.parent / "img" / n) for n in
                                    ("a1.png", "a2.png", "b1.png", "b2.png", "c1.png", "bad.png", "missing.png"))
    # the hash the loader keeps is the bytes' own
    for rel, digest in zip(ds.table["image"], ds.table["sha256"], strict=True):
        assert digest == hashlib.sha256((manifest.parent / rel).read_bytes()).hexdigest()


def test_first_subjects_subset_has_its_own_provenance(manifest: Path, tmp_path: Path):
    full = load_manifest(manifest, "person", ["sex", "race"])
    part = load_manifest(manifest, "person", ["sex", "race"], subject_limit=2)
    assert sorted(set(part.subjects)) == ["a", "b"]
    assert part.selection == "first 2 subjects" and full.selection == ""
    assert part.fingerprint != full.fingerprint
    # the subset's fingerprint is the one a manifest of just those rows has
    lines = manifest.read_text().splitlines()
    (tmp_path / "img" / "ab.csv").parent.mkdir(exist_ok=True)
    only = tmp_path / "ab.csv"
    only.write_text("\n".join([lines[0], *[ln for ln in lines[1:] if ln.split(",")[1] in ("a", "b")]]) + "\n")
    assert load_manifest(only, "person", ["sex", "race"]).fingerprint == part.fingerprint
    assert part.validation.n_rows == 4 and part.validation.unreadable_files == ()
    with pytest.raises(BadInput, match="at least 1"):
        load_manifest(manifest, "person", subject_limit=0)


def test_first_subjects_helper():
    images = [SourceImage(f"{s}{k}.png", s) for s in ("c", "a", "b") for k in range(2)]
    assert [i.path for i in first_subjects(images, 2)] == ["a0.png", "a1.png", "b0.png", "b1.png"]
    assert first_subjects(images, None) == images
    assert first_subjects(["x/1", "y/1", "x/2"], 1, lambda p: p.split("/")[0]) == ["x/1", "x/2"]


def test_bands_need_a_label_column(manifest: Path):
    ds = load_manifest(manifest, "person", ["sex", "race"])
    with pytest.raises(ManifestError, match="not a label column"):
        with_bands(ds, [Band("person", (1.0,))])
    with pytest.raises(BadInput, match="increase"):
        Band("age", (40.0, 30.0))


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


def test_lfw_first_subjects_keeps_their_pairs(tmp_path: Path):
    ds = load_lfw(lfw_folder(tmp_path), subject_limit=2)
    assert sorted(set(ds.subjects)) == ["Ann_A", "Bob_B"]
    assert [(p.image_a, p.image_b) for p in ds.pairs] == [
        ("images/Ann_A/Ann_A_0001.jpg", "images/Ann_A/Ann_A_0002.jpg"),
        ("images/Ann_A/Ann_A_0001.jpg", "images/Bob_B/Bob_B_0001.jpg"),
        ("images/Bob_B/Bob_B_0001.jpg", "images/Bob_B/Bob_B_0002.jpg"),
    ]


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
