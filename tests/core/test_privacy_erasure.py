"""Crypto-shredding from the outside: what an erased subject leaves in the files facetrail wrote.

The attacker here has every file facetrail wrote (the database, its write-ahead log, the key
store, the audit key folder, exports) and the subject's embedding and id from before the
erasure. Real engine, gallery store and audit trail; only the face models are fake.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.audited import audited_export
from core import Database, EnrollItem, GalleryStore
from core.cache import unpack_sealed
from core.keystore import AESGCM, KeyStore, KeyStoreError, unseal
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png

CTX = AuditContext(purpose="erasure test", case_ref="DSAR-1", legal_basis="GDPR art. 17")
SUBJECTS = [f"Jane_Roe_{i:02d}" for i in range(6)]


def files_written(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` (database, WAL, key store, keys, exports), read raw."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def table_text(db: Database, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every table's rows, as text (a search through values, not just raw bytes)."""
    out = {}
    with db.connect() as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            if table not in skip:
                out[table] = repr(con.execute(f'SELECT * FROM "{table}"').fetchall())
    return out


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    """A file database with gallery ``g`` of six subjects (two photos each), enrolled through the audited service."""
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "ft.duckdb.audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    items = [EnrollItem(s, fake_engine.embed(face_png(s, v)), f"{s}_{v}.png", {"name": s.replace("_", " ")},
                        photo=face_png(s, v))
             for s in SUBJECTS for v in (0, 1)]
    admin.enroll("g", items)
    return tmp_path, db, log, galleries, admin, items


def test_the_database_never_holds_an_embedding_or_subject_id_in_clear(world) -> None:
    root, db, _, galleries, _, items = world
    assert (root / "ft.duckdb.wal").is_file()  # before a checkpoint: the log would hold rows raw
    raw = b"".join(files_written(root).values())
    for item in items:
        assert item.embedding.vector.tobytes() not in raw
        assert item.photo is not None and item.photo not in raw  # reference photos are sealed too
    rows = table_text(db, skip=frozenset({"audit_log"}))  # the log keeps ids for accountability
    for subject in SUBJECTS:
        assert not any(subject in text for text in rows.values())
    # and yet the gallery works: rows decrypt at load
    assert len(galleries.load("g").index) == 12
    assert {f["subject_id"] for f in galleries.faces("g")} == set(SUBJECTS)


def test_erased_subject_leaves_nothing_readable_and_the_trail_still_verifies(world, fake_engine) -> None:
    root, db, log, galleries, admin, items = world
    victim = SUBJECTS[2]
    mine = [i for i in items if i.subject_id == victim]
    vectors = [i.embedding.vector.tobytes() for i in mine]
    photos = [i.photo for i in mine if i.photo is not None]
    face_ids = [f["face_id"] for f in galleries.faces("g") if f["subject_id"] == victim]
    assert sorted(galleries.photo("g", f) for f in face_ids) == sorted(photos)  # before: the photos open
    ref = galleries.keys.ref("g", victim)
    with db.connect() as con:
        rows = con.execute("SELECT gallery, face_id, key_id, sealed FROM gallery_faces WHERE subject_ref = ?",
                           [ref]).fetchall()
    key_id = rows[0][2]
    key = galleries.keys.get_many([key_id])[key_id]
    sealed = [bytes(r[3]) for r in rows]
    # before: the attacker with the key store can open the rows (so the test can fail)
    fields, vector = unpack_sealed(unseal(AESGCM(key), sealed[0], f"facetrail-face\0g\0{rows[0][1]}".encode()))
    assert fields["subject_id"] == victim and vector.tobytes() in vectors
    with db.connect() as con:
        sealed_photos = [bytes(r[0]) for r in con.execute("SELECT photo FROM gallery_faces WHERE subject_ref = ?",
                                                            [ref]).fetchall()]
    assert len(sealed_photos) == 2 and all(p not in sealed_photos for p in photos)

    admin.delete_subject("g", victim)
    out = root / "exports"
    out.mkdir()
    auditor = AuditSession(log, CTX, actor_for(db, "audrey", "auditor"))
    for fmt in ("csv", "jsonl", "parquet"):
        audited_export(auditor, log, out / f"log.{fmt}", fmt, pseudonymize=True)
    db.close()

    files = files_written(root)
    for path, data in files.items():
        assert key not in data, f"the erased subject's key is still in {path.name}"
        for v in vectors:
            assert v not in data, f"an erased embedding is in {path.name}"
        for photo in photos:
            assert photo not in data, f"an erased reference photo is in {path.name}"
        if path.parent == out:  # pseudonymised exports name nobody
            assert victim.encode() not in data, f"the erased subject id is in {path.name}"
    keystore = root / "ft.duckdb.keys"
    assert stat.S_IMODE(os.stat(keystore).st_mode) == 0o600
    assert key_id not in KeyStore(keystore).key_ids()
    # whatever ciphertext the file still holds, nobody can open it: its key is gone
    reopened = Database(root / "ft.duckdb")
    remaining = table_text(reopened, skip=frozenset({"audit_log"}))
    assert not any(victim in text for text in remaining.values())
    assert AuditLog(reopened, key_path=root / "ft.duckdb.audit-key").verify().ok
    others = GalleryStore(reopened)
    assert [others.photo("g", f) for f in face_ids] == [None, None]  # the photos went with the subject
    survivor = next(f for f in others.faces("g") if f["subject_id"] == SUBJECTS[0])
    assert others.photo("g", survivor["face_id"]) is not None  # the others' photos still open
    assert {f["subject_id"] for f in others.faces("g")} == set(SUBJECTS) - {victim}
    assert len(others.load("g").index) == 10


def test_erasure_in_a_rolled_back_unit_keeps_the_key(world, monkeypatch) -> None:
    _, db, log, galleries, admin, _ = world
    victim = SUBJECTS[0]
    before = galleries.keys.key_ids()

    def broken_append(*args, **kwargs):
        raise OSError("disk full while writing the record")

    monkeypatch.setattr(log, "append", broken_append)
    with pytest.raises(OSError):
        admin.delete_subject("g", victim)
    monkeypatch.undo()
    assert galleries.keys.key_ids() == before
    assert victim in {f["subject_id"] for f in GalleryStore(db).faces("g")}


def gallery_key_ids(db: Database) -> set[str]:
    """The key ids the gallery's rows are sealed under (the store also holds the log's field keys)."""
    with db.connect() as con:
        return {r[0] for r in con.execute("SELECT DISTINCT key_id FROM gallery_faces").fetchall()}


def test_dropping_a_gallery_destroys_every_subject_key(world) -> None:
    _, db, _, galleries, admin, _ = world
    assert len(gallery_key_ids(db)) == len(SUBJECTS) and gallery_key_ids(db) <= galleries.keys.key_ids()
    admin.drop_gallery("g")
    assert galleries.keys.key_ids() == frozenset()  # the rows' keys and the log's field keys of the gallery


def test_deleting_one_face_keeps_the_key_until_the_subjects_last_face(world) -> None:
    _, db, _, galleries, admin, _ = world
    faces = [f for f in galleries.faces("g") if f["subject_id"] == SUBJECTS[1]]
    with db.connect() as con:
        key_id = con.execute("SELECT key_id FROM gallery_faces WHERE face_id = ?", [faces[0]["face_id"]]).fetchone()[0]
    admin.delete_face("g", faces[0]["face_id"])
    assert key_id in galleries.keys.key_ids() and len(gallery_key_ids(db)) == len(SUBJECTS)
    admin.delete_face("g", faces[1]["face_id"])
    assert key_id not in galleries.keys.key_ids() and len(gallery_key_ids(db)) == len(SUBJECTS) - 1


def test_a_tampered_or_moved_row_does_not_decrypt(world) -> None:
    _, db, _, galleries, _, _ = world
    with db.connect(transaction=True) as con:
        rows = con.execute("SELECT face_id, sealed FROM gallery_faces ORDER BY face_id LIMIT 2").fetchall()
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?", [rows[1][1], rows[0][0]])
    fresh = GalleryStore(db)
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        fresh.load("g")


def test_key_store_rewrite_is_atomic_private_and_leaves_no_old_copy(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    store = KeyStore(path)
    made = store.create(3)
    victim_id, victim_key = next(iter(made.items()))
    old_inode = os.stat(path).st_ino
    fd = os.open(path, os.O_RDONLY)  # an attacker holding the old version open
    try:
        assert store.destroy([victim_id]) == 1
        old = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    assert victim_key not in old and old.strip(b"\0") == b""  # the old version was zeroed in place
    assert os.stat(path).st_ino != old_inode  # replaced by rename, never edited in place
    assert victim_key not in path.read_bytes()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeyStore(path).key_ids() == frozenset(made) - {victim_id}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_key_store_refuses_a_file_that_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes(b"not a key store")
    with pytest.raises(KeyStoreError, match="not a facetrail key store"):
        KeyStore(path).key_ids()


def test_two_stores_on_one_file_keep_each_others_keys(tmp_path: Path) -> None:
    a, b = KeyStore(tmp_path / "keys"), KeyStore(tmp_path / "keys")
    ka = a.create(1)
    kb = b.create(1)
    assert set(ka) | set(kb) == a.key_ids() == b.key_ids()
    assert a.ref("g", "x") == b.ref("g", "x")


def test_a_file_written_before_sealing_is_sealed_on_first_use(tmp_path: Path) -> None:
    db = Database(tmp_path / "old.duckdb")
    store = GalleryStore(db)
    store.create("g", make_config())
    vector = np.ones(128, dtype=np.float32) / np.sqrt(128)
    with db.connect(transaction=True) as con:  # a row as version 3 wrote it
        con.execute("INSERT INTO gallery_faces (gallery, face_id, subject_id, image_sha256, image_name, metadata, "
                    "embedding) VALUES ('g', 'f1', 'Old_Subject', 'h', 'old.png', ?, ?)",
                    [json.dumps({"a": 1}), vector.tolist()])
        con.execute("UPDATE galleries SET face_count = 1 WHERE name = 'g'")
    fresh = GalleryStore(db)
    assert [f["subject_id"] for f in fresh.faces("g")] == ["Old_Subject"]
    assert "Old_Subject" not in table_text(db)["gallery_faces"]
    assert len(fresh.load("g").index) == 1
