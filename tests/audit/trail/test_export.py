"""Exports (CSV, JSON Lines, Parquet, pseudonymised) and verifiable excerpts."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.errors import ExcerptError
from audit.trail.export import (
    export_records,
    load_pseudonym_key,
    pseudonym,
    verify_excerpt,
    write_excerpt,
)
from audit.trail.keys import public_key_pem
from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes
from audit.trail.store import AuditFilter
from tests.audit._audit_helpers import make_log, record_fields


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = make_log(tmp_path, "file", checkpoint_every=4)
    for i in range(10):
        log.append(record_fields(i, operator="alice" if i % 2 else "bob", case="CASE-1" if i < 6 else "CASE-2"))
    return log


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_formats_with_filters(log: AuditLog, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    summary = export_records(log, out, fmt, AuditFilter(case_ref="CASE-1", operator="alice"))  # type: ignore[arg-type]
    assert summary.records == 3 and summary.filters == {"case_ref": "CASE-1", "operator": "alice"}
    if fmt == "csv":
        with out.open(encoding="utf-8", newline="") as fh:
            rows: list[dict[str, Any]] = list(csv.DictReader(fh))
        seqs = [int(r["seq"]) for r in rows]
        assert json.loads(rows[0]["candidates"])[0]["subject_id"] == "s1"
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        seqs = [r["seq"] for r in rows]
        assert rows[0]["record"]["candidates"][0]["subject_id"] == "s1"
        # a plain JSONL row still carries the original record: its hash can be recomputed
        e = log.get(rows[0]["seq"])
        assert canonical_bytes(rows[0]["record"]) == e.canonical
    else:
        table = pq.read_table(out)
        rows = table.to_pylist()
        seqs = [r["seq"] for r in rows]
        assert table.schema.field("seq").type == "int64"
    assert seqs == [2, 4, 6]
    assert all(r["operator"] == "alice" for r in rows) if fmt != "jsonl" else True


def test_pseudonymised_export(log: AuditLog, tmp_path: Path) -> None:
    key = load_pseudonym_key(log)
    path = Path(str(log.key_path) + ".pseudonym")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_pseudonym_key(log) == key  # stable across calls
    out = tmp_path / "p.jsonl"
    export_records(log, out, "jsonl", pseudonym_key=key)
    text = out.read_text()
    assert '"s1"' not in text and pseudonym("s1", key) in text
    assert pseudonym("s1", key) != pseudonym("s1", b"other key") and pseudonym("s1", key) != pseudonym("s2", key)


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
    import hashlib

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
