"""``facetrail evaluate --scores/--candidates`` (a vendor's own scores) and ``calibrate --target-fpir``, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit import AuditLog, EvaluationStore
from audit.runtime import Runtime
from core import Database
from core.gallery import EnrollItem, GalleryStore
from tests.dashboard.cli.test_evaluate_commands import make_manifest, run
from tests.fakes import face_png


@pytest.fixture(autouse=True)
def audit_context(monkeypatch):
    monkeypatch.delenv("FACETRAIL_OPERATOR", raising=False)
    monkeypatch.delenv("FACETRAIL_TOKEN", raising=False)
    monkeypatch.setenv("FACETRAIL_PURPOSE", "testing")


@pytest.fixture
def no_engine(monkeypatch):
    """A system's scores need no engine: building one fails the test."""
    def refuse(self, *names):
        raise AssertionError("a vendor's scores were evaluated with an engine")

    monkeypatch.setattr(Runtime, "engine", refuse)


def vendor_files(folder: Path, bad: str | None = None) -> tuple[Path, Path]:
    rng = np.random.default_rng(2)
    subj = np.repeat(np.arange(24), 3)
    x = rng.standard_normal((24, 8))[subj] + 0.8 * rng.standard_normal((72, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"img/{k:02d}.jpg" for k in range(72)]
    (folder / "m.csv").write_text("image,person,sex\n" + "".join(
        f"{n},s{s:02d},{'F' if s % 2 else 'M'}\n" for n, s in zip(names, subj, strict=True)))
    i, j = np.triu_indices(72, 1)
    score = np.round(np.clip(100 * np.einsum("ij,ij->i", x[i], x[j]), 0, 100), 2)
    lines = [f"{names[a]},{names[b]},{v}" for a, b, v in zip(i, j, score, strict=True)]
    if bad:
        lines.insert(3, bad)
    (folder / "s.csv").write_text("image_a,image_b,score\n" + "\n".join(lines) + "\n")
    return folder / "m.csv", folder / "s.csv"


def vendor_args(manifest: Path, scores: Path, db: str, *extra: str) -> list[str]:
    return ["evaluate", "--scores", str(scores), "--manifest", str(manifest), "--subject-col", "person",
            "--by", "sex", "--score-direction", "similarity", "--system", "Vendor X", "--system-version", "4.2",
            "--threshold", "score=80", "--threshold", "fmr=1e-2", "--bootstrap", "20", "--db", db, *extra]


def test_evaluate_scores_gives_the_engines_rows_in_the_systems_units(tmp_path, capsys, no_engine):
    manifest, scores = vendor_files(tmp_path)
    db = str(tmp_path / "f.duckdb")
    code, out = run(vendor_args(manifest, scores, db, "--json"), capsys)
    assert code == 0, out
    rows = json.loads(out)
    assert {r["kind"] for r in rows} == {"verification", "inequity"}
    assert {r["threshold_name"] for r in rows} == {"score=80", "fmr=0.01"}
    garbe = next(r for r in rows if r["kind"] == "inequity" and r["measure"] == "garbe" and r["threshold"] == 80.0)
    assert garbe["grouping"] == "sex" and garbe["groups"] == 2
    at80 = next(r for r in rows if r["pairing"] == "all" and r["threshold_name"] == "score=80")
    assert at80["threshold"] == 80.0 and at80["similarity_threshold"] == 80.0 and at80["reproducible"] is True
    calibrated = next(r for r in rows if r["pairing"] == "all" and r["threshold_name"] == "fmr=0.01")
    assert calibrated["fmr"] <= 0.01 and calibrated["threshold_source"] == "calibrated"
    report = EvaluationStore(Database(db)).load(rows[0]["run_id"])
    assert report.run["system"]["name"] == "Vendor X" and report.run["system"]["scores_format"] == "csv"
    assert report.run["threshold_convention"].startswith("the system's similarity score")
    entry = AuditLog(Database(db)).get(rows[0]["audit_seq"])
    assert entry.record.details["system"] == "Vendor X" and entry.record.details["scores"] == str(scores)
    code, text = run(vendor_args(manifest, scores, db), capsys)
    assert code == 0 and "of Vendor X 4.2" in text and "score>=80" in text


def test_a_bad_score_file_exits_2_naming_its_line_and_is_recorded(tmp_path, capsys, no_engine):
    manifest, scores = vendor_files(tmp_path, bad="img/00.jpg,img/01.jpg,high")
    db = str(tmp_path / "f.duckdb")
    code, _ = run(vendor_args(manifest, scores, db), capsys)
    assert code == 2
    refused = [e for e in AuditLog(Database(db)).list() if e.record.action == "refused"]
    assert refused and refused[-1].record.details["reason"] == "s.csv line 5: score 'high' is not a number"
    assert refused[-1].record.outcome == "bad_score_file"
    assert EvaluationStore(Database(db)).list() == []


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--system", "X"], "describes a system's score files"),
        (["--scores", "s.csv"], "name the evaluated system with --system"),
        (["--scores", "s.csv", "--system", "X"], "--score-direction similarity|distance"),
    ],
)
def test_system_flags_need_each_other(tmp_path, capsys, extra, problem):
    m = make_manifest(tmp_path)
    db = str(tmp_path / "f.duckdb")
    code, _ = run(["evaluate", "--manifest", str(m), "--subject-col", "person", *extra, "--db", db], capsys)
    assert code == 2
    refused = [e for e in AuditLog(Database(db)).list() if e.record.action == "refused"]
    assert problem in refused[-1].record.details["reason"]


def test_candidate_lists_give_identification_rows(tmp_path, capsys, no_engine):
    (tmp_path / "probes.csv").write_text("image,person,race\nq1.jpg,m1,A\nq2.jpg,m2,B\nq3.jpg,g1,B\n")
    (tmp_path / "gallery.csv").write_text("image,person\ng1.jpg,g1\ng2.jpg,g2\n")
    (tmp_path / "c.csv").write_text("probe,candidate_subject,rank,score\nq1.jpg,g2,1,91\nq3.jpg,g1,1,99\n")
    db = str(tmp_path / "f.duckdb")
    code, out = run(["evaluate", "--candidates", str(tmp_path / "c.csv"), "--manifest", str(tmp_path / "probes.csv"),
                     "--subject-col", "person", "--gallery-manifest", str(tmp_path / "gallery.csv"),
                     "--gallery-subject-col", "person", "--by", "race", "--score-direction", "similarity",
                     "--system", "Vendor X", "--threshold", "score=90", "--json", "--db", db], capsys)
    assert code == 0, out
    rows = {r["group_name"]: r for r in json.loads(out) if r["kind"] == "identification"}
    assert rows["all"]["false_positive_searches"] == 1 and rows["all"]["nonmated_searches"] == 3
    assert rows["all"]["rank1_rate"] == 1.0 and rows["race=A"]["fpir"] == 1.0 and rows["race=B"]["fpir"] == 0.0


def test_calibrate_target_fpir_stores_the_search_threshold_of_the_gallery(tmp_path, capsys, monkeypatch, fake_engine):
    monkeypatch.setattr(Runtime, "engine", lambda self, *names: fake_engine)
    db = str(tmp_path / "f.duckdb")
    database = Database(db)
    galleries = GalleryStore(database)
    galleries.create("mugshots", fake_engine.config)
    galleries.enroll("mugshots", [EnrollItem(f"g{p}", fake_engine.embed(face_png(f"g{p}", k)), f"g{p}_{k}.png")
                                  for p in range(20) for k in range(2)])
    fingerprint = galleries.ref("mugshots").fingerprint
    database.close()
    m = make_manifest(tmp_path)
    code, out = run(["calibrate", "--target-fpir", "0.1", "--gallery", "mugshots", "--manifest", str(m),
                     "--subject-col", "person", "--probe-glob", "*/0.png", "--by", "sex", "--json", "--db", db], capsys)
    assert code == 0, out
    payload = json.loads(out)
    assert payload["kind"] == "search_calibration" and payload["saved"] and payload["method"] == "measured"
    assert payload["searches"] == 30 and payload["achieved_fpir"] <= 0.1 and payload["gallery_size"] == 40
    assert {r["group_name"] for r in payload["per_group"]} == {"all", "sex=F", "sex=M"}
    from core.thresholds import ThresholdStore

    found = ThresholdStore(Database(db)).search_calibration(fake_engine.config, 40, fingerprint)
    assert found is not None and found.threshold == payload["threshold"]
    code, _ = run(["calibrate", "--target-fpir", "0.1", "--manifest", str(m), "--subject-col", "person", "--db", db],
                  capsys)
    assert code == 2  # which gallery?
