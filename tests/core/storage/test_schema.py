"""One schema with a version: new files, files from before versioning, files from a newer facetrail."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from core import Database, GalleryStore, SchemaError
from core.storage.schema import MIGRATIONS, SCHEMA_VERSION, current_version, table_columns
from tests.conftest import make_config

TABLES = {"galleries", "gallery_faces", "embedding_cache", "calibrations", "audit_log", "audit_checkpoint_chain",
          "users", "eval_runs", "eval_rates", "eval_disparity", "eval_det", "eval_histograms", "eval_fta",
          "eval_identification", "eval_calibrations", "schema_version"}


def _tables(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_a_new_file_has_every_table_and_says_its_version(tmp_path: Path) -> None:
    db = Database(tmp_path / "new.duckdb")
    GalleryStore(db).list()
    db.close()
    assert TABLES <= _tables(tmp_path / "new.duckdb")
    with duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS] and rows[-1][0] == SCHEMA_VERSION


def test_a_file_from_before_versioning_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # the shape the first release wrote, with no schema_version table
        con.execute("CREATE TABLE galleries (name VARCHAR PRIMARY KEY, embedding_key VARCHAR NOT NULL, "
                    "config JSON NOT NULL, face_count BIGINT NOT NULL DEFAULT 0, set_hash VARCHAR NOT NULL, "
                    "created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        con.execute("INSERT INTO galleries (name, embedding_key, config, set_hash) VALUES ('kept', 'k', '{}', ?)",
                    [f"{0:032x}"])
    db = Database(path)
    assert [g.name for g in GalleryStore(db).list()] == ["kept"]
    with db.connect() as con:
        assert current_version(con) == SCHEMA_VERSION
    db.close()
    assert TABLES <= _tables(path)


def test_a_file_from_a_newer_facetrail_is_refused_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    db = Database(path)
    GalleryStore(db).create("g", make_config())
    db.close()
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version (version, description) VALUES (?, 'from the future')",
                    [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        GalleryStore(Database(path)).list()


def test_the_evaluation_store_writes_the_columns_the_schema_has() -> None:
    from audit.evaluation import store

    db = Database(":memory:")
    with db.connect() as con:
        for table, columns in store._TABLES.items():
            assert table_columns(con, table) == ["run_id", "row_no", *(c for c, _ in columns)], table


def test_units_of_work_nest_into_one_transaction() -> None:
    """A change and its record commit together: an inner connect joins the outer transaction."""
    db = Database(":memory:")
    with db.connect() as con:
        con.execute("CREATE TABLE t (i INTEGER)")
    with pytest.raises(RuntimeError), db.connect(transaction=True) as outer:
        outer.execute("INSERT INTO t VALUES (1)")
        with db.connect(transaction=True) as inner:
            assert inner is outer and db.in_transaction
            inner.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("crash after both writes")
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (0,) and not db.in_transaction
    with db.connect(transaction=True) as outer:
        outer.execute("INSERT INTO t VALUES (3)")
        with db.connect() as inner:
            inner.execute("INSERT INTO t VALUES (4)")
    with db.connect() as con:
        assert sorted(r[0] for r in con.execute("SELECT i FROM t").fetchall()) == [3, 4]
