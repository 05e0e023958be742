"""Gallery rows that link to nobody without the key store, from the side of someone holding the file.

The attacker has the database file (and its write-ahead log), the public list of the
dataset's names, and candidate photos. Before version 8 a gallery row held its face id (an
unkeyed SHA-256 of gallery, subject and image hash) and the image's SHA-256 in clear, so
hashing a photo and trying every name confirmed an enrolment and found the face in log
records. Files written before version 5 also kept clear embeddings, which DuckDB left in
free blocks after sealing them. Real gallery store and audit trail; only the face models
are fake.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.trail.sealed import ERASED
from audit.trail.store import AuditFilter
from core import Database, Embedding, EnrollItem, Face, GalleryStore
from core.gallery import face_id_for
from core.keystore import KeyStore
from core.storage.schema import SCHEMA_VERSION
from tests.auth import actor_for
from tests.conftest import make_config
from tests.core.old_files import schema_as_of
from tests.fakes import face_png

CTX = AuditContext(purpose="unlinkability test", case_ref="U-1", legal_basis="GDPR art. 17")
#: the public list of names (as LFW's): the enrolled subjects are among them
NAMES = [f"Public_Name_{i:03d}" for i in range(40)]
ENROLLED = NAMES[3:9]


def raw_files(root: Path) -> bytes:
    """Every file under ``root`` (database, WAL, key store), read raw and joined."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def attacker_clues(photos: list[bytes], gallery: str = "g") -> set[bytes]:
    """What the attacker computes: each photo's SHA-256 and the unkeyed face id of it under every public name."""
    clues = set()
    for photo in photos:
        digest = hashlib.sha256(photo).hexdigest()
        clues.add(digest.encode())
        clues.update(face_id_for(gallery, name, digest).encode() for name in NAMES)
    return clues


def test_the_file_and_the_names_confirm_no_enrolment_and_every_use_of_face_ids_works(tmp_path: Path,
                                                                                      fake_engine) -> None:
    db = Database(tmp_path / "db" / "ft.duckdb")
    store = GalleryStore(db)
    store.create("g", fake_engine.config)
    photos = {s: face_png(s, 0) for s in ENROLLED}
    items = [EnrollItem(s, fake_engine.embed(p), f"{s}.png", photo=p) for s, p in photos.items()]
    new, existing = store.enroll("g", items)
    assert len(new) == len(ENROLLED) and existing == []
    # the ids are keyed: not the ones anyone computes, yet stable (a second enrolment is a duplicate)
    unkeyed = {face_id_for("g", i.subject_id, i.embedding.image_sha256) for i in items}
    assert not set(new) & unkeyed
    assert store.enroll("g", items) == ([], new)
    assert [store.face_id("g", i.subject_id, i.embedding.image_sha256) for i in items] == new
    # what reads face ids still works: search results, listings, fields, photos
    hits = store.load("g").index.search(items[0].embedding.vector, 1)
    assert (hits[0].face_id, hits[0].subject_id) == (new[0], ENROLLED[0])
    listed = {f["face_id"]: f for f in store.faces("g")}
    assert listed[new[1]]["image_sha256"] == items[1].embedding.image_sha256
    assert store.face_fields("g", new[2])["subject_id"] == ENROLLED[2]
    assert store.photo("g", new[3]) == photos[ENROLLED[3]]
    db.close()

    data = raw_files(tmp_path / "db")
    # (so this test can fail: the values the rows hold are found where they are in clear)
    assert b"facetrail-face" not in data and new[0].encode() in data
    found = sorted(c for c in attacker_clues(list(photos.values())) if c in data)
    assert found == []
    for name in ENROLLED:
        assert name.encode() not in data


def pre_v5_file(path: Path, rows: list[tuple[str, str, bytes, np.ndarray]]) -> None:
    """Write a file as facetrail wrote it before version 5: clear rows, unkeyed face ids, cached embeddings."""
    with duckdb.connect(str(path)) as con:
        schema_as_of(con, 4)
        config = make_config()
        con.execute("INSERT INTO galleries (name, embedding_key, config, face_count, set_hash) VALUES "
                    "('g', ?, ?, ?, ?)", [config.embedding_key, json.dumps(config.to_dict()), len(rows), "0" * 32])
        for subject, name, photo, vector in rows:
            digest = hashlib.sha256(photo).hexdigest()
            con.execute("INSERT INTO gallery_faces (gallery, face_id, subject_id, image_sha256, image_name, metadata, "
                        "embedding) VALUES ('g', ?, ?, ?, ?, ?, ?)",
                        [face_id_for("g", subject, digest), subject, digest, name, json.dumps({"n": subject}),
                         vector.tolist()])
            con.execute("INSERT INTO embedding_cache (image_sha256, embedding_key, embedding, faces_detected) "
                        "VALUES (?, ?, ?, 1)", [digest, config.embedding_key, vector.tolist()])
        con.execute("CHECKPOINT")


def test_a_file_from_before_version_5_is_converted_and_rewritten_so_no_clear_value_is_left(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    path = folder / "ft.duckdb"
    rng = np.random.default_rng(5)
    photos = [f"photo of {s}".encode() * 20 for s in ENROLLED]
    vectors = [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.standard_normal((len(ENROLLED), 128))]
    pre_v5_file(path, [(s, f"{s}_0001.jpg", p, v) for s, p, v in zip(ENROLLED, photos, vectors, strict=True)])
    before = path.read_bytes()
    # (so this test can fail: the old file holds the names, the hashes, the unkeyed ids, the vectors)
    assert all(s.encode() in before for s in ENROLLED)
    assert {hashlib.sha256(p).hexdigest().encode() for p in photos} <= set(attacker_clues(photos))
    assert any(c in before for c in attacker_clues(photos))
    assert any(v.tobytes()[:64] in before for v in vectors)
    old_ids = [face_id_for("g", s, hashlib.sha256(p).hexdigest()) for s, p in zip(ENROLLED, photos, strict=True)]

    db = Database(path)
    store = GalleryStore(db)
    faces = store.faces("g")  # first use: sealed, re-keyed, the file rewritten
    assert sorted(f["subject_id"] for f in faces) == sorted(ENROLLED)
    assert {f["image_sha256"] for f in faces} == {hashlib.sha256(p).hexdigest() for p in photos}
    assert len(store.load("g").index) == len(ENROLLED)
    with db.connect() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION
        assert con.execute("SELECT count(*) FROM database_marks WHERE name = 'rewrite_due'").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM gallery_faces WHERE image_sha256 IS NOT NULL").fetchall()[0][0] == 0
    # the same photo of the same subject enrolled again is found as the face it is (duplicate detection)
    digest = hashlib.sha256(photos[2]).hexdigest()
    again = EnrollItem(ENROLLED[2], Embedding(vectors[2], digest, Face(0, 0, 10, 10, 1.0, "dlib"), 1, make_config()),
                       "again.jpg")
    assert store.enroll("g", [again]) == ([], [store.face_id("g", ENROLLED[2], digest)])
    # an id a record wrote before (unkeyed) still finds its face, and deletes it
    assert store.face_fields("g", old_ids[0])["subject_id"] == ENROLLED[0]
    assert store.delete_face("g", old_ids[1]) == [store.face_id("g", ENROLLED[1], hashlib.sha256(photos[1]).hexdigest())]
    db.close()

    data = raw_files(folder)
    found = sorted(c for c in attacker_clues(photos) if c in data)
    assert found == []
    for subject in ENROLLED:
        assert subject.encode() not in data
    for vector in vectors:
        assert vector.tobytes()[:64] not in data
    # the converted file opens again as it was left, with nothing more to convert
    again = GalleryStore(Database(path))
    assert sorted(f["subject_id"] for f in again.faces("g")) == sorted(s for s in ENROLLED if s != ENROLLED[1])


def test_a_new_file_is_not_rewritten(tmp_path: Path, fake_engine) -> None:
    db = Database(tmp_path / "ft.duckdb")
    store = GalleryStore(db)
    store.create("g", fake_engine.config)
    inode = (tmp_path / "ft.duckdb").stat().st_ino
    store.enroll("g", [EnrollItem("a", fake_engine.embed(face_png("a", 0)), "a.png")])
    store.faces("g")
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM database_marks WHERE name = 'rewrite_due'").fetchall()[0][0] == 0
    assert (tmp_path / "ft.duckdb").stat().st_ino == inode


def test_a_rewrite_waits_while_another_database_of_the_process_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ft.duckdb"
    pre_v5_file(path, [("s", "s.jpg", b"photo", np.ones(128, dtype=np.float32) / np.sqrt(128))])
    other = Database(path)
    with other.connect() as con:  # holds the file open (a connection of the same DuckDB instance)
        con.execute("SELECT 1").fetchall()
        assert not Database(path).rewrite(drop_mark="rewrite_due")
    other.close()
    db = Database(path)
    assert db.rewrite(drop_mark="rewrite_due")
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM database_marks WHERE name = 'rewrite_due'").fetchall()[0][0] == 0


def test_face_ids_a_record_does_not_tie_to_a_subject_are_erased_with_the_subject(tmp_path: Path,
                                                                                 fake_engine) -> None:
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "ft.duckdb.audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    victim, other = ENROLLED[0], ENROLLED[1]
    items = [EnrollItem(s, fake_engine.embed(face_png(s, v)), f"{s}_{v}.png") for s in (victim, other)
             for v in (0, 1, 2)]
    new = admin.enroll("g", items).result[0]
    victim_faces, other_faces = new[:3], new[3:]
    # records that name a face and no subject: one face deleted, one reviewed-like record naming a face
    admin.delete_face("g", victim_faces[0])
    admin.delete_face("g", other_faces[0])
    log.append({"action": "evidence", "outcome": "ok", "operator": "root", "purpose": "test", "case_ref": "U-1",
                "gallery": {"name": "g", "fingerprint": "x", "size": 4}, "details": {"face_id": victim_faces[1]}})
    deletions = log.list(AuditFilter(action="delete"))
    assert [d.record.details["face_id"] for d in deletions] == [victim_faces[0], other_faces[0]]

    admin.delete_subject("g", victim)
    after = {r.record.seq: r.record for r in log.list()}
    erased_delete, kept_delete = (after[d.record.seq] for d in deletions)
    assert erased_delete.details["face_id"] == ERASED and erased_delete.details["deleted_face_ids"] == [ERASED]
    assert kept_delete.details["face_id"] == other_faces[0]  # another subject's: still readable
    noted = [r for r in after.values() if r.action == "evidence"]
    assert noted[0].details["face_id"] == ERASED
    assert log.verify().ok


def test_a_key_destroyed_without_the_dict_of_keys_is_gone_from_the_file_and_the_rest_still_open(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    made = KeyStore(path).create(1000)
    ids = sorted(made)
    store = KeyStore(path)
    assert store.lookup(ids[:3]) == [made[i] for i in ids[:3]]  # a load's lookup: the entries as read, no dict
    assert store.destroy([ids[0], ids[500], "ff" * 16]) == 2
    data = path.read_bytes()
    assert made[ids[0]] not in data and made[ids[500]] not in data and made[ids[1]] in data
    assert store.lookup([ids[0], ids[1], ids[500], ids[999]]) == [None, made[ids[1]], None, made[ids[999]]]
    left = [i for i in ids if i not in (ids[0], ids[500])]
    assert KeyStore(path).lookup(left) == [made[i] for i in left] and store.lookup(left) == [made[i] for i in left]
    assert store.destroy(left) == len(left) and store.key_ids() == KeyStore(path).key_ids() == frozenset()
    assert store.lookup(ids[:2]) == [None, None]
