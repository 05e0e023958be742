"""One audited deployment on a file database, for the tests that need a gallery, an admin and an operator."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from core import Database, EnrollItem, GalleryStore
from tests.auth import actor_for, token_for


@dataclass
class Deployment:
    """A file database, its audit log and gallery store, and the services of an admin and an operator."""

    db: Database
    log: AuditLog
    galleries: GalleryStore
    admin: AuditedEngine
    operator: AuditedEngine
    enrolled: Any


def deployment(folder: Path, engine: Any, ctx: AuditContext, items: list[EnrollItem], *,
               key_name: str = "audit-key") -> Deployment:
    """Gallery ``g`` made and ``items`` enrolled by admin ``root``; operator ``olga`` ready to search it."""
    db = Database(folder / "ft.duckdb")
    log = AuditLog(db, key_path=folder / key_name)
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, ctx, actor_for(db, "root", "admin")), engine, galleries)
    admin.create_gallery("g", engine.config)
    enrolled = admin.enroll("g", items)
    operator = AuditedEngine(AuditSession(log, ctx, actor_for(db, "olga", "operator")), engine, galleries)
    return Deployment(db, log, galleries, admin, operator, enrolled)


_ERASER = """
import sys
from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.accounts import CredentialStore
from core import Database, Engine, GalleryStore
from tests.conftest import make_config
from tests.fakes import FakePipeline

db_path, key_path, token, subject = sys.argv[1:5]
db = Database(db_path)
engine = Engine(make_config(threshold=0.3))
engine._pipeline = FakePipeline()
session = AuditSession(AuditLog(db, key_path=key_path), AuditContext(purpose="data subject request DSAR-7",
                                                                      case_ref="DSAR-7"), CredentialStore(db).resolve(token))
print(AuditedEngine(session, engine, GalleryStore(db)).delete_subject("g", subject).seq)
db.close()
"""


def erase_in_another_process(folder: Path, log: AuditLog, subject: str) -> int:
    """Erase ``subject`` from gallery ``g`` of ``folder/ft.duckdb`` as admin ``root``, in a process of its own.

    Returns the erasure record's seq. The file must not be held by this process (its Database lets go when idle).
    """
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    token = token_for(folder / "ft.duckdb", "root", "admin")
    done = subprocess.run([sys.executable, "-c", _ERASER, str(folder / "ft.duckdb"), str(log.key_path), token,
                           subject], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)
