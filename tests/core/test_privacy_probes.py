"""A probe's embedding lives only in memory; evaluation embeddings only in the evaluation cache, for a while.

Searched from the outside: every table's values and the raw bytes of every file facetrail
wrote (database, write-ahead log, key store). Real engine, stores and trail; fake models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from core import Database, EnrollItem, GalleryStore
from core.cache import CachedOutcome, EvaluationCache
from core.results import Face
from tests.auth import actor_for
from tests.fakes import blank_png, face_png

CTX = AuditContext(purpose="probe test", case_ref="C-1")


def raw_files(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def float_columns_hold(db: Database, vector: np.ndarray) -> list[str]:
    """Tables with a float list equal to ``vector`` (a search through values, not only bytes)."""
    found = []
    with db.connect() as con:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE data_type LIKE 'FLOAT[]%'").fetchall()
        for table, column in cols:
            for (value,) in con.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall():
                if np.allclose(np.asarray(value, dtype=np.float32), vector, atol=1e-6):
                    found.append(f"{table}.{column}")
    return found


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "audit-key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    admin.enroll("g", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in ("s1", "s2", "s3")])
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), fake_engine, galleries)
    return tmp_path, db, galleries, operator


def test_the_raw_search_finds_a_stored_float_vector(tmp_path: Path) -> None:
    """Control: an embedding DuckDB does hold in clear is found by the searches used below.

    Checkpointed float columns are compressed in the file (their bytes are not found there), but
    the write-ahead log holds them raw until a checkpoint, and the value search finds them anywhere:
    the tests below search both, the files before any checkpoint.
    """
    vector = np.random.default_rng(3).standard_normal(128).astype(np.float32)
    db = Database(tmp_path / "control.duckdb")
    with db.connect() as con:
        con.execute("CREATE TABLE plain (v FLOAT[])")
        con.execute("CHECKPOINT")
        con.execute("INSERT INTO plain VALUES (?)", [vector.tolist()])
    assert (tmp_path / "control.duckdb.wal").is_file()
    assert vector.tobytes() in raw_files(tmp_path)
    assert float_columns_hold(db, vector) == ["plain.v"]
    db.close()


def test_searches_and_verifies_leave_no_probe_embedding(world, fake_engine) -> None:
    root, db, galleries, operator = world
    probes = [face_png("s1", 5), face_png("stranger", 1), face_png("s2", 9)]
    for p in probes:
        operator.search("g", p, top_k=3)
    operator.search_many("g", probes[:2], top_k=2)
    operator.verify(probes[0], probes[2])
    vectors = [fake_engine.embed(p).vector for p in probes]
    raw = raw_files(root)
    assert (root / "ft.duckdb.wal").is_file()  # searched before any checkpoint empties the log
    for v in vectors:
        assert v.tobytes() not in raw
        assert float_columns_hold(db, v) == []
    db.close()
    raw = raw_files(root)
    assert not any(v.tobytes() in raw for v in vectors)


def test_probes_embedded_in_a_batch_through_the_gallery_cache_are_not_kept(world, fake_engine) -> None:
    """The demo embeds its probes with ``embed_batch(cache=galleries.cache)``: only failures are kept."""
    root, db, galleries, _ = world
    folder = root / "probes"
    folder.mkdir()
    paths = []
    for i in range(3):
        paths.append(folder / f"p{i}.png")
        paths[-1].write_bytes(face_png(f"walker{i}"))
    (folder / "blank.png").write_bytes(blank_png())
    batch = fake_engine.embed_batch([*paths, folder / "blank.png"], cache=galleries.cache, workers=1)
    assert len(batch.embeddings) == 3 and [f.code for f in batch.failures] == ["no_face"]
    again = fake_engine.embed_batch([*paths, folder / "blank.png"], cache=galleries.cache, workers=1)
    assert again.computed == 3  # the embeddings were not kept; the no-face outcome was
    with db.connect() as con:
        rows = con.execute("SELECT error_code FROM embedding_cache").fetchall()
    assert rows == [("no_face",)]
    raw = raw_files(root)
    assert not any(e.vector.tobytes() in raw for e in batch.embeddings.values())


def test_an_enrolled_image_is_a_cache_hit_read_back_from_its_gallery(world, fake_engine) -> None:
    root, _, galleries, _ = world
    path = root / "s1.png"
    path.write_bytes(face_png("s1"))
    batch = fake_engine.embed_batch([path], cache=galleries.cache, workers=1)
    assert (batch.computed, batch.from_cache) == (0, 1)
    np.testing.assert_allclose(batch.embeddings[str(path)].vector, fake_engine.embed(face_png("s1")).vector)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_evaluation_cache_is_sealed_kept_for_its_retention_then_purged(tmp_path: Path) -> None:
    db = Database(tmp_path / "ft.duckdb")
    clock = Clock()
    cache = EvaluationCache(db, retention_days=30, clock=clock)
    rng = np.random.default_rng(0)
    face = Face(1, 2, 30, 30, 0.9, "dlib")
    old = [CachedOutcome(f"old{i}", rng.standard_normal(128).astype(np.float32), face, 1, None, None)
           for i in range(3)]
    cache.put_many("k", old)
    clock.now += timedelta(days=20)
    new = [CachedOutcome("new0", rng.standard_normal(128).astype(np.float32), face, 1, None, None),
           CachedOutcome("bad", None, None, 0, "no_face", "no face")]
    cache.put_many("k", new)
    hits = cache.get_many(["old0", "new0", "bad"], "k")
    assert set(hits) == {"old0", "new0", "bad"} and hits["old0"].face == face
    np.testing.assert_array_equal(hits["old0"].vector, old[0].vector)
    with db.connect() as con:
        con.execute("CHECKPOINT")
    assert not any(o.vector.tobytes() in raw_files(tmp_path) for o in old)  # sealed, not in clear

    clock.now += timedelta(days=15)  # the old entries are 35 days old, the new ones 15
    assert set(cache.get_many(["old0", "new0"], "k")) == {"new0"}  # expired entries are never returned
    keys_before = cache.keys.key_ids()
    dry = cache.purge_expired(dry_run=True)
    assert (dry.entries, dry.keys_destroyed) == (3, 1)
    assert cache.keys.key_ids() == keys_before
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM evaluation_cache").fetchall()[0][0] == 5
    done = cache.purge_expired()
    assert (done.entries, done.keys_destroyed) == (3, 1) and done.oldest_kept is not None
    assert len(cache.keys.key_ids()) == len(keys_before) - 1
    assert (cache.purge_expired().entries, cache.purge_expired().keys_destroyed) == (0, 0)  # idempotent
    assert set(cache.get_many(["new0", "bad"], "k")) == {"new0", "bad"}
    everything = cache.purge_expired(everything=True)
    assert everything.entries == 2 and cache.keys.key_ids() == frozenset()
