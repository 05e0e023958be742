"""Fixtures of the trail tests: a fresh log per test, on an in-memory and on a real file database."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.trail.log import AuditLog
from tests.audit.trail._helpers import KINDS, make_log


@pytest.fixture(params=KINDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> AuditLog:
    """A new, empty log (checkpoint every 5 records) for each test, memory and file."""
    return make_log(tmp_path, request.param, checkpoint_every=5)
