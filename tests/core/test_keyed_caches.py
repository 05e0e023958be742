"""Cache entries that confirm no photo to someone holding the file (schema version 9).

The attacker has the database file, its write-ahead log and candidate photos, not the key
store. Before version 9 the enrolment cache (images without a usable face) and the evaluation
cache (embeddings of evaluated images) kept each image's SHA-256 in clear, so hashing a photo and
searching the raw bytes confirmed that it had been submitted or evaluated. Now both are keyed
by the image's keyed reference (:func:`core.cache.image_refs`), and a file written before is
emptied of its cache entries and rewritten, so the hashes are not left in its free blocks.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np

from core import Database, Face, GalleryStore
from core.cache import CachedOutcome, EmbeddingCache, EvaluationCache, image_refs
from core.keystore import KeyStore
from core.storage.schema import SCHEMA_VERSION
from tests.conftest import make_config
from tests.core.old_files import schema_as_of

FACE = Face(0, 0, 10, 10, 1.0, "dlib")
PHOTOS = [f"candidate photo {i}".encode() * 30 for i in range(6)]
HASHES = [hashlib.sha256(p).hexdigest() for p in PHOTOS]


def raw(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def clues(hashes: list[str]) -> list[bytes]:
    """What the attacker searches for: each photo's SHA-256, as hex text and as raw bytes."""
    return [h.encode() for h in hashes] + [bytes.fromhex(h) for h in hashes]


def vector(i: int) -> np.ndarray:
    v = np.random.default_rng(i).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_cached_failures_and_evaluations_are_found_by_hash_yet_their_hashes_are_in_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    db = Database(folder / "ft.duckdb")
    store = GalleryStore(db)
    store.cache.put_many("k", [CachedOutcome(h, None, None, 0, "no_face", "no face was found in the image")
                               for h in HASHES[:3]])
    evaluation = EvaluationCache(db, store.keys)
    evaluation.put_many("k", [CachedOutcome(h, vector(i), FACE, 1, None, None) for i, h in enumerate(HASHES[3:])])
    # the caches still answer by hash, under every reader of them
    assert sorted(store.cache.get_many(HASHES, "k")) == sorted(HASHES[:3])
    assert EmbeddingCache(db, keys=store.keys).get_many([HASHES[0]], "k")[HASHES[0]].error_code == "no_face"
    got = evaluation.get_many(HASHES, "k")
    assert sorted(got) == sorted(HASHES[3:])
    assert np.array_equal(got[HASHES[4]].vector, vector(1))
    with db.connect() as con:
        stored = {r[0] for r in con.execute("SELECT image_sha256 FROM embedding_cache UNION ALL "
                                            "SELECT image_sha256 FROM evaluation_cache").fetchall()}
    assert stored == set(image_refs(store.keys, HASHES))  # keyed references, 32 hex digits, not the hashes
    with db.connect() as con:
        con.execute("CHECKPOINT")
    data = raw(folder)
    keystore = store.keys.path
    db.close()
    # (so this test can fail: what the tables hold is found in the raw bytes where it is)
    assert image_refs(KeyStore(keystore), HASHES[:1])[0].encode() in data
    assert [c for c in clues(HASHES) if c in data] == []
    # the purge of an erased image still finds its entries by hash
    db = Database(folder / "ft.duckdb")
    assert EmbeddingCache(db, keys=KeyStore(keystore)).purge(HASHES[:2]) == 2
    assert EvaluationCache(db, KeyStore(keystore)).purge([HASHES[5]]) == 1
    db.close()


def v8_file(path: Path) -> None:
    """Write a file as facetrail wrote it at version 8: cache entries keyed by the images' SHA-256 in clear."""
    with duckdb.connect(str(path)) as con:
        schema_as_of(con, 8)
        embedding_key = make_config().embedding_key
        for h in HASHES[:3]:
            con.execute("INSERT INTO embedding_cache (image_sha256, embedding_key, faces_detected, error_code, "
                        "error_message) VALUES (?, ?, 0, 'no_face', 'no face')", [h, embedding_key])
        for h in HASHES[3:]:
            con.execute("INSERT INTO evaluation_cache (image_sha256, embedding_key, faces_detected, error_code, "
                        "created_at) VALUES (?, ?, 0, 'no_face', ?)", [h, embedding_key, datetime.now(UTC)])
        con.execute("CHECKPOINT")


def test_a_version_8_file_is_emptied_of_its_clear_cache_entries_and_rewritten(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    path = folder / "ft.duckdb"
    v8_file(path)
    assert all(c in path.read_bytes() for c in clues(HASHES)[:6])  # (so this test can fail)
    db = Database(path)
    store = GalleryStore(db)
    # the first use of the caches: the file migrated, the entries gone (recomputable: simply not found), the file
    # rewritten as the migration's mark asks
    assert store.cache.get_many(HASHES, make_config().embedding_key) == {}
    assert db.schema_version == SCHEMA_VERSION >= 9
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM embedding_cache").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM evaluation_cache").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM database_marks WHERE name = 'rewrite_due'").fetchall() == [(0,)]
    db.close()
    assert [c for c in clues(HASHES) if c in raw(folder)] == []
