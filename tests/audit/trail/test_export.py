"""Plain exports (audit.trail.export): CSV, JSON Lines, Parquet, pseudonymised."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from audit.trail.export import export_records, load_pseudonym_key, pseudonym
from audit.trail.log import AuditLog
from audit.trail.records import canonical_bytes
from audit.trail.store import AuditFilter
from tests.audit.trail._helpers import make_log, record_fields


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
        operators = [r["operator"] for r in rows]
        assert json.loads(rows[0]["candidates"])[0]["subject_id"] == "s1"
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        seqs = [r["seq"] for r in rows]
        operators = [r["record"]["operator"] for r in rows]
        assert rows[0]["record"]["candidates"][0]["subject_id"] == "s1"
        # a plain JSONL row still carries the original record: its hash can be recomputed
        e = log.get(rows[0]["seq"])
        # a plain export carries the record as its readers see it (sealed fields opened), not the signed bytes
        assert canonical_bytes(rows[0]["record"]) == canonical_bytes(e.record.to_dict())
        assert b'"s1"' not in e.canonical
    else:
        table = pq.read_table(out)
        rows = table.to_pylist()
        seqs = [r["seq"] for r in rows]
        operators = [r["operator"] for r in rows]
        assert table.schema.field("seq").type == "int64"
    assert seqs == [2, 4, 6]
    assert operators == ["alice"] * 3  # every format, one operator per exported row


def test_pseudonymised_export(log: AuditLog, tmp_path: Path) -> None:
    key = load_pseudonym_key(log)
    path = Path(str(log.key_path) + ".pseudonym")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_pseudonym_key(log) == key  # stable across calls
    out = tmp_path / "p.jsonl"
    export_records(log, out, "jsonl", pseudonym_key=key)
    text = out.read_text()
    assert '"s1"' not in text and pseudonym("s1", key) in text
    subjects = [c["subject_id"] for line in text.splitlines() for c in json.loads(line)["record"]["candidates"]]
    assert subjects == [pseudonym(f"s{i}", key) for i in range(10)]
    assert pseudonym("s1", key) != pseudonym("s1", b"other key") and pseudonym("s1", key) != pseudonym("s2", key)
