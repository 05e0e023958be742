"""Key files (audit.trail.keys): created 0600 outside the database, once, and reused."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from audit.errors import KeyFileError
from audit.trail.keys import load_or_create_private_key, load_or_create_pseudonym_key, public_key_pem
from audit.trail.log import AuditLog
from core.storage.connection import Database
from tests.audit.trail._helpers import make_log, record_fields


def test_key_file_created_0600_outside_db(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file", checkpoint_every=2)
    assert not log.key_path.exists()
    for i in range(2):
        log.append(record_fields(i))
    mode = stat.S_IMODE(os.stat(log.key_path).st_mode)
    assert mode == 0o600
    assert log.key_path != Path(log.db.path)
    pem = log.public_key_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem
    # the same key is used after reopening
    again = AuditLog(log.db, key_path=log.key_path)
    assert again.public_key_pem() == pem and again.verify().ok


def test_default_key_is_in_the_key_folder_not_beside_the_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACETRAIL_AUDIT_KEY", raising=False)
    monkeypatch.delenv("FACETRAIL_AUDIT_KEY_DIR", raising=False)
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    log = AuditLog(Database(tmp_path / "x.duckdb"))
    assert log.key_path == tmp_path / "config" / "audit-keys" / f"{log.log_id}.key"
    log.append(record_fields(1))
    assert stat.S_IMODE(os.stat(log.key_path.parent).st_mode) == 0o700
    assert not Path(str(tmp_path / "x.duckdb") + ".audit-key").exists()
    monkeypatch.setenv("FACETRAIL_AUDIT_KEY_DIR", str(tmp_path / "keys"))
    other = AuditLog(Database(tmp_path / "z.duckdb"))
    assert other.key_path == tmp_path / "keys" / f"{other.log_id}.key"
    monkeypatch.setenv("FACETRAIL_AUDIT_KEY", str(tmp_path / "k"))
    assert AuditLog(Database(tmp_path / "y.duckdb")).key_path == tmp_path / "k"
    # a key made beside the database before keys moved out keeps working
    monkeypatch.delenv("FACETRAIL_AUDIT_KEY")
    legacy = Path(str(tmp_path / "old.duckdb") + ".audit-key")
    load_or_create_private_key(legacy)
    assert AuditLog(Database(tmp_path / "old.duckdb")).key_path == legacy


def test_a_key_readable_by_others_is_refused_naming_chmod(tmp_path: Path) -> None:
    log = make_log(tmp_path, "file")
    log.append(record_fields(1))
    os.chmod(log.key_path, 0o644)
    again = AuditLog(log.db, key_path=log.key_path)
    with pytest.raises(KeyFileError, match="chmod 600"):
        again.append(record_fields(2))
    os.chmod(log.key_path, 0o600)
    assert again.append(record_fields(2)).seq == 2


def test_concurrent_key_creation_yields_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-key"
    pems: list[str] = []

    def work() -> None:
        pems.append(public_key_pem(load_or_create_private_key(path).public_key()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pems) == 8 and len(set(pems)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["audit-key"]  # no temporary files left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unreadable_key_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "audit-key"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_or_create_private_key(bad)
    pseudonym = tmp_path / "pseudonym"
    pseudonym.write_text("zz")
    with pytest.raises(KeyFileError, match="not a hex key"):
        load_or_create_pseudonym_key(pseudonym)
