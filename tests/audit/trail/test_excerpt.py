"""Verifiable excerpts (audit.trail.excerpt): checked with only the public key; every alteration is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.errors import ExcerptError
from audit.trail.excerpt import verify_excerpt, write_excerpt
from audit.trail.keys import public_key_pem
from audit.trail.log import AuditLog
from audit.trail.store import AuditFilter
from tests.audit.trail._helpers import make_log, record_fields


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = make_log(tmp_path, "file", checkpoint_every=4)
    for i in range(10):
        log.append(record_fields(i, operator="alice" if i % 2 else "bob", case="CASE-1" if i < 6 else "CASE-2"))
    return log


def excerpt(log: AuditLog, tmp_path: Path, **filters: str) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "excerpt.json"
    summary = write_excerpt(log, path, AuditFilter(**filters))
    assert summary.verifiable
    return path, json.loads(path.read_text())


def rewrite(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_excerpt_verifies_with_only_the_public_key(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-2")
    assert [r["seq"] for r in doc["records"]] == [7, 8, 9, 10]
    pem = log.public_key_pem()
    report = verify_excerpt(path, pem)
    assert report.ok and report.records == 4 and report.checkpoint_seq == 10
    # a log appended to later still produces verifiable excerpts of old records
    log.append(record_fields(99, case="CASE-1"))
    path2, _ = excerpt(log, tmp_path / "b", case_ref="CASE-1")
    assert verify_excerpt(path2, pem).ok


def test_excerpt_fails_with_another_key(log: AuditLog, tmp_path: Path) -> None:
    path, _ = excerpt(log, tmp_path, case_ref="CASE-1")
    other = public_key_pem(Ed25519PrivateKey.generate().public_key())
    report = verify_excerpt(path, other)
    assert not report.ok and report.fault is not None and report.fault["kind"] == "bad_signature"


def test_altered_record_in_excerpt_fails(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-1")
    doc["records"][2]["canonical"] = doc["records"][2]["canonical"].replace('"bob"', '"mallory"')
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault == {**report.fault, "seq": 3, "kind": "hash_mismatch"}  # type: ignore[dict-item]


def test_altered_record_with_recomputed_hash_fails_the_proof(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-1")
    rec = doc["records"][1]
    rec["canonical"] = rec["canonical"].replace('"bob"', '"mallory"').replace('"alice"', '"mallory"')
    new = hashlib.sha256(b"\x00" + bytes.fromhex(rec["prev_hash"]) + rec["canonical"].encode()).hexdigest()
    rec["entry_hash"] = new
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault is not None and report.fault["seq"] == 2
    # editing the manifest to match breaks its signature
    doc["manifest"]["records"][1][1] = new
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault is not None and report.fault["kind"] == "bad_signature"


def test_removed_record_in_excerpt_fails(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-1")
    del doc["records"][3]
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault is not None
    assert (report.fault["seq"], report.fault["kind"]) == (4, "missing_record")


def test_added_record_in_excerpt_fails(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-2")
    _, full = excerpt(log, tmp_path / "full")
    doc["records"].insert(0, full["records"][0])  # a genuine record, but not part of this excerpt
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault is not None
    assert (report.fault["seq"], report.fault["kind"]) == (1, "unexpected_record")


def test_forged_proof_fails(log: AuditLog, tmp_path: Path) -> None:
    path, doc = excerpt(log, tmp_path, case_ref="CASE-2")
    doc["records"][0]["proof"][0] = "00" * 32
    report = verify_excerpt(rewrite(path, doc), log.public_key_pem())
    assert not report.ok and report.fault is not None
    assert (report.fault["seq"], report.fault["kind"]) == (7, "bad_proof")


def test_unreadable_excerpt_is_an_error(tmp_path: Path, log: AuditLog) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(ExcerptError):
        verify_excerpt(bad, log.public_key_pem())
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ExcerptError):
        verify_excerpt(bad, log.public_key_pem())
