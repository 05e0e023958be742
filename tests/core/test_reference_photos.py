"""Reference photos: kept with each enrolled face, sealed under the subject's key, only as enrolled."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import Database, GalleryStore, SourceImage
from core.enrollment import embed_images, enroll_embedded
from core.keystore import KeyStoreError
from tests.fakes import face_png


@pytest.fixture
def store(tmp_path: Path, fake_engine) -> GalleryStore:
    galleries = GalleryStore(Database(tmp_path / "ft.duckdb"))
    galleries.create("g", fake_engine.config)
    return galleries


def write(folder: Path, subject: str, variant: int) -> Path:
    path = folder / f"{subject}_{variant}.png"
    path.write_bytes(face_png(subject, variant))
    return path


def test_enrolment_keeps_each_photo_sealed_and_gives_back_the_enrolled_bytes(tmp_path: Path, store, fake_engine):
    paths = [write(tmp_path, s, v) for s in ("ann", "bob") for v in (0, 1)]
    embedded = embed_images(fake_engine, store, "g", [SourceImage(str(p), p.stem.split("_")[0]) for p in paths],
                            workers=1)
    enroll_embedded(store, "g", embedded)
    faces = store.faces("g")
    by_name = {f["image_name"]: f["face_id"] for f in faces}
    for path in paths:
        assert store.photo("g", by_name[path.name]) == path.read_bytes()
    with store.db.connect() as con:
        sealed = [bytes(r[0]) for r in con.execute("SELECT photo FROM gallery_faces").fetchall()]
    assert len(sealed) == 4 and not any(p.read_bytes() in b"".join(sealed) for p in paths)


def test_a_file_swapped_after_embedding_is_not_enrolled_with_someone_elses_photo(tmp_path: Path, store, fake_engine,
                                                                                  monkeypatch):
    good, swapped = write(tmp_path, "ann", 0), write(tmp_path, "bob", 0)
    real = fake_engine.embed_batch

    def embed_then_swap(*args, **kwargs):
        result = real(*args, **kwargs)
        swapped.write_bytes(face_png("mallory", 3))  # an attacker replaces the file between the two reads
        return result

    monkeypatch.setattr(fake_engine, "embed_batch", embed_then_swap)
    embedded = embed_images(fake_engine, store, "g", [SourceImage(str(good), "ann"), SourceImage(str(swapped), "bob")],
                            workers=1)
    assert [i.subject_id for i in embedded.items] == ["ann"]
    assert embedded.failures.by_code == (("image_changed", 1),)
    assert "changed while it was enrolled" in embedded.failures.first[0].message


def test_photos_can_be_left_out_and_an_unknown_face_has_none(tmp_path: Path, store, fake_engine) -> None:
    path = write(tmp_path, "ann", 0)
    enroll_embedded(store, "g", embed_images(fake_engine, store, "g", [SourceImage(str(path), "ann")], workers=1,
                                             keep_photos=False))
    (face,) = store.faces("g")
    assert store.photo("g", face["face_id"]) is None
    assert store.photo("g", "0" * 20) is None


def test_a_photo_moved_to_another_face_does_not_open(tmp_path: Path, store, fake_engine) -> None:
    paths = [write(tmp_path, "ann", 0), write(tmp_path, "ann", 1)]
    enroll_embedded(store, "g", embed_images(fake_engine, store, "g", [SourceImage(str(p), "ann") for p in paths],
                                             workers=1))
    a, b = (f["face_id"] for f in store.faces("g"))
    with store.db.connect(transaction=True) as con:
        (photo,) = con.execute("SELECT photo FROM gallery_faces WHERE face_id = ?", [a]).fetchone()
        con.execute("UPDATE gallery_faces SET photo = ? WHERE face_id = ?", [photo, b])
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        store.photo("g", b)
