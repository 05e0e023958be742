"""Thresholds carry their provenance into results, the model list and the audit record (issue 5)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from audit import AuditContext, AuditedEngine, AuditSession
from audit.trail.log import AuditLog
from core.config import ThresholdSource
from core.engine import DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, DEFAULT_FALLBACKS, DEFAULT_MIRROR_AVERAGE, Engine
from core.gallery import EnrollItem, GalleryStore
from core.results import Embedding, Face
from core.thresholds import ThresholdStore, apply_default_threshold, shipped_calibration
from tests.auth import actor_for
from tests.conftest import make_config, random_unit

CALIBRATED = ThresholdSource(
    kind="calibrated",
    description="FMR=1e-3 on a synthetic set",
    target_fmr=1e-3,
    achieved_fmr=9.9e-4,
    achieved_fnmr=0.02,
    dataset="synthetic",
    dataset_fingerprint="f" * 64,
    calibrated_at="2026-11-26T00:00:00Z",
    per_group_fmr=(("sex=F", 1.4e-3), ("sex=M", 8e-4)),
)


def test_stored_calibration_becomes_the_default_threshold(memory_db, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("core.thresholds._SHIPPED", tmp_path / "none.json")
    config = make_config(threshold=0.07)
    store = ThresholdStore(memory_db)
    builtin = config.with_threshold(0.07, ThresholdSource(kind="deepface_builtin", description="builtin"))
    assert apply_default_threshold(builtin, store) == builtin  # nothing stored, nothing shipped for this key
    store.save(builtin, 0.0612, CALIBRATED)
    calibrated = apply_default_threshold(builtin, store)
    assert calibrated.threshold == pytest.approx(0.0612)
    assert calibrated.threshold_source == CALIBRATED
    assert calibrated.embedding_key == builtin.embedding_key  # galleries stay valid
    user = builtin.with_threshold(0.2, ThresholdSource(kind="user", description="named"))
    assert apply_default_threshold(user, store) is user  # a user's threshold is never replaced
    assert store.history()[0]["source"]["per_group_fmr"] == {"sex=F": 1.4e-3, "sex=M": 8e-4}


@pytest.mark.parametrize("default", [True, False], ids=["default-cascade-mirror", "hog-only-plain"])
def test_shipped_calibration_applies_when_nothing_is_stored(memory_db, default: bool) -> None:
    fallbacks, mirror = (DEFAULT_FALLBACKS, DEFAULT_MIRROR_AVERAGE) if default else ((), False)
    shipped = shipped_calibration("Dlib", DEFAULT_DETECTOR, DEFAULT_ALIGNMENT, fallbacks, mirror)
    assert shipped is not None, "core/calibrations.json must ship the default configuration's calibration"
    threshold, source = shipped
    assert source.kind == "calibrated" and source.target_fmr == pytest.approx(1e-3)
    assert source.achieved_fmr is not None and source.achieved_fmr <= 1e-3
    assert source.dataset_fingerprint and dict(source.per_group_fmr)
    config = replace(make_config(), fallback_detectors=fallbacks, mirror_average=mirror)
    builtin = config.with_threshold(0.07, ThresholdSource(kind="deepface_builtin", description="builtin"))
    applied = apply_default_threshold(builtin, ThresholdStore(memory_db))
    assert applied.threshold == pytest.approx(threshold) and applied.threshold_source == source
    other = replace(builtin, mirror_average=not mirror)  # another pipeline never borrows this calibration
    assert apply_default_threshold(other, ThresholdStore(memory_db)).threshold != pytest.approx(threshold)


def test_search_record_stores_threshold_and_its_provenance(memory_db, tmp_path: Path) -> None:
    config = make_config(threshold=0.5).with_threshold(0.5, CALIBRATED)
    galleries = GalleryStore(memory_db)
    galleries.create("g", config)
    vectors = random_unit(5, seed=3)
    face = Face(0, 0, 10, 10, 1.0, "dlib")
    galleries.enroll(
        "g", [EnrollItem(f"s{i}", Embedding(vectors[i], f"{i:064d}", face, 1, config), f"{i}.jpg") for i in range(5)]
    )
    log = AuditLog(memory_db, key_path=tmp_path / "key")
    service = AuditedEngine(AuditSession(log, AuditContext(purpose="test", case_ref="case-1"),
                                         actor_for(memory_db, "op1", "operator")), Engine(config), galleries)
    probe = Embedding(vectors[2] + np.float32(0.01), "a" * 64, face, 1, config)
    audited = service.search("g", probe, top_k=3)
    assert audited.result.config.threshold_source == CALIBRATED
    record = log.get(audited.seq).record.to_dict()
    stored = record["model_config"]
    assert stored["threshold_source"]["kind"] == "calibrated"
    assert stored["threshold_source"]["dataset_fingerprint"] == "f" * 64
    assert stored["threshold_source"]["target_fmr"] is not None
    assert stored["alignment"] == "dlib_5pt" and stored["embedding_key"] == config.embedding_key
    assert record["candidates"][0]["subject_id"] == "s2"
