"""Fixtures of the audit tests: an in-memory database and an audit log on it, signing with a key of the test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.trail.log import AuditLog
from core.storage.connection import Database


@pytest.fixture
def db() -> Database:
    return Database(":memory:")


@pytest.fixture
def log(db: Database, tmp_path: Path) -> AuditLog:
    return AuditLog(db, key_path=tmp_path / "audit-key")
