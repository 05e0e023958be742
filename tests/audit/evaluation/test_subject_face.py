"""The subject-face rule belongs to the dataset: an LFW folder's subject is its central face, a manifest's the largest.

The fake pipeline here models LFW's hard case: in a photo showing two people, the larger
face is a bystander and the labelled person is the one the crop is centred on. An
evaluation that embeds the largest face scores the bystander as the subject; one that
follows LFW's protocol scores the subject. The rule, and who declared it, is in the run and
in its signed record, and a stored run under another rule is never handed back as this one.
"""

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
    parse_threshold,
    run_evaluation,
)
from audit.evaluation.datasets import LFW_SUBJECT_FACE, load_lfw, load_manifest
from core import BadInput, Database, Engine
from core.config import FacePolicy
from core.results import Face
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import FakePipeline, face_png, fake_vector

CTX = AuditContext(purpose="accuracy on an LFW-format set", case_ref="EVAL-LFW")
BYSTANDER = fake_vector(np.full((8, 8, 3), 7, np.uint8), np.full((8, 8, 3), 9, np.uint8))


class BystanderPipeline(FakePipeline):
    """The fake pipeline, where the largest face of a several-face photo is a bystander's, the central the subject's."""

    def __init__(self) -> None:
        super().__init__()
        self.policies: list[FacePolicy] = []

    def embed(self, rgb: np.ndarray, policy: FacePolicy = "largest") -> tuple[np.ndarray, Face, int]:
        vector, face, count = super().embed(rgb, policy)
        self.policies.append(policy)
        return (BYSTANDER if count > 1 and policy == "largest" else vector), face, count


def lfw_folder(root: Path, people: int = 8, per: int = 3) -> Path:
    """``images/<Name>/<Name>_NNNN.jpg`` and ``labels.csv``; every person's second photo shows a bystander too."""
    rows = ["image,sex"]
    for p in range(people):
        name = f"Person_{p:02d}"
        (root / "images" / name).mkdir(parents=True)
        for k in range(1, per + 1):
            rel = f"images/{name}/{name}_{k:04d}.jpg"
            (root / rel).write_bytes(face_png(name, k, faces=2 if k == 2 else 1))
            rows.append(f"{rel},{'F' if p % 2 else 'M'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def pipeline() -> BystanderPipeline:
    return BystanderPipeline()


@pytest.fixture
def engine(pipeline: BystanderPipeline) -> Engine:
    engine = Engine(make_config(threshold=0.3))  # the engine's own policy stays "largest"
    engine._pipeline = pipeline
    return engine


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(Database(tmp_path / "runs.duckdb"), key_path=tmp_path / "key")


def evaluate(log: AuditLog, engine: Engine, source: DatasetSource, **kw):
    request = EvaluationRequest(source, by=(), thresholds=(parse_threshold("0.3"),), include_default=False,
                                bootstrap=0, workers=1, **kw)
    session = AuditSession(log, CTX, actor_for(log.db, "auditor-9", "auditor"))
    return run_evaluation(request, engine, EvaluationStores.on(log.db), session)


def overall(run, name: str = "0.3") -> dict:
    return next(r for r in run.report.rates if r["pairing"] == "all" and r["threshold_name"] == name)


def test_loaders_declare_their_rule(tmp_path) -> None:
    folder = lfw_folder(tmp_path)
    lfw = load_lfw(folder)
    assert (lfw.subject_face, lfw.subject_face_reason) == LFW_SUBJECT_FACE
    assert "centred" in lfw.subject_face_reason
    manifest = load_manifest(folder / "labels.csv", "sex")
    assert manifest.subject_face == "largest" and manifest.subject_face_reason.startswith("manifest default")
    with pytest.raises(BadInput, match=r"unknown subject-face rule 'middle'.*'central'"):
        lfw.with_subject_face("middle", "a typo")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="unknown subject-face rule"):
        DatasetSource(lfw=folder, subject_face="nearest")  # type: ignore[arg-type]


def test_an_lfw_folder_is_embedded_at_its_central_face_whatever_the_engine_policy(tmp_path, log, engine,
                                                                                  pipeline) -> None:
    folder = lfw_folder(tmp_path / "lfw")
    run = evaluate(log, engine, DatasetSource(lfw=folder))
    assert set(pipeline.policies) == {"central"} and engine.face_policy == "largest"
    rates = overall(run)
    assert rates["fnmr"] == 0.0 and rates["fmr"] == 0.0  # every photo embedded its labelled person
    assert (run.report.run["subject_face"], run.report.run["subject_face_reason"]) == LFW_SUBJECT_FACE
    details = log.get(run.audit_seq).record.details
    assert (details["subject_face"], details["subject_face_reason"]) == LFW_SUBJECT_FACE
    assert EvaluationStores.on(log.db).runs.load(run.run_id).run["subject_face"] == "central"


def test_asking_for_the_largest_face_scores_the_bystanders_and_says_who_asked(tmp_path, log, engine) -> None:
    folder = lfw_folder(tmp_path / "lfw")
    run = evaluate(log, engine, DatasetSource(lfw=folder, subject_face="largest"))
    rates = overall(run)
    assert rates["fnmr"] > 0 and rates["fmr"] > 0  # the bystander matched everyone's second photo
    details = log.get(run.audit_seq).record.details
    assert details["subject_face"] == "largest"
    assert details["subject_face_reason"].startswith("asked for by the evaluation, in place of the dataset's 'central'")


def test_a_stored_run_under_another_rule_is_not_reused(tmp_path, log, engine, pipeline) -> None:
    folder = lfw_folder(tmp_path / "lfw")
    largest = evaluate(log, engine, DatasetSource(lfw=folder, subject_face="largest"), reuse_stored=True)
    central = evaluate(log, engine, DatasetSource(lfw=folder), reuse_stored=True)
    assert not central.reused and central.run_id != largest.run_id
    assert central.report.run["subject_face"] == "central"
    again = evaluate(log, engine, DatasetSource(lfw=folder), reuse_stored=True)
    assert again.reused and again.run_id == central.run_id


def test_a_manifest_keeps_the_largest_face_unless_asked(tmp_path, log, engine, pipeline) -> None:
    folder = lfw_folder(tmp_path / "set")
    (folder / "set.csv").write_text("image,person\n" + "".join(
        f"{p.relative_to(folder)},{p.parent.name}\n" for p in sorted((folder / "images").glob("*/*.jpg"))))
    plain = evaluate(log, engine, DatasetSource(manifest=folder / "set.csv", subject_column="person"))
    assert plain.report.run["subject_face"] == "largest" and overall(plain)["fnmr"] > 0
    asked = evaluate(log, engine, DatasetSource(manifest=folder / "set.csv", subject_column="person",
                                                subject_face="central"))
    assert asked.report.run["subject_face"] == "central" and overall(asked)["fnmr"] == 0.0
