"""The one runner for a system's own scores and for 1:N calibrations: refusals recorded, nothing half-stored, one record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audit import (
    AuditContext,
    AuditLog,
    AuditSession,
    DatasetSource,
    EvaluationRequest,
    EvaluationStores,
    ScoreFileError,
    SearchCalibrationRequest,
    SystemScores,
    parse_threshold,
    run_evaluation,
    run_search_calibration,
)
from core import BadInput, ConfigMismatch, Database
from core.gallery import EnrollItem
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="audit of the city's vendor", case_ref="PROC-7")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "runs.duckdb")


@pytest.fixture
def log(db: Database, tmp_path: Path) -> AuditLog:
    return AuditLog(db, key_path=tmp_path / "key")


def session(log: AuditLog, role: str = "auditor") -> AuditSession:
    return AuditSession(log, CTX, actor_for(log.db, f"{role}-1", role))


def vendor_files(folder: Path, n_subjects: int = 20, per: int = 3, bad_line: str | None = None) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    subj = np.repeat(np.arange(n_subjects), per)
    x = rng.standard_normal((n_subjects, 8))[subj] + 0.8 * rng.standard_normal((subj.size, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"img/{k:03d}.jpg" for k in range(subj.size)]
    (folder / "m.csv").write_text("image,person,sex\n" + "".join(
        f"{n},s{s:02d},{'F' if s % 2 else 'M'}\n" for n, s in zip(names, subj, strict=True)))
    i, j = np.triu_indices(subj.size, 1)
    score = np.round(np.clip(100 * np.einsum("ij,ij->i", x[i], x[j]), 0, 100), 2)
    lines = [f"{names[a]},{names[b]},{v}" for a, b, v in zip(i, j, score, strict=True)]
    if bad_line is not None:
        lines.insert(7, bad_line)
    (folder / "s.csv").write_text("image_a,image_b,score\n" + "\n".join(lines) + "\n")
    return folder / "m.csv", folder / "s.csv"


def system_request(manifest: Path, scores: Path, **kw) -> EvaluationRequest:
    system = SystemScores(name="Vendor X", version="4.2", direction="similarity", pairs=scores)
    return EvaluationRequest(DatasetSource(manifest=manifest, subject_column="person"), by=(("sex",),),
                             thresholds=(parse_threshold("score=80"), parse_threshold("fmr=0.01")),
                             include_default=False, bootstrap=20, system=system, **kw)


def test_a_vendor_run_is_stored_naming_the_system_and_recorded_once(tmp_path, db, log):
    manifest, scores = vendor_files(tmp_path)
    stores = EvaluationStores.on(db)
    before = log.size()
    run = run_evaluation(system_request(manifest, scores), None, stores, session(log))
    assert log.size() == before + 1
    rec = log.get(run.audit_seq).record
    assert (rec.action, rec.outcome, rec.operator) == ("evaluate", "ok", "auditor-1")
    assert rec.details["system"] == "Vendor X" and rec.details["system_version"] == "4.2"
    assert rec.details["run_id"] == run.run_id and rec.details["impostor_pairs"] == 1710
    assert rec.model_config is None  # no engine ran
    stored = stores.runs.load(run.run_id)
    assert stored == run.report and stored.run["system"]["scores_sha256"] == run.report.run["system"]["scores_sha256"]
    listed = stores.runs.list()[0]
    assert (listed.system, listed.system_version) == ("Vendor X", "4.2") and "Vendor X 4.2" in listed.label
    names = {r["threshold_name"] for r in stored.rates}
    assert names == {"score=80", "fmr=0.01"} and stored.inequity_rows


def test_a_bad_score_file_is_refused_naming_its_line_and_nothing_is_stored(tmp_path, db, log):
    manifest, scores = vendor_files(tmp_path, bad_line="img/000.jpg,img/999.jpg,50")
    stores = EvaluationStores.on(db)
    with pytest.raises(ScoreFileError, match=r"s.csv line 9: image_b 'img/999.jpg' is not an image of the manifest"):
        run_evaluation(system_request(manifest, scores), None, stores, session(log))
    (entry,) = [e for e in log.list() if e.record.action == "refused"]
    assert entry.record.outcome == "bad_score_file" and "line 9" in entry.record.details["reason"]
    assert entry.record.details["system"] == "Vendor X"
    assert stores.runs.list() == []


def test_a_vendor_request_cannot_use_the_engines_thresholds():
    system = SystemScores(name="Vendor X", direction="distance", pairs=Path("s.csv"))
    source = DatasetSource(manifest=Path("m.csv"), subject_column="person")
    with pytest.raises(BadInput, match="cosine distances"):
        EvaluationRequest(source, thresholds=(parse_threshold("0.4"),), include_default=False, system=system)
    with pytest.raises(BadInput, match="default threshold"):
        EvaluationRequest(source, system=system)
    with pytest.raises(BadInput, match="need its score files"):
        EvaluationRequest(source, thresholds=(parse_threshold("score=80"),))
    with pytest.raises(BadInput, match="gallery's manifest"):
        SystemScores(name="Vendor X", direction="similarity", candidates=Path("c.csv"))


def enrol(db: Database, engine, people: range) -> str:
    from core.gallery import GalleryStore

    galleries = GalleryStore(db)
    galleries.create("mugshots", engine.config)
    items = []
    for p in people:
        for k in range(2):
            emb = engine.embed(face_png(f"g{p}", k))
            items.append(EnrollItem(subject_id=f"g{p}", embedding=emb, image_name=f"g{p}_{k}.png"))
    galleries.enroll("mugshots", items)
    return "mugshots"


def probes_manifest(folder: Path, n: int = 40) -> Path:
    rows = ["image,person,race"]
    for s in range(n):
        rel = f"probes/p{s:02d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(face_png(f"p{s}", 0))
        rows.append(f"{rel},p{s:02d},{'a' if s % 2 else 'b'}")
    (folder / "probes.csv").write_text("\n".join(rows) + "\n")
    return folder / "probes.csv"


def test_an_fpir_calibration_is_stored_for_its_gallery_and_recorded(tmp_path, db, log, fake_engine):
    enrol(db, fake_engine, range(30))
    manifest = probes_manifest(tmp_path)
    stores = EvaluationStores.on(db)
    request = SearchCalibrationRequest(DatasetSource(manifest=manifest, subject_column="person"), "mugshots", 0.1,
                                       by=(("race",),), workers=1)
    run = run_search_calibration(request, fake_engine, stores, session(log, "admin"))
    cal = run.calibration
    assert cal.method == "measured" and cal.searches == 40 and cal.achieved_fpir <= 0.1 and cal.gallery_size == 60
    rec = log.get(run.audit_seq).record
    assert rec.details["command"] == "calibrate" and rec.details["gallery_size"] == 60
    assert set(rec.details["per_group_fpir"]) == {"all", "race=a", "race=b"}
    found = stores.thresholds.search_calibration(fake_engine.config, 60, run.gallery_fingerprint)
    assert found is not None and found.id == run.saved_id and found.threshold == cal.threshold
    assert found.measured_fpir(cal.threshold) == cal.achieved_fpir
    expected = stores.thresholds.expected_fpir(fake_engine.config, 60, cal.threshold, run.gallery_fingerprint)
    assert expected.method == "measured" and expected.value == cal.achieved_fpir


def test_an_fpir_calibration_for_a_gallery_of_another_configuration_is_refused(tmp_path, db, log, fake_engine):
    from tests.conftest import make_config

    enrol(db, fake_engine, range(5))
    other = fake_engine.with_config(make_config(alignment="deepface", threshold=0.3))
    request = SearchCalibrationRequest(DatasetSource(manifest=probes_manifest(tmp_path, 4), subject_column="person"),
                                       "mugshots", 0.1, workers=1)
    with pytest.raises(ConfigMismatch, match="enrolled under"):
        run_search_calibration(request, other, EvaluationStores.on(db), session(log, "admin"))
    assert [e.record.action for e in log.list()][-1] == "refused"


def test_searches_default_to_the_galleries_fpir_calibration_and_records_carry_the_expected_fpir(
        tmp_path, monkeypatch, fake_engine):
    from audit.runtime import Runtime
    from core import ThresholdSource

    rt = Runtime(str(tmp_path / "rt.duckdb"))
    one_to_one = ThresholdSource(kind="calibrated", description="FMR=1e-3 (1:1, test)", achieved_fmr=1e-3)
    fake_engine = fake_engine.with_config(fake_engine.config.with_threshold(0.3, one_to_one))  # the same pipeline
    monkeypatch.setattr(Runtime, "engine", lambda self, *names: fake_engine)
    enrol(rt.db, fake_engine, range(30))
    before = rt.engine_for_gallery("mugshots")
    assert before.config == fake_engine.config  # no 1:N calibration yet: the 1:1 default
    manifest = probes_manifest(tmp_path)
    admin = actor_for(rt.db, "admin-1", "admin")
    run = run_search_calibration(
        SearchCalibrationRequest(DatasetSource(manifest=manifest, subject_column="person"), "mugshots", 0.1,
                                 workers=1),
        fake_engine, EvaluationStores.on(rt.db), rt.session(CTX, admin))
    engine = rt.engine_for_gallery("mugshots")
    assert engine.config.threshold == run.calibration.threshold
    assert engine.config.threshold_source.kind == "calibrated" and "FPIR=0.1" in engine.config.threshold_source.description
    operator = actor_for(rt.db, "operator-1", "operator")
    service = rt.audited(engine, AuditContext(purpose="lead in case 7", case_ref="C-7"), operator)
    probes = sorted((tmp_path / "probes").glob("*.png"))
    results = [service.search("mugshots", str(p), top_k=3) for p in probes]
    with_candidates = sum(1 for r in results if r.result.candidates)
    assert with_candidates == run.calibration.false_positive_searches  # the stored threshold reproduces its FPIR
    record = rt.log.get(results[0].seq).record
    expected = record.details["expected_fpir"]
    assert expected["method"] == "measured" and expected["gallery_size"] == 60
    assert float(expected["fpir"]) == pytest.approx(run.calibration.achieved_fpir)
    named = service.search("mugshots", str(probes[0]), top_k=3, threshold=0.01)  # a named threshold: still stated
    assert rt.log.get(named.seq).record.details["expected_fpir"]["method"] == "measured"
    rt.close()
