"""Reviewers' own error rates (audit.evaluation.reviewers) equal hand counts over a scripted blind session."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest

from audit import (
    AuditLog,
    Forbidden,
    audited_reviewer_rates,
    blind_batches,
    blind_decide,
    blind_next,
    open_batch,
    reveal,
    reviewer_rates,
)
from audit.evaluation.identification import wilson_interval
from audit.trail.store import AuditFilter
from tests.audit.test_blind_review import galleries as galleries  # noqa: F401 (fixture)
from tests.audit.test_blind_review import gate, queries


class Clock:
    """A wall clock the test moves (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("audit.blind.time", SimpleNamespace(time=fake.time))
    return fake


def scripted(log: AuditLog, clock: Clock, name: str, rule, seconds, limit: int | None = None
             ) -> dict[int, tuple[str, float]]:
    """Reviewer ``name`` decides each item (the first ``limit``) by ``rule(plan item)``, taking ``seconds(n)``."""
    batch = next(b for b in blind_batches(log) if b.revealed_seq is None)
    session = gate(log, name, "reviewer")
    done: dict[int, tuple[str, float]] = {}
    while (limit is None or len(done) < limit) and (item := blind_next(session)) is not None:
        plan = next(i for i in batch.items if batch.item_id(name, i.index) == item.item_id)
        took = seconds(len(done))
        clock.now += took
        decision = rule(plan)
        blind_decide(session, item.ticket, decision)
        done[plan.index] = (decision, took)
    return done


def test_rates_equal_hand_counts(log: AuditLog, galleries, clock: Clock) -> None:  # noqa: F811
    carol = gate(log, "carol", "auditor")
    open_batch(carol, galleries, queries(log, n=4, per=2), "fillers", filler_share=0.5)
    batch = blind_batches(log)[0]
    filler = {i.index: i.filler for i in batch.items}
    # rev1 confirms every real candidate and the fillers of even plan index; rev2 rejects every filler
    # and the real candidates of rank face "-1"; rev2 decides only the first 10 of its items
    one = scripted(log, clock, "rev1", lambda p: "confirm" if not p.filler or p.index % 2 == 0 else "reject",
                   lambda n: 2.0 + n)
    rule2 = lambda p: "reject" if p.filler or p.face_id.endswith("-1") else "confirm"  # noqa: E731
    two = scripted(log, clock, "rev2", rule2, lambda n: 5.0 if n % 2 else 1.5, limit=10)
    assert len(one) == 16 and len(two) == 10
    reveal(carol, batch.batch_id)
    rates = {r.reviewer: r for r in reviewer_rates(log).reviewers}
    assert set(rates) == {"rev1", "rev2"}

    for name, mine, other in (("rev1", one, two), ("rev2", two, one)):
        r = rates[name]
        fillers = [i for i in mine if filler[i]]
        false_confirms = sum(mine[i][0] == "confirm" for i in fillers)
        both = [i for i in mine if i in other]
        agree = sum(mine[i][0] == other[i][0] for i in both)
        seconds = [took for _, took in mine.values()]
        assert (r.decisions, r.filler_decisions, r.false_confirms) == (len(mine), len(fillers), false_confirms)
        assert r.false_confirm_rate == pytest.approx(false_confirms / len(fillers))
        assert r.false_confirm_interval == pytest.approx(wilson_interval(false_confirms, len(fillers)))
        assert (r.agreement_pairs, r.agreements) == (len(both), agree)
        assert r.agreement_rate == pytest.approx(agree / len(both))
        assert r.agreement_interval == pytest.approx(wilson_interval(agree, len(both)))
        assert r.candidate_decisions == len(mine) - len(fillers)
        assert r.candidate_confirms == sum(mine[i][0] == "confirm" for i in mine if not filler[i])
        assert r.mean_seconds == pytest.approx(statistics.fmean(seconds))
        assert r.median_seconds == pytest.approx(statistics.median(seconds))
        lo, hi = r.mean_seconds_interval
        assert lo is not None and hi is not None and min(seconds) <= lo <= r.mean_seconds <= hi <= max(seconds)
    assert rates["rev2"].false_confirms == 0 and rates["rev1"].false_confirms > 0


def test_open_batches_are_not_measured_and_a_filler_free_reviewer_has_no_rate(log: AuditLog, galleries,
                                                                               clock: Clock) -> None:  # noqa: F811
    carol = gate(log, "carol", "auditor")
    open_batch(carol, galleries, queries(log, n=1, per=2), "fillers", filler_share=0.0)
    scripted(log, clock, "rev1", lambda p: "confirm", lambda n: 1.0)
    assert reviewer_rates(log).reviewers == ()  # still open: nothing is measured
    reveal(carol, blind_batches(log)[0].batch_id)
    (r,) = reviewer_rates(log).reviewers
    assert r.filler_decisions == 0 and r.false_confirm_rate is None and r.false_confirm_interval == (None, None)
    assert r.agreement_pairs == 0 and r.agreement_rate is None
    assert r.to_dict()["false_confirm_interval"] == [None, None]


def test_the_computation_is_recorded_without_the_rates_and_only_auditors_run_it(log: AuditLog, galleries,
                                                                                 clock: Clock) -> None:  # noqa: F811
    carol = gate(log, "carol", "auditor")
    open_batch(carol, galleries, queries(log, n=2, per=2), "fillers", filler_share=0.5)
    batch_id = blind_batches(log)[0].batch_id
    scripted(log, clock, "rev1", lambda p: "confirm", lambda n: 1.0)
    reveal(carol, batch_id)
    rates, entry = audited_reviewer_rates(carol)
    record = entry.record
    assert record.action == "review_rates" and record.operator == "carol"
    assert record.details["batches"] == [batch_id] and record.details["result_sha256"] == rates.sha256()
    assert record.details["decisions"] == {"rev1": 8}  # 4 candidates and as many fillers
    assert "false_confirm" not in record.canonical().decode()
    for name, role in (("rev1", "reviewer"), ("root", "admin"), ("alice", "operator")):
        with pytest.raises(Forbidden):
            audited_reviewer_rates(gate(log, name, role))
    assert rates.sha256() == reviewer_rates(log, [batch_id]).sha256()  # anyone with the log reproduces it


def test_time_per_decision_runs_from_the_first_serving(log: AuditLog, galleries, clock: Clock) -> None:  # noqa: F811
    carol = gate(log, "carol", "auditor")
    open_batch(carol, galleries, queries(log, n=1, per=1), "fillers", filler_share=0.0)
    first = blind_next(gate(log, "rev1", "reviewer"))
    clock.now += 5.0
    again = blind_next(gate(log, "rev1", "reviewer"))  # a reload, or another session: the same ticket
    assert first is not None and again is not None and again.ticket == first.ticket
    clock.now += 3.0
    decision = blind_decide(gate(log, "rev1", "reviewer"), again.ticket, "confirm").record
    assert decision.latency_ms == "8000.000"
    served = log.list(AuditFilter(action="blind_serve"))
    assert len(served) == 1 and set(served[0].record.details) == {"mode", "batch_id", "item", "served_ms", "auth"}
    assert served[0].record.details["item"] == first.item_id and served[0].record.target_seq is None
