"""The Overview's counting: outcomes, who searched, who confirmed, pending by age, looser searches, links."""

from __future__ import annotations

import datetime as dt

import pytest

from audit import overview_counts
from audit.errors import RecordNotFound
from audit.overview import AGE_BANDS, _Snapshot, count_overview
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord, Candidate, GalleryRef
from audit.trail.review import CandidateStatus, MatchStatus, match_status
from audit.trail.store import AuditFilter

TODAY = dt.date(2026, 3, 31)
GALLERY = GalleryRef("arrest_photos", "10-" + "0" * 32, 10)
OTHER = GalleryRef("visitors", "20-" + "0" * 32, 20)


def search(seq: int, operator: str, outcome: str, *, days_ago: int = 0, gallery: GalleryRef = GALLERY,
           faces: int = 1, policy: str = "within", purpose: str = "identify a suspect") -> AuditRecord:
    when = (dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC) - dt.timedelta(days=days_ago)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    candidates = tuple(Candidate(f"S{seq}-{k}", f"f{seq}-{k}", "0.050000", "0.950000", k + 1)
                       for k in range(faces)) if outcome == "ok" else ()
    return AuditRecord(seq=seq, started_at=when, ended_at=when, action="search", outcome=outcome, operator=operator,
                       purpose=purpose, gallery=gallery, candidates=candidates,
                       details={"threshold": "0.070000", "threshold_policy": {"status": policy}})


def status(record: AuditRecord, *states: str, confirmed_by: tuple[str, ...] = (),
           rejected_by: tuple[str, ...] = ()) -> MatchStatus:
    cands = tuple(CandidateStatus(c.face_id, c.subject_id, c.rank, s,
                                  confirmed_by if s == "confirmed" else (),
                                  rejected_by if s == "rejected" else ())
                  for c, s in zip(record.candidates, states, strict=True))
    return MatchStatus(record.seq, record.operator, record.action, cands)


def test_outcomes_operators_galleries_and_the_share_of_searches_returning_a_candidate() -> None:
    records = [search(1, "ann", "ok"), search(2, "ann", "no_match"), search(3, "bob", "ok", gallery=OTHER),
               search(4, "bob", "no_face"), search(5, "bob", "no_match")]
    counts = count_overview(records, [status(records[0], "pending"), status(records[2], "pending")], TODAY)
    assert (counts.searches, counts.with_candidates, counts.without_candidates, counts.other_outcomes) == (5, 2, 2, 1)
    assert counts.candidate_share == 0.5  # of the 4 searches that ran to an answer, not of all 5
    assert [(r["operator"], r["searches"], r["with_candidates"], r["without_candidates"], r["other"])
            for r in counts.by_operator] == [("bob", 3, 1, 1, 1), ("ann", 2, 1, 1, 0)]
    assert [(r["gallery"], r["size"], r["searches"]) for r in counts.by_gallery] == [
        ("arrest_photos", 10, 4), ("visitors", 20, 1)]
    assert counts.by_operator[0]["link"] == {"operator": "bob"}
    assert counts.by_gallery[1]["link"] == {"gallery": "visitors"}
    assert counts.links["with_candidates"] == {"outcome": "candidates"}
    assert counts.links["without_candidates"] == {"outcome": "none"}


def test_no_search_has_no_share_rather_than_zero() -> None:
    assert count_overview([], [], TODAY).candidate_share is None


def test_pending_counts_searches_and_candidates_by_age_with_links_that_list_the_same_searches() -> None:
    records = [search(1, "ann", "ok", faces=3, days_ago=0), search(2, "ann", "ok", faces=1, days_ago=3),
               search(3, "ann", "ok", faces=2, days_ago=10), search(4, "ann", "ok", faces=1, days_ago=45),
               search(5, "ann", "ok", faces=1, days_ago=6)]
    statuses = [status(records[0], "pending", "pending", "rejected", rejected_by=("rev1",)),
                status(records[1], "pending"), status(records[2], "confirmed", "pending", confirmed_by=("rev1", "rev2")),
                status(records[3], "pending"), status(records[4], "confirmed", confirmed_by=("rev1", "rev2"))]
    counts = count_overview(records, statuses, TODAY)
    assert counts.pending_queries == 4 and counts.pending_candidates == 5  # searches, and candidates: both named
    bands = {b["age"]: (b["queries"], b["candidates"]) for b in counts.pending_by_age}
    assert bands == {"today": (1, 2), "1-6 days": (1, 1), "7-29 days": (1, 1), "30 days or more": (1, 1)}
    links = {b["age"]: b["link"] for b in counts.pending_by_age}
    assert links["today"] == {"review": "pending", "since": "2026-03-31", "until": "2026-03-31"}
    assert links["1-6 days"] == {"review": "pending", "since": "2026-03-25", "until": "2026-03-30"}
    assert links["30 days or more"] == {"review": "pending", "until": "2026-03-01"}  # no lower bound
    assert [b["age"] for b in counts.pending_by_age] == [b[0] for b in AGE_BANDS]
    # every band's date range (inclusive) holds exactly the pending searches it counts
    for band in counts.pending_by_age:
        since = dt.date.fromisoformat(band["link"].get("since", "1970-01-01"))
        until = dt.date.fromisoformat(band["link"]["until"])
        listed = [s for s in statuses if any(c.status == "pending" for c in s.candidates)
                  and since <= dt.date.fromisoformat(records[s.seq - 1].started_at[:10]) <= until]
        assert len(listed) == band["queries"]
    assert (counts.confirmed_queries, counts.confirmed_candidates) == (2, 2)
    assert (counts.rejected_queries, counts.rejected_candidates) == (1, 1)


def test_who_confirmed_counts_decisions_the_rule_counts_per_reviewer() -> None:
    records = [search(1, "ann", "ok", faces=2), search(2, "ann", "ok")]
    statuses = [status(records[0], "confirmed", "rejected", confirmed_by=("rev1", "rev2"), rejected_by=("rev2",)),
                status(records[1], "confirmed", confirmed_by=("rev1", "rev3"))]
    counts = count_overview(records, statuses, TODAY)
    assert list(counts.reviewers) == [{"reviewer": "rev1", "confirmed": 2, "rejected": 0},
                                      {"reviewer": "rev2", "confirmed": 1, "rejected": 1},
                                      {"reviewer": "rev3", "confirmed": 1, "rejected": 0}]


def test_looser_searches_refusals_and_purposes_in_full() -> None:
    long_purpose = "identify the person seen leaving the premises at 03:10 on the night of the burglary, case file 7"
    records = [search(1, "ann", "ok", policy="looser", purpose=long_purpose), search(2, "ann", "no_match"),
               search(3, "ann", "no_match", policy="looser", purpose=long_purpose),
               AuditRecord(seq=4, started_at=search(4, "x", "ok").started_at, ended_at=search(4, "x", "ok").ended_at,
                           action="refused", outcome="threshold_beyond_limit", operator="ann")]
    counts = count_overview(records, [status(records[0], "pending")], TODAY)
    assert counts.looser == 2 and counts.refused == 1
    assert counts.links["looser"] == {"looser": "1"}
    assert counts.by_purpose[0] == {"purpose": long_purpose, "queries": 2}  # never truncated


def test_a_status_of_a_record_without_candidates_is_ignored() -> None:
    records = [search(1, "ann", "no_match")]
    stray = MatchStatus(1, "ann", "search", (CandidateStatus("f", "s", 1, "pending", (), ()),))
    assert count_overview(records, [stray], TODAY).pending_queries == 0


def test_overview_counts_over_a_real_log_agrees_with_the_match_status_of_each_search(log: AuditLog) -> None:
    for i in range(4):
        log.append({"action": "search", "outcome": "ok" if i % 2 == 0 else "no_match", "operator": "ann",
                    "purpose": "identify a suspect", "gallery": GALLERY.to_dict(),
                    "candidates": [{"subject_id": f"S{i}", "face_id": f"f{i}", "distance": "0.050000",
                                    "similarity": "0.950000", "rank": 1}] if i % 2 == 0 else []})
    for reviewer in ("rev1", "rev2"):  # two eligible confirmations of search 1: confirmed; search 3 stays pending
        log.append({"action": "review", "outcome": "ok", "operator": reviewer, "reviewer": reviewer,
                    "target_seq": 1, "target_face_id": "f0", "decision": "confirm",
                    "details": {"auth": {"method": "password_session"}}})
    log.append({"action": "review", "outcome": "ok", "operator": "ann", "reviewer": "ann", "target_seq": 3,
                "target_face_id": "f2", "decision": "confirm", "details": {"auth": {"method": "password_session"}}})
    counts = overview_counts(log)
    assert (counts.searches, counts.with_candidates, counts.without_candidates) == (4, 2, 2)
    assert counts.confirmed_queries == 1 and counts.pending_queries == 1  # the operator's own review does not count
    assert [r["reviewer"] for r in counts.reviewers] == ["rev1", "rev2"]
    pending = [s for s in (log.match_status(1), log.match_status(3)) if any(c.status == "pending" for c in s.candidates)]
    assert counts.pending_queries == len(pending)


def test_the_snapshot_answers_the_review_rule_exactly_as_the_log_does(log: AuditLog) -> None:
    for i in range(3):
        log.append({"action": "search", "outcome": "ok", "operator": "ann", "gallery": GALLERY.to_dict(),
                    "candidates": [{"subject_id": f"S{i}-{k}", "face_id": f"f{i}-{k}", "distance": "0.050000",
                                    "similarity": "0.950000", "rank": k + 1} for k in range(2)]})
    for target, face, reviewer, decision, method in ((1, "f0-0", "rev1", "confirm", "password_session"),
                                                     (1, "f0-0", "rev2", "confirm", "dashboard_session"),
                                                     (1, "f0-1", "rev1", "reject", "password_session"),
                                                     (2, "f1-0", "rev1", "confirm", "api_token"),  # a script: not counted
                                                     (3, "f2-1", "rev2", "confirm", "password_session")):
        log.append({"action": "review", "outcome": "ok", "operator": reviewer, "reviewer": reviewer,
                    "target_seq": target, "target_face_id": face, "decision": decision,
                    "details": {"auth": {"method": method}}})
    snapshot = _Snapshot(log.list())
    for seq in (1, 2, 3):
        assert match_status(snapshot, seq) == log.match_status(seq)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="filters by"):
        snapshot.list(AuditFilter(operator="ann"))
    with pytest.raises(RecordNotFound):
        snapshot.get(99)
