"""The threshold policy (audit.policy) through the audited service: looser needs a reason, past the limit is refused.

Real engine, gallery store and audit log; fake face models (:mod:`tests.fakes`). The
gallery's default threshold is 0.3 (the fake engine's configuration), so with the built-in
policy 0.3 is the loosest threshold without a reason and 0.375 (1.25 x) the hard limit.
"""

from __future__ import annotations

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession, Forbidden
from audit.policy import ThresholdBeyondLimit, ThresholdReasonRequired
from core import BadInput, Database, EnrollItem, GalleryStore
from tests.auth import actor_for
from tests.conftest import make_config
from tests.fakes import face_png

CTX = AuditContext(purpose="robbery investigation", case_ref="CASE-7")
REASON = "suspect photo is a low-light CCTV still; the supervisor approved a wider net"


@pytest.fixture
def galleries(db: Database, fake_engine) -> GalleryStore:
    store = GalleryStore(db)
    for name in ("g", "h"):
        store.create(name, make_config())
        store.enroll(name, [EnrollItem("s1", fake_engine.embed(face_png("s1")), "s1.png")])
    return store


@pytest.fixture
def operator(log: AuditLog, db: Database, fake_engine, galleries: GalleryStore) -> AuditedEngine:
    return AuditedEngine(AuditSession(log, CTX, actor_for(db, "alice", "operator")), fake_engine, galleries)


@pytest.fixture
def admin(log: AuditLog, db: Database, fake_engine, galleries: GalleryStore) -> AuditedEngine:
    ctx = AuditContext(purpose="set the deployment's threshold policy")
    return AuditedEngine(AuditSession(log, ctx, actor_for(db, "root", "admin")), fake_engine, galleries)


def probe() -> bytes:
    return face_png("s1", variant=3)


def last(log: AuditLog):  # noqa: ANN201
    return log.get(log.size()).record


def test_the_default_and_stricter_thresholds_are_within_the_built_in_policy(operator: AuditedEngine,
                                                                            log: AuditLog) -> None:
    for threshold in (None, 0.3, 0.1):
        done = operator.search("g", probe(), threshold=threshold)
        flag = log.get(done.seq).record.details["threshold_policy"]
        assert flag["status"] == "within" and flag["policy_seq"] is None
        assert flag["warning"] is None and flag["reason"] is None
        assert (flag["default"], flag["loosest"], flag["hard_limit"]) == ("0.300000", "0.300000", "0.375000")
        assert flag["threshold"] == ("0.300000" if threshold is None else f"{threshold:.6f}")


def test_a_looser_search_without_a_reason_is_refused_and_recorded_with_the_warning(operator: AuditedEngine,
                                                                                  log: AuditLog) -> None:
    shown = operator.threshold_check("g", 0.35)
    assert shown.status == "looser" and shown.warning is not None and "0.350" in shown.warning
    for reason in (None, "", "   ", "because"):  # nothing, blank, too short to be a reason
        before = log.size()
        with pytest.raises(ThresholdReasonRequired, match="needs a written reason"):
            operator.search("g", probe(), threshold=0.35, threshold_reason=reason)
        assert log.size() == before + 1  # the refusal, and no search
        refusal = last(log)
        assert (refusal.action, refusal.outcome, refusal.operator) == ("refused", "threshold_reason_required", "alice")
        assert refusal.details["attempted"] == "search" and refusal.details["gallery_name"] == "g"
        assert refusal.details["threshold_policy"]["warning"] == shown.warning
        assert refusal.details["threshold_policy"]["status"] == "looser"
    assert not [e for e in log.list() if e.record.action == "search"]


def test_a_looser_search_with_a_reason_runs_and_is_flagged_with_the_reason_and_the_warning(
    operator: AuditedEngine, log: AuditLog
) -> None:
    shown = operator.threshold_check("g", 0.35).warning
    done = operator.search("g", probe(), threshold=0.35, threshold_reason=f"  {REASON} ")
    record = log.get(done.seq).record
    assert record.action == "search" and record.details["threshold"] == "0.350000"
    flag = record.details["threshold_policy"]
    assert flag["status"] == "looser" and flag["reason"] == REASON and flag["warning"] == shown
    assert record.model_config is not None and record.model_config["threshold_source"]["kind"] == "user"


def test_past_the_hard_limit_is_refused_whatever_the_reason(operator: AuditedEngine, log: AuditLog) -> None:
    assert operator.threshold_check("g", 0.376).status == "beyond_limit"
    with pytest.raises(ThresholdBeyondLimit, match="hard limit 0.375"):
        operator.search("g", probe(), threshold=0.376, threshold_reason=REASON)
    refusal = last(log)
    assert (refusal.action, refusal.outcome) == ("refused", "threshold_beyond_limit")
    assert refusal.details["threshold_policy"]["reason"] == REASON  # what was offered, refused
    with pytest.raises(ThresholdBeyondLimit):
        operator.search_many("g", [probe(), probe()], threshold=1.0, threshold_reason=REASON)
    assert [r.record.action for r in log.list()] == ["refused", "refused"]


def test_an_admin_sets_the_policy_and_it_is_a_record(admin: AuditedEngine, operator: AuditedEngine,
                                                     log: AuditLog) -> None:
    done = admin.set_threshold_policy(0.4, 0.6, reason="the board accepted 0.4 after the 2026 evaluation")
    policy = log.get(done.seq).record
    assert (policy.action, policy.outcome, policy.operator) == ("threshold_policy", "ok", "root")
    assert policy.details["loosest"] == "0.400000" and policy.details["hard_limit"] == "0.600000"
    assert done.result.seq == done.seq and operator.threshold_policy("g").seq == done.seq
    within = operator.search("g", probe(), threshold=0.39)
    assert log.get(within.seq).record.details["threshold_policy"]["policy_seq"] == done.seq
    assert log.get(within.seq).record.details["threshold_policy"]["status"] == "within"
    with pytest.raises(ThresholdReasonRequired):
        operator.search("g", probe(), threshold=0.5)
    looser = operator.search("g", probe(), threshold=0.5, threshold_reason=REASON)
    assert log.get(looser.seq).record.details["threshold_policy"]["status"] == "looser"
    with pytest.raises(ThresholdBeyondLimit):
        operator.search("g", probe(), threshold=0.61, threshold_reason=REASON)
    # back to the gallery's default (loosest: the calibrated default; hard limit: 1.25 x)
    admin.set_threshold_policy(None, None, reason="back to the calibrated default")
    with pytest.raises(ThresholdReasonRequired):
        operator.search("g", probe(), threshold=0.35)
    assert log.verify().ok


def test_a_gallery_policy_overrides_the_deployment_wide_one(admin: AuditedEngine, operator: AuditedEngine) -> None:
    admin.set_threshold_policy(0.2, 0.25, reason="a strict default for every gallery")
    admin.set_threshold_policy(0.35, None, gallery_name="h", reason="gallery h holds a vetted watch list only")
    assert operator.threshold_check("g", 0.3).status == "beyond_limit"
    assert operator.threshold_check("h", 0.3).status == "within"
    assert operator.threshold_check("h", 0.4).status == "looser"  # 0.35 x 1.25 = 0.4375
    assert operator.threshold_check("h", 0.44).status == "beyond_limit"


def test_only_admins_set_the_policy_and_bad_values_are_refused(admin: AuditedEngine, operator: AuditedEngine,
                                                               log: AuditLog) -> None:
    with pytest.raises(Forbidden):
        operator.set_threshold_policy(1.5, 2.0, reason="I want more candidates today")
    refusal = last(log)
    assert (refusal.action, refusal.outcome, refusal.details["attempted"]) == ("refused", "forbidden",
                                                                               "threshold_policy")
    for loosest, hard, reason in ((0.0, None, "zero is no threshold"), (0.4, 0.3, "hard below the loosest"),
                                  (float("nan"), None, "not a number"), (0.4, 2.5, "past 2"), (0.4, None, "  ")):
        with pytest.raises(BadInput):
            admin.set_threshold_policy(loosest, hard, reason=reason)
        assert (last(log).action, last(log).outcome) == ("refused", "bad_input")
    assert admin.threshold_policy().seq is None  # nothing took effect
    assert operator.threshold_check("g", 1.5).status == "beyond_limit"


def test_a_policy_record_cannot_be_faked_by_a_refused_attempt(operator: AuditedEngine, log: AuditLog,
                                                             db: Database) -> None:
    """Only an ``ok`` record by an admin's session sets a policy: a refused one leaves the built-in policy."""
    with pytest.raises(Forbidden):
        operator.set_threshold_policy(1.9, 2.0, reason="an operator trying to loosen their own searches")
    assert operator.threshold_policy("g").seq is None
    with pytest.raises(ThresholdBeyondLimit):
        operator.search("g", probe(), threshold=1.9, threshold_reason=REASON)

