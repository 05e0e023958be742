"""Storage the engine and the audit trail stand on: one DuckDB file, leased connections, one schema.

- :class:`Database` (:mod:`core.storage.connection`): the one way facetrail opens its database.
- :class:`StorageError` and :class:`DatabaseBusy`: storage failures (never recognition errors).
"""

from core.storage.connection import Database, default_db_path
from core.storage.errors import DatabaseBusy, SchemaError, StorageError

__all__ = ["Database", "DatabaseBusy", "SchemaError", "StorageError", "default_db_path"]
