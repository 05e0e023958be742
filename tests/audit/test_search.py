"""Audit search (audit.search): link parameters read strictly, each filter selects what it says, exports of a view.

From the auditor's side: every filter narrows to exactly the records it names (and a
record of a day just outside a date range stays out); a link with a bad value is an
error naming the parameter, never a silent "no filter"; a free-text date that used to
export 0 records silently is refused and the refusal recorded; an export of a view
holds exactly its rows, with formula-looking cells neutralised, and is in the history.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import date
from pathlib import Path

import pytest

from audit import (
    AuditContext,
    AuditFilter,
    RecordQuery,
    audited_export,
    export_history,
    export_view,
    find_page,
    find_records,
)
from audit.runtime import Runtime
from audit.search import LogFacts, find_seqs
from audit.session import AuditSession
from audit.trail.log import AuditLog
from core.errors import BadInput
from core.storage.connection import Database
from tests.auth import actor_for

GALLERY = {"name": "mugshots", "fingerprint": "3-" + "0" * 32, "size": 3}


def search(log: AuditLog, operator: str, day: str, subjects: list[str], *, purpose: str = "identify a suspect",
           case: str = "CR-1", threshold: str = "0.070000", policy: str | None = None) -> int:
    details: dict[str, object] = {"threshold": threshold}
    if policy is not None:
        details["threshold_policy"] = {"status": policy, "threshold": threshold}
    candidates = [{"subject_id": s, "face_id": f"face-{s}", "distance": "0.050000", "similarity": "0.950000",
                   "rank": i + 1} for i, s in enumerate(subjects)]
    return log.append({"action": "search", "outcome": "ok" if subjects else "no_match", "operator": operator,
                       "purpose": purpose, "case_ref": case, "gallery": GALLERY, "candidates": candidates,
                       "details": details, "started_at": f"{day}T12:00:00.000000Z"}).seq


@pytest.fixture
def scene(log: AuditLog) -> dict[str, int]:
    return {
        "a": search(log, "operator1", "2026-03-01", ["P1", "P2"], case="CR-7"),
        "b": search(log, "operator2", "2026-03-02", [], purpose="find a missing person"),
        "c": search(log, "operator1", "2026-03-03", ["P3"], threshold="0.090000", policy="looser"),
        "d": search(log, "operator2", "2026-03-04", ["P1"]),
    }


def seqs(log: AuditLog, **params: str) -> list[int]:
    return [e.seq for e in find_records(log, RecordQuery.from_params(params, action="search"))]


def test_each_filter_selects_what_it_names(log: AuditLog, scene: dict[str, int]) -> None:
    a, b, c, d = scene["a"], scene["b"], scene["c"], scene["d"]
    assert seqs(log) == [a, b, c, d]
    assert seqs(log, operator="operator1") == [a, c]
    assert seqs(log, outcome="candidates") == [a, c, d]
    assert seqs(log, outcome="none") == [b]
    assert seqs(log, looser="1") == [c]
    assert seqs(log, subject="P1") == [a, d]
    assert seqs(log, threshold="0.07") == [a, b, d]  # at most 0.07: the looser 0.09 search stays out
    assert seqs(log, q="MISSING person") == [b]  # free text, any case, in the purpose
    assert seqs(log, q="cr-7") == [a]  # in the case reference
    assert seqs(log, q="p3") == [c]  # in a candidate's subject id
    assert seqs(log, since="2026-03-02", until="2026-03-03") == [b, c]  # both days whole, inclusive
    assert seqs(log, until="2026-03-01") == [a]
    assert seqs(log, operator="operator2", outcome="candidates") == [d]  # filters combine


def test_reviewer_and_review_status_follow_the_two_person_rule(log: AuditLog, scene: dict[str, int]) -> None:
    a, d = scene["a"], scene["d"]
    # reviews go through the gate (the two-person rule counts only signed-in reviewers)
    for name, target, decision, face in (("reviewer1", a, "confirm", "face-P1"), ("reviewer2", a, "confirm", "face-P1"),
                                         ("reviewer1", d, "reject", None)):
        AuditSession(log, AuditContext(), actor_for(log.store.db, name, "reviewer")).review(
            target, decision, face_id=face)
    assert seqs(log, reviewer="reviewer2") == [a]
    assert seqs(log, reviewer="Reviewer1 ") == [a, d]  # names are normalised
    assert seqs(log, review="confirmed") == [a]  # P1 of record a: two reviewers confirmed
    assert seqs(log, review="rejected") == [d]
    assert seqs(log, review="pending") == [a, scene["c"]]  # P2 of a and P3 of c: nobody decided yet
    reviews = [e.seq for e in log.list(AuditFilter(action="review"))]
    assert seqs(log, action="review", reviewer="reviewer2") == [reviews[1]]  # their own review records


@pytest.mark.parametrize(("params", "named"), [
    ({"since": "last week"}, "since: 'last week' is not a date"),
    ({"until": "2026-13-01"}, "until:"),
    ({"outcome": "maybe"}, "outcome: 'maybe' is not one of candidates, none"),
    ({"review": "done"}, "review: 'done'"),
    ({"looser": "yes"}, "looser: 'yes'"),
    ({"threshold": "loose"}, "threshold: 'loose' is not a number"),
    ({"threshold": "5"}, "threshold: 5.0 is not a distance"),
    ({"threshold": "nan"}, "threshold: nan"),
    ({"since": "2026-03-05", "until": "2026-03-01"}, "since 2026-03-05 is after until 2026-03-01"),
    ({"looser": "1", "policy": "within"}, "looser=1 contradicts policy=within"),
])
def test_a_bad_link_is_an_error_naming_the_parameter(params: dict[str, str], named: str) -> None:
    with pytest.raises(BadInput, match=named.replace("(", r"\(").replace(".", r"\.")):
        RecordQuery.from_params(params)


def test_link_parameters_round_trip() -> None:
    query = RecordQuery(operator="operator1", gallery="mugshots", case_ref="CR-7", outcome="candidates",
                        review="pending", policy="looser", since=date(2026, 3, 1), until=date(2026, 3, 4),
                        reviewer="reviewer1", subject="P1", threshold=0.07, q="burglary", action="search")
    params = query.to_params(action="search")
    assert params == {"operator": "operator1", "gallery": "mugshots", "case": "CR-7", "outcome": "candidates",
                      "review": "pending", "looser": "1", "since": "2026-03-01", "until": "2026-03-04",
                      "reviewer": "reviewer1", "subject": "P1", "threshold": "0.07", "q": "burglary"}
    assert RecordQuery.from_params(params, action="search") == query
    every = RecordQuery(action=None)
    assert every.to_params(action="search") == {"action": "any"}
    assert RecordQuery.from_params({"action": "any"}, action="search") == every


def test_a_free_text_date_is_refused_and_recorded_not_a_silent_empty_export(tmp_path: Path) -> None:
    rt = Runtime(str(tmp_path / "t.duckdb"))
    search(rt.log, "operator1", "2026-03-01", ["P1"])
    auditor = actor_for(rt.db, "auditor1", "auditor")
    with pytest.raises(BadInput, match="since: 'last week' is not a UTC date"):
        rt.log.list(AuditFilter(since="last week"))
    session = rt.session(AuditContext(purpose="board report"), auditor)
    with pytest.raises(BadInput, match="since: 'last week'"):
        audited_export(session, rt.log, tmp_path / "out.csv", "csv", AuditFilter(since="last week"))
    with pytest.raises(BadInput, match="is not before until"):
        audited_export(session, rt.log, tmp_path / "out.csv", "csv",
                       AuditFilter(since="2026-03-02", until="2026-03-01"))
    assert not (tmp_path / "out.csv").exists()
    assert rt.log.list(AuditFilter(action="export")) == []  # no "0 records" export
    history = export_history(rt.log)
    assert [(h["outcome"], h["reason"].split(" is ")[0]) for h in history] == [
        ("bad_input", "since 2026-03-02"), ("bad_input", "since: 'last week'")]
    rt.db.close()


def test_an_export_of_a_view_is_exactly_its_rows_with_safe_cells_and_recorded(tmp_path: Path) -> None:
    rt = Runtime(str(tmp_path / "t.duckdb"))
    first = search(rt.log, "operator1", "2026-03-01", ["P1"], purpose='=HYPERLINK("http://evil.example","x")')
    second = search(rt.log, "operator1", "2026-03-02", ["@SUM(1+1)"])
    query = RecordQuery(operator="operator1")
    rows = [{"Record": first, "Purpose": '=HYPERLINK("http://evil.example","x")', "Top candidate": "P1"},
            {"Record": second, "Purpose": "identify a suspect", "Top candidate": "@SUM(1+1)"}]
    columns = ["Record", "Purpose", "Top candidate"]
    reviewer = rt.session(AuditContext(purpose="look"), actor_for(rt.db, "reviewer1", "reviewer"))
    with pytest.raises(Exception, match="reviewer"):  # Forbidden: only auditors export (refused, recorded)
        export_view(reviewer, query, columns, rows, [first, second], source="match_log")
    auditor = actor_for(rt.db, "auditor1", "auditor")
    with pytest.raises(Exception, match="purpose"):
        export_view(rt.session(AuditContext(), auditor), query, columns, rows, [first, second], source="match_log")
    done = export_view(rt.session(AuditContext(purpose="board report"), auditor), query, columns, rows,
                       [first, second], source="match_log")
    table = list(csv.reader(io.StringIO(done.result.data.decode())))
    assert table == [columns, [str(first), "'=HYPERLINK(\"http://evil.example\",\"x\")", "P1"],
                     [str(second), "identify a suspect", "'@SUM(1+1)"]]
    assert done.result.sha256 == hashlib.sha256(done.result.data).hexdigest()
    recorded = done.entry.record
    assert (recorded.action, recorded.operator, recorded.purpose) == ("export", "auditor1", "board report")
    assert recorded.details["seqs"] == [first, second] and recorded.details["filters"] == {"operator": "operator1"}
    assert recorded.details["sha256"] == done.result.sha256 and recorded.details["records"] == 2
    with pytest.raises(BadInput, match="2 rows but 1 record numbers"):
        export_view(rt.session(AuditContext(purpose="board report"), auditor), query, columns, rows, [first],
                    source="match_log")
    history = export_history(rt.log)
    assert [(h["outcome"], h["source"]) for h in history][:2] == [("bad_input", "match_log"), ("ok", "match_log")]
    assert history[1]["records"] == 2 and history[1]["operator"] == "auditor1"
    rt.db.close()


def test_the_facts_answer_each_filter_as_the_opened_records_do(log: AuditLog, scene: dict[str, int]) -> None:
    """find_seqs filters on a SQL projection of the unsealed fields: the same answer as matching the opened records."""
    verify = log.append({"action": "verify", "outcome": "ok", "operator": "operator1", "purpose": "check",
                         "case_ref": "CR-2", "details": {"threshold": "0.060000"},
                         "started_at": "2026-03-05T12:00:00.000000Z"}).seq
    log.append({"action": "search", "outcome": "no_face", "operator": "operator2", "purpose": "identify a suspect",
                "case_ref": "CR-9", "gallery": GALLERY, "details": {}, "started_at": "2026-03-06T12:00:00.000000Z"})
    assert b"sealed." in log.store.get(scene["a"]).canonical  # the subject ids are sealed in the stored bytes
    queries = [RecordQuery.from_params(p, action=None) for p in (
        {}, {"outcome": "candidates"}, {"outcome": "none"}, {"looser": "1"}, {"policy": "within"},
        {"threshold": "0.07"}, {"threshold": "0.065"}, {"subject": "P1"}, {"q": "p3"}, {"q": "cr-2"},
        {"outcome": "candidates", "threshold": "0.08", "subject": "P1"}, {"action": "verify", "threshold": "0.06"})]
    for query in queries:
        expected = [e.seq for e in log.list(query.store_filter()) if query.matches(e.record)]
        assert find_seqs(log, query) == expected, query
        assert [e.seq for e in find_records(log, query)] == expected
    # a search that failed (no_face) did not "return none"; a verify that ran did, with no candidate
    assert find_seqs(log, RecordQuery(outcome="none")) == [scene["b"], verify]
    assert find_seqs(log, RecordQuery(threshold=0.065)) == [verify]  # the stored decimal string, compared as a number
    assert find_seqs(log, RecordQuery(policy="looser", subject="P3")) == [scene["c"]]


def test_a_page_opens_only_its_own_records_whatever_the_log_holds(log: AuditLog) -> None:
    first = [search(log, f"operator{i % 3}", "2026-03-01", [f"P{i}"]) for i in range(120)]
    opened: list[int] = []
    real = log._opened

    def counted(row, refreshed=False):  # type: ignore[no-untyped-def]
        opened.append(row.seq)
        return real(row, refreshed)

    log._opened = counted  # type: ignore[method-assign]
    newest = find_page(log, RecordQuery(action="search"), per_page=50)
    assert (newest.page, newest.pages, newest.total) == (3, 3, 120)
    assert [e.seq for e in newest.entries] == first[100:] and sorted(opened) == first[100:]  # 20 opened, not 120
    assert newest.entries[0].record.candidates[0].subject_id == "P100"  # opened: the sealed subject reads clear
    opened.clear()
    one = find_page(log, RecordQuery(action="search"), 1, per_page=50)
    assert [e.seq for e in one.entries] == first[:50] and sorted(opened) == first[:50]
    opened.clear()
    picked = find_page(log, RecordQuery(action="search", subject="P7"), per_page=50)  # a sealed field: read to filter
    assert [e.seq for e in picked.entries] == [first[7]] and picked.total == 1
    with pytest.raises(BadInput, match=r"page: 4 is not a page of these records \(1 to 3\)"):
        find_page(log, RecordQuery(action="search"), 4, per_page=50)
    with pytest.raises(BadInput, match="page: 0"):
        find_page(log, RecordQuery(action="search"), 0, per_page=50)
    empty = find_page(log, RecordQuery(action="verify"))
    assert (empty.entries, empty.total, empty.page, empty.pages) == ((), 0, 1, 1)


def test_facts_kept_by_a_reader_are_read_on_and_read_again_for_another_log(log: AuditLog, scene: dict[str, int],
                                                                          tmp_path: Path) -> None:
    """A session keeps the facts it read: later records are added; a replaced log is read from the start."""
    known = LogFacts()
    for params in ({}, {"operator": "operator1"}, {"since": "2026-03-02", "until": "2026-03-03"}, {"case": "CR-7"},
                   {"gallery": "mugshots", "outcome": "candidates"}, {"action": "any"}):
        query = RecordQuery.from_params(params, action="search")
        assert find_seqs(log, query, known=known) == find_seqs(log, query) == seqs(log, **params), params
    read: list[AuditFilter] = []
    real = log.facts

    def counted(filters=None):  # type: ignore[no-untyped-def]
        read.append(filters)
        return real(filters)

    log.facts = counted  # type: ignore[method-assign]
    e = search(log, "operator3", "2026-03-09", ["P9"])
    assert find_seqs(log, RecordQuery(operator="operator3"), known=known) == [e]
    assert [f.after_seq for f in read] == [scene["d"]]  # only what was appended since
    assert known.choices(log)["operator"] == ["operator1", "operator2", "operator3"]
    other = AuditLog(Database(tmp_path / "other.duckdb"), key_path=tmp_path / "other-key")
    o = search(other, "operator9", "2026-04-01", [])
    assert find_seqs(other, RecordQuery(), known=known) == [o]  # another log: its own facts, none of the first's
    other.store.db.close()
