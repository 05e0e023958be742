"""The one runner: context first, refusals recorded, each image read once, everything stored, one timed record."""

from __future__ import annotations

import json
import typing
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

import core.image
from audit import (
    AuditContext,
    AuditLog,
    AuditSession,
    CalibrationRequest,
    DatasetSource,
    EvaluationError,
    EvaluationRequest,
    EvaluationStores,
    IdentificationRequest,
    MissingContext,
    parse_threshold,
    run_calibration,
    run_evaluation,
)
from audit.evaluation.config import THRESHOLD_KINDS, threshold_kind
from core import Database, ManifestError, ThresholdSource
from core.thresholds import ThresholdStore
from tests.auth import actor_for
from tests.fakes import blank_png, face_png

CTX = AuditContext(purpose="bias audit before procurement", case_ref="EVAL-1")


def signed(log: AuditLog, role: str = "auditor"):
    """Who runs it: auditor-7 (evaluations), or admin-7 (calibrations change the default threshold)."""
    return actor_for(log.db, "auditor-7" if role == "auditor" else "admin-7", role)


def write_set(folder: Path, subjects: int = 12, per: int = 3, blank: tuple[int, int] | None = (0, 2)) -> Path:
    """A manifest of face photos the fake pipeline knows (one blank photo: no face)."""
    rows = ["image,person,sex"]
    for s in range(subjects):
        for k in range(per):
            rel = f"img/s{s:02d}/{k}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(blank_png() if (s, k) == blank else face_png(f"s{s}", k))
            rows.append(f"{rel},s{s:02d},{'F' if s % 2 else 'M'}")
    (folder / "set.csv").write_text("\n".join(rows) + "\n")
    return folder / "set.csv"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "runs.duckdb")


@pytest.fixture
def log(db: Database, tmp_path: Path) -> AuditLog:
    return AuditLog(db, key_path=tmp_path / "key")


def request_for(manifest: Path, **kw) -> EvaluationRequest:
    return EvaluationRequest(DatasetSource(manifest=manifest, subject_column="person"), by=(("sex",),),
                             thresholds=(parse_threshold("0.3"), parse_threshold("fmr=0.01")), bootstrap=0,
                             workers=1, **kw)


def test_a_run_is_stored_and_recorded_once_with_its_real_start(tmp_path, db, log, fake_engine):
    manifest = write_set(tmp_path)
    stores = EvaluationStores.on(db)
    before = log.size()
    run = run_evaluation(request_for(manifest), fake_engine, stores, AuditSession(log, CTX, signed(log)))
    assert log.size() == before + 1
    entry = log.get(run.audit_seq)
    rec = entry.record
    assert (rec.action, rec.outcome, rec.operator, rec.purpose) == ("evaluate", "ok", "auditor-7", CTX.purpose)
    d = rec.details
    assert d["run_id"] == run.run_id and d["dataset_fingerprint"] == run.dataset.fingerprint
    assert (d["images"], d["subjects"], d["failures_to_acquire"], d["failures_by_code"]) == (35, 12, 1, {"no_face": 1})
    assert d["genuine_pairs"] == 11 * 3 + 1 and d["impostor_pairs"] == 35 * 34 // 2 - 34
    assert set(d["overall"]) == {"default", "0.3", "fmr=0.01"}
    assert all(isinstance(v, str) for cell in d["overall"].values() for v in cell.values())
    # the record starts when the work started, not when it ended
    start = datetime.fromisoformat(rec.started_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(rec.ended_at.replace("Z", "+00:00"))
    created = datetime.fromisoformat(run.report.run["created"])
    assert start <= created <= end and start < end
    stored = stores.runs.load(run.run_id)
    assert stored == run.report
    assert [e.dataset for e in stores.runs.list()] == [run.dataset.name]
    assert stores.runs.list()[0].model == "Dlib"


def test_missing_context_is_refused_before_any_work(tmp_path, db, log, fake_engine, fake_pipeline):
    manifest = write_set(tmp_path)
    with pytest.raises(MissingContext):
        run_evaluation(request_for(manifest), fake_engine, EvaluationStores.on(db),
                       AuditSession(log, AuditContext(purpose=None), signed(log)))
    assert fake_pipeline.calls == 0
    assert [e.record.action for e in log.list()] == ["refused"]
    assert log.list()[0].record.details["attempted"] == "evaluate"


def test_unusable_input_is_refused_and_recorded_without_embedding(tmp_path, db, log, fake_engine, fake_pipeline):
    manifest = write_set(tmp_path)
    session = AuditSession(log, CTX, signed(log))
    bad = EvaluationRequest(DatasetSource(manifest=manifest, subject_column="person"), by=(("height",),),
                            bootstrap=0)
    with pytest.raises(ManifestError, match="height"):
        run_evaluation(bad, fake_engine, EvaluationStores.on(db), session)
    glob = request_for(manifest, identification=IdentificationRequest(
        DatasetSource(manifest=manifest, subject_column="person"), probe_glob="*/nothing.png"))
    with pytest.raises(core.BadInput, match="matches no image"):
        run_evaluation(glob, fake_engine, EvaluationStores.on(db), session)
    records = [e.record for e in log.list()]
    assert [(r.action, r.outcome, r.details["attempted"]) for r in records] == [
        ("refused", "bad_manifest", "evaluate"),
        ("refused", "bad_input", "evaluate"),
    ]
    assert fake_pipeline.calls == 0


def test_data_that_cannot_be_evaluated_is_a_recorded_failure(tmp_path, db, log, fake_engine):
    folder = tmp_path / "one"
    folder.mkdir()
    manifest = write_set(folder, subjects=1, per=3, blank=None)
    with pytest.raises(EvaluationError, match="at least two subjects"):
        run_evaluation(request_for(manifest), fake_engine, EvaluationStores.on(db), AuditSession(log, CTX, signed(log)))
    (entry,) = log.list()
    assert (entry.record.action, entry.record.outcome) == ("evaluate", "evaluation_error")
    assert EvaluationStores.on(db).runs.list() == []


def test_each_image_is_read_once_when_cached_and_twice_when_embedded(tmp_path, db, log, fake_engine, monkeypatch):
    manifest = write_set(tmp_path)
    opened: Counter[str] = Counter()
    real = core.image.open_regular

    def counting(path):
        opened[str(path)] += 1
        return real(path)

    monkeypatch.setattr(core.image, "open_regular", counting)
    monkeypatch.setattr("audit.evaluation.datasets.open_regular", counting)
    stores = EvaluationStores.on(db)
    session = AuditSession(log, CTX, signed(log))
    run_evaluation(request_for(manifest), fake_engine, stores, session)
    images = [str(tmp_path / "img" / f"s{s:02d}" / f"{k}.png") for s in range(12) for k in range(3)]
    assert {p: opened[p] for p in images} == {p: 2 for p in images}  # the loader's one read, the embedding's one
    opened.clear()
    run = run_evaluation(request_for(manifest), fake_engine, stores, session)
    assert {p: opened[p] for p in images} == {p: 1 for p in images}  # cached: only the loader reads
    assert run.computed == 0


def test_reuse_returns_the_stored_run_and_records_nothing(tmp_path, db, log, fake_engine, fake_pipeline):
    manifest = write_set(tmp_path)
    stores = EvaluationStores.on(db)
    first = run_evaluation(request_for(manifest, reuse_stored=True), fake_engine, stores, AuditSession(log, CTX, signed(log)))
    calls, size = fake_pipeline.calls, log.size()
    again = run_evaluation(request_for(manifest, reuse_stored=True), fake_engine, stores, AuditSession(log, CTX, signed(log)))
    assert again.reused and again.run_id == first.run_id and again.audit_seq is None
    assert log.size() == size and fake_pipeline.calls == calls
    subset = EvaluationRequest(DatasetSource(manifest=manifest, subject_column="person", subject_limit=5),
                               bootstrap=0, workers=1, reuse_stored=True)
    other = run_evaluation(subset, fake_engine, stores, AuditSession(log, CTX, signed(log)))
    assert not other.reused and other.run_id != first.run_id  # a subset is other data
    assert other.report.run["dataset_fingerprint"] != first.report.run["dataset_fingerprint"]
    assert log.get(other.audit_seq).record.details["dataset_selection"] == "first 5 subjects"


def test_identification_against_a_gallery_dataset(tmp_path, db, log, fake_engine):
    probes = write_set(tmp_path / "probes", blank=None)
    gallery = write_set(tmp_path / "gallery", subjects=6, per=2, blank=None)
    request = request_for(probes, identification=IdentificationRequest(
        DatasetSource(manifest=gallery, subject_column="person"), probe_glob="*/0.png", thresholds=(0.25,)))
    run = run_evaluation(request, fake_engine, EvaluationStores.on(db), AuditSession(log, CTX, signed(log)))
    overall = [r for r in run.report.identification_rows if not r["group"]]
    assert {r["threshold_name"] for r in overall} == {"default", "0.3", "fmr=0.01", "0.250"}
    # two datasets: subject ids live in different namespaces, so every probe is non-mated
    assert all(r["mated_searches"] == 0 and r["nonmated_searches"] == 12 for r in overall)
    # the gallery shows the faces of s0..s5 (distance about 0.01), the others are far (about 1): at 0.3
    # the six probes whose face is in it are 'found', as non-mated searches of another dataset
    assert next(r for r in overall if r["threshold_name"] == "0.3")["false_positive_searches"] == 6
    about = run.report.run["identification"]
    assert (about["probes"], about["gallery_faces"], about["probe_glob"]) == (12, 12, "*/0.png")
    assert log.get(run.audit_seq).record.details["identification"]["gallery"] == run.report.run[
        "identification"]["gallery"]


def test_calibration_is_saved_as_the_default_with_its_provenance(tmp_path, db, log, fake_engine):
    manifest = write_set(tmp_path)
    stores = EvaluationStores.on(db)
    request = CalibrationRequest(DatasetSource(manifest=manifest, subject_column="person"), 0.01, by=(("sex",),),
                                 workers=1)
    run = run_calibration(request, fake_engine, stores, AuditSession(log, CTX, signed(log, "admin")))
    threshold, source = ThresholdStore(db).latest(fake_engine.config)
    r = run.calibration.result
    assert threshold == r.threshold and run.saved
    assert (source.kind, source.target_fmr, source.achieved_fmr) == ("calibrated", 0.01, r.achieved_fmr)
    assert source.dataset == run.dataset.name and source.dataset_fingerprint == run.dataset.fingerprint
    assert {g for g, _ in source.per_group_fmr} == {"sex=F", "sex=M"}
    rec = log.get(run.audit_seq).record
    assert rec.details["command"] == "calibrate" and rec.details["saved_as_default"] is True
    assert rec.details["threshold"] == f"{r.threshold:.12f}"


def test_the_default_threshold_says_where_it_comes_from(tmp_path, db, log, fake_engine):
    manifest = write_set(tmp_path)
    calibrated = fake_engine.with_config(fake_engine.config.with_threshold(
        0.2, ThresholdSource(kind="calibrated", description="FMR=1e-3 on a set", target_fmr=1e-3)))
    run = run_evaluation(request_for(manifest), calibrated, EvaluationStores.on(db), AuditSession(log, CTX, signed(log)))
    sources = {r["threshold_name"]: r["threshold_source"] for r in run.report.rates if r["pairing"] == "all"}
    assert sources == {"default": "calibrated", "0.3": "user", "fmr=0.01": "calibrated"}


def test_one_threshold_vocabulary():
    core_kinds = typing.get_args(typing.get_type_hints(ThresholdSource)["kind"])
    assert set(THRESHOLD_KINDS) == set(core_kinds)
    assert threshold_kind("model_default", {"threshold_source": {"kind": "deepface_builtin"}}) == "deepface_builtin"
    assert threshold_kind("model_default", None) == "user"
    with pytest.raises(ValueError, match="unknown threshold source"):
        threshold_kind("guess")


def test_runs_stored_with_the_old_vocabulary_are_read(tmp_path, db, log, fake_engine):
    manifest = write_set(tmp_path)
    stores = EvaluationStores.on(db)
    run = run_evaluation(request_for(manifest), fake_engine, stores, AuditSession(log, CTX, signed(log)))
    with db.connect(transaction=True) as con:  # as an older facetrail wrote it
        con.execute("UPDATE eval_rates SET threshold_source = 'model_default' WHERE threshold_name = 'default'")
        config = json.loads(con.execute("SELECT run FROM eval_runs").fetchall()[0][0])["config"]
    assert config["include_default"] is True
    fresh = EvaluationStores.on(db).runs.load(run.run_id)
    kinds = {r["threshold_source"] for r in fresh.rates if r["threshold_name"] == "default"}
    assert kinds == {fake_engine.config.threshold_source.kind}


def test_lfw_results_are_stored_with_the_run(tmp_path, db, log, fake_engine):
    root = tmp_path / "lfw"
    names = [f"P{i}" for i in range(6)]
    for name in names:
        for k in (1, 2):
            path = root / "images" / name / f"{name}_{k:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(face_png(name, k))
    (root / "pairs.txt").write_text("2 2\nP0 1 2\nP1 1 2\nP0 1 P2 1\nP1 2 P3 1\n"
                                    "P2 1 2\nP3 1 2\nP4 1 P5 2\nP5 1 P0 2\n")
    request = EvaluationRequest(DatasetSource(lfw=root), thresholds=(parse_threshold("0.3"),), bootstrap=0, workers=1)
    run = run_evaluation(request, fake_engine, EvaluationStores.on(db), AuditSession(log, CTX, signed(log)))
    stored = EvaluationStores.on(db).runs.load(run.run_id)
    assert stored.lfw_accuracy() == run.report.lfw_accuracy()
    assert stored.lfw_accuracy()["accuracy"] == 1.0  # the fake separates people perfectly
    assert stored.lfw_pair_rows()[0]["genuine_pairs"] == 4 and stored.lfw_pair_rows()[0]["impostor_pairs"] == 4
    assert log.get(run.audit_seq).record.details["lfw_accuracy"] == "1.000000"
