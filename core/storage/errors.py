"""Errors of facetrail's storage: the database file cannot be opened, is held, or has an unknown shape.

These are not recognition errors: a busy or damaged database says nothing about a
face. Each class has a short stable ``code`` for JSON output and audit records.
"""

from __future__ import annotations

__all__ = ["StorageError", "DatabaseBusy", "SchemaError"]


class StorageError(Exception):
    """Base class of every storage failure (the database cannot be opened or used)."""

    code = "storage_error"


class DatabaseBusy(StorageError):
    """Another process held the database lock for longer than the lock timeout."""

    code = "database_busy"


class SchemaError(StorageError):
    """The database file has a schema this version of facetrail cannot read or upgrade."""

    code = "schema_error"
