"""Verify (1:1) follows the threshold policy as searches do, and the designated evaluation is the one quoted.

Real engine, audit log and evaluation store; fake face models (:mod:`tests.fakes`). The
engine's default threshold is 0.3, so under the built-in policy 0.35 is looser (needs a
written reason) and 0.4 is past the hard limit (0.375).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit import (
    AuditContext,
    AuditedEngine,
    AuditLog,
    AuditSession,
    EvaluationConfig,
    EvaluationStore,
    evaluate_embeddings,
)
from audit.policy import ThresholdBeyondLimit, ThresholdReasonRequired
from core import BadInput, Database, GalleryStore
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="check the applicant is the card holder", case_ref="CASE-9")
REASON = "the card photo is twelve years old; the supervisor approved a looser check"


@pytest.fixture
def galleries(db: Database) -> GalleryStore:
    return GalleryStore(db)


@pytest.fixture
def operator(log: AuditLog, db: Database, fake_engine, galleries: GalleryStore) -> AuditedEngine:
    return AuditedEngine(AuditSession(log, CTX, actor_for(db, "alice", "operator")), fake_engine, galleries)


@pytest.fixture
def admin(log: AuditLog, db: Database, fake_engine, galleries: GalleryStore) -> AuditedEngine:
    ctx = AuditContext(purpose="set the deployment's threshold policy")
    return AuditedEngine(AuditSession(log, ctx, actor_for(db, "root", "admin")), fake_engine, galleries)


def stored_evaluation(db: Database, embedding_key: str) -> str:
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(30), 3)
    x = rng.normal(size=(30, 16))[subjects] + 0.6 * rng.normal(size=(90, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = pd.DataFrame({"sex": np.where(subjects % 2, "F", "M")})
    report = evaluate_embeddings(x, subjects, labels, EvaluationConfig(by=(("sex",),), default_threshold=0.3,
                                                                      bootstrap=10),
                                 dataset_fingerprint="fake", model_config={"model": "Dlib",
                                                                           "embedding_key": embedding_key})
    return EvaluationStore(db).save(report, dataset_name="fake_set")


def pair() -> tuple[bytes, bytes]:
    return face_png("s1"), face_png("s1", variant=3)


def last(log: AuditLog):  # noqa: ANN201
    return log.get(log.size()).record


def test_a_verification_at_the_default_is_within_and_says_so(operator: AuditedEngine, log: AuditLog) -> None:
    done = operator.verify(*pair())
    flag = log.get(done.seq).record.details["threshold_policy"]
    assert flag["status"] == "within" and flag["warning"] is None and flag["reason"] is None


def test_a_looser_verification_needs_a_reason_and_is_refused_without_one(operator: AuditedEngine,
                                                                        log: AuditLog) -> None:
    shown = operator.verify_threshold_check(0.35)
    assert shown.status == "looser" and "verification needs a written reason" in (shown.warning or "")
    assert "no designated evaluation" in (shown.warning or "")
    for reason in (None, "   ", "because"):
        before = log.size()
        with pytest.raises(ThresholdReasonRequired):
            operator.verify(*pair(), threshold=0.35, threshold_reason=reason)
        assert log.size() == before + 1
        refusal = last(log)
        assert (refusal.action, refusal.outcome) == ("refused", "threshold_reason_required")
        assert refusal.details["attempted"] == "verify"
        assert refusal.details["threshold_policy"]["warning"] == shown.warning
    assert not [e for e in log.list() if e.record.action == "verify"]


def test_a_looser_verification_with_a_reason_runs_flagged_with_reason_and_warning(operator: AuditedEngine,
                                                                                 log: AuditLog) -> None:
    shown = operator.verify_threshold_check(0.35).warning
    done = operator.verify(*pair(), threshold=0.35, threshold_reason=REASON)
    record = log.get(done.seq).record
    flag = record.details["threshold_policy"]
    assert record.action == "verify" and flag["status"] == "looser"
    assert flag["reason"] == REASON and flag["warning"] == shown


def test_past_the_hard_limit_a_verification_is_refused_whatever_the_reason(operator: AuditedEngine,
                                                                          log: AuditLog) -> None:
    with pytest.raises(ThresholdBeyondLimit):
        operator.verify(*pair(), threshold=0.4, threshold_reason=REASON)
    assert (last(log).action, last(log).outcome) == ("refused", "threshold_beyond_limit")


def test_the_policy_for_every_gallery_governs_verify(admin: AuditedEngine, operator: AuditedEngine) -> None:
    admin.set_threshold_policy(0.2, 0.25, reason="the board asked for stricter checks after the audit")
    assert operator.verify_threshold_check(0.22).status == "looser"
    assert operator.verify_threshold_check(0.3).status == "beyond_limit"  # even the engine's default
    admin.set_threshold_policy(0.2, 0.25, reason="a gallery's own policy does not govern 1:1", gallery_name="g")
    assert operator.threshold_policy(None).gallery_name is None


def test_the_designated_evaluation_is_recorded_and_quoted_in_the_warning(
    admin: AuditedEngine, operator: AuditedEngine, db: Database, fake_engine, log: AuditLog
) -> None:
    run_id = stored_evaluation(db, fake_engine.config.embedding_key)
    done = admin.set_threshold_policy(None, None, reason="designate the congress evaluation", evaluation=run_id)
    assert log.get(done.seq).record.details["evaluation"] == run_id
    assert operator.threshold_policy(None).evaluation == run_id
    found = operator.designated_evaluation(None)
    assert found is not None and found[0] == run_id
    fmr = found[1].false_match_rate_at(1.0 - 0.35)
    warning = operator.verify_threshold_check(0.35).warning or ""
    assert f"{fmr:.2%}" in warning and run_id in warning


def test_an_unknown_or_foreign_evaluation_cannot_be_designated_or_used(
    admin: AuditedEngine, operator: AuditedEngine, db: Database, log: AuditLog
) -> None:
    with pytest.raises(BadInput, match="no stored evaluation"):
        admin.set_threshold_policy(None, None, reason="designate a run that is not here", evaluation="nope")
    assert (last(log).action, last(log).outcome) == ("refused", "bad_input")
    foreign = stored_evaluation(db, "another-model-key")
    admin.set_threshold_policy(None, None, reason="designate a run of another model", evaluation=foreign)
    with pytest.raises(BadInput, match="another model configuration"):
        operator.designated_evaluation(None)
