"""The sealed gallery's fast load: every row decrypted and checked, and crypto-shredding still holds.

The load decrypts all rows into one buffer with one AES-GCM set-up per subject key, kept
across loads while the key exists (:meth:`core.keystore.KeyStore.ciphers`). These tests
are written from the attacker's side: rows altered, cut short or re-sealed with another
shape must fail the load with a message; a destroyed key must not live on in that cache,
in this process or after another process erased the subject, even when the erased rows
are put back from a copy of the database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import Database, Embedding, EnrollItem, Face, GalleryStore, ModelConfig, ThresholdSource
from core.cache import pack_sealed
from core.keystore import KeyStore, KeyStoreError, seal

FACE = Face(0, 0, 10, 10, 1.0, "dlib")
CONFIG = ModelConfig(model="Dlib", detector="dlib", alignment="dlib_5pt", threshold=0.3,
                     threshold_source=ThresholdSource(kind="user", description="test"),
                     weights_sha256=(("t.dat", "0" * 64),), versions=(("deepface", "test"),))
SUBJECTS = ["Zoë_Ångström", "a", "Jane_Roe_01", "李_小龍", "x" * 200]


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[GalleryStore, dict[str, tuple[str, bytes]]]:
    """Gallery ``g``: five subjects with one to three faces each, metadata of different lengths."""
    rng = np.random.default_rng(7)
    store = GalleryStore(Database(tmp_path / "g.duckdb"))
    store.create("g", CONFIG)
    items = [EnrollItem(s, Embedding(unit(rng), f"{i}{j}".ljust(64, "0"), FACE, 1, CONFIG), f"{i}_{j}.jpg",
                        {"note": "n" * (i * 37 + j)})
             for i, s in enumerate(SUBJECTS) for j in range(1 + i % 3)]
    store.enroll("g", items)
    by_face = {f["face_id"]: f for f in store.faces("g")}
    assert len(by_face) == len(items)
    vectors = {(it.subject_id, it.image_name): it.embedding.vector.tobytes() for it in items}
    expected = {fid: (f["subject_id"], vectors[(f["subject_id"], f["image_name"])]) for fid, f in by_face.items()}
    return store, expected


def loaded_rows(store: GalleryStore) -> dict[str, tuple[str, bytes]]:
    index = store.load("g").index
    matrix = index.matrix  # type: ignore[attr-defined]
    return {fid: (sid, matrix[i].tobytes())
            for i, (fid, sid) in enumerate(zip(index._face_ids, index._subject_ids, strict=True))}  # type: ignore[attr-defined]


def rows_of(store: GalleryStore, subject: str) -> list[tuple[object, ...]]:
    with store.db.connect() as con:
        return con.execute("SELECT * FROM gallery_faces WHERE subject_ref = ?",
                           [store.keys.ref("g", subject)]).fetchall()


def columns(store: GalleryStore) -> list[str]:
    with store.db.connect() as con:
        return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'gallery_faces' ORDER BY ordinal_position").fetchall()]


def put_back(store: GalleryStore, rows: list[tuple[object, ...]]) -> None:
    """Re-insert erased rows, as someone restoring them from yesterday's copy of the database file would."""
    cols = columns(store)
    with store.db.connect() as con:
        for r in rows:
            con.execute(f"INSERT INTO gallery_faces ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        list(r))


def test_every_row_loads_with_its_subject_and_vector(gallery) -> None:
    store, expected = gallery
    assert loaded_rows(store) == expected
    store._loaded.clear()  # a second load (key set-ups kept) gives the same
    assert loaded_rows(store) == expected


def test_an_erased_subjects_cipher_is_dropped_and_its_restored_rows_do_not_open(gallery) -> None:
    store, expected = gallery
    victim = SUBJECTS[3]
    rows = rows_of(store, victim)
    key_id = str(rows[0][columns(store).index("key_id")])
    store.load("g")
    assert store.keys.ciphers([key_id])[0] is not None  # kept after the load (so the test can fail)
    store.delete_subject("g", victim)
    assert store.keys.ciphers([key_id]) == [None]
    assert key_id not in store.keys._ciphers
    assert victim not in {sid for sid, _ in loaded_rows(store).values()}
    put_back(store, rows)
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="not in the key store"):
        store.load("g")


def test_an_erasure_by_another_process_reaches_this_ones_ciphers(gallery) -> None:
    store, _ = gallery
    victim = SUBJECTS[1]
    rows = rows_of(store, victim)
    key_id = str(rows[0][columns(store).index("key_id")])
    store.load("g")
    other = GalleryStore(store.db)
    other.keys = KeyStore(store.keys.path)  # its own key store object on the same file, as another process has
    other.delete_subject("g", victim)
    assert store.keys.ciphers([key_id]) == [None]  # the file changed: re-read, the key's set-up forgotten
    put_back(store, rows)
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="not in the key store"):
        store.load("g")


def test_an_uppercase_key_id_is_not_kept_past_its_keys_destruction(gallery) -> None:
    store, _ = gallery
    rows = rows_of(store, SUBJECTS[0])
    key_id = str(rows[0][columns(store).index("key_id")])
    assert store.keys.ciphers([key_id.upper()])[0] is not None
    store.delete_subject("g", SUBJECTS[0])
    assert store.keys.ciphers([key_id.upper()]) == [None]


def test_a_row_cut_short_fails_the_load(gallery) -> None:
    store, _ = gallery
    with store.db.connect() as con:
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = (SELECT min(face_id) FROM gallery_faces)",
                    [b"\x00" * 20])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="shorter than its nonce and tag"):
        store.load("g")


def test_a_flipped_bit_fails_the_load(gallery) -> None:
    store, _ = gallery
    with store.db.connect() as con:
        fid, sealed = con.execute("SELECT face_id, sealed FROM gallery_faces ORDER BY face_id DESC LIMIT 1").fetchone()
        flipped = bytearray(sealed)
        flipped[-30] ^= 1
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?", [bytes(flipped), fid])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        store.load("g")


@pytest.mark.parametrize("dims", [64, 129])
def test_a_row_resealed_with_the_key_but_another_shape_fails_the_load(gallery, dims: int) -> None:
    """Someone holding the key store re-seals a face with a vector of the wrong size: named, not loaded."""
    store, _ = gallery
    cols = columns(store)
    row = rows_of(store, SUBJECTS[2])[0]
    fid, key_id = row[cols.index("face_id")], str(row[cols.index("key_id")])
    key = store.keys.get_many([key_id])[key_id]
    plain = pack_sealed({"image_name": "x.jpg"}, np.ones(dims, np.float32), SUBJECTS[2])
    with store.db.connect() as con:
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?",
                    [seal(key, plain, f"facetrail-face\0g\0{fid}".encode()), fid])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="not a face of 128 dimensions"):
        store.load("g")
