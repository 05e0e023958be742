"""Files as an older facetrail wrote them, for the tests of what a newer one does to them on first use."""

from __future__ import annotations

from typing import Any

from core.storage.schema import MIGRATIONS


def schema_as_of(con: Any, version: int) -> None:
    """Give an empty DuckDB connection the tables of schema ``version`` (migrations 1 to ``version``, recorded)."""
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    [migration.version, migration.description])
