"""Gallery retention schedules and the log's personal-field schedule, with a fake clock.

A subject is erased a period after its last interaction (enrolment, search hit, review), through the
galleries' own erasure (its key is destroyed); a gallery is dropped at its end date; a dry run changes
no byte of the database; a second run erases nothing and is still recorded; a schedule below the legal
minimum, or a malformed one, is refused and recorded.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import (
    AuditContext,
    AuditedEngine,
    AuditSession,
    Forbidden,
    RetentionBelowMinimum,
    Runtime,
    gallery_schedules,
    privacy_inventory,
    purge_evaluation_cache,
    retention_run,
    set_gallery_retention,
)
from audit.evidence import EvidenceStore
from audit.trail.store import AuditFilter
from core import BadInput, EnrollItem, NotFound
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="watch list of case R-1", case_ref="R-1")


class Clock:
    """The current time, moved by the test (starting now: enrolment and record times are real)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The fake clock, which the log's record times follow too (searches and reviews happen "at" it)."""
    fake = Clock()

    def now_iso() -> str:
        return fake.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    monkeypatch.setattr("audit.session.utc_now_iso", now_iso)
    monkeypatch.setattr("audit.trail.log.utc_now_iso", now_iso)
    return fake


@pytest.fixture
def world(tmp_path: Path, fake_engine, clock: Clock):
    rt = Runtime(str(tmp_path / "ft.duckdb"))
    admin = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "root", "admin")), fake_engine, rt.galleries)
    for name in ("watch", "event"):
        admin.create_gallery(name, fake_engine.config)
    admin.enroll("watch", [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in ("ann", "bob")])
    admin.enroll("event", [EnrollItem("cyd", fake_engine.embed(face_png("cyd")), "cyd.png")])
    evidence = EvidenceStore.beside(rt.db.path, rt.galleries.keys, clock=clock)
    operator = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "olga", "operator")), fake_engine,
                             rt.galleries)
    operator._evidence = evidence
    return rt, clock, evidence, operator


def admin_of(rt: Runtime):
    return actor_for(rt.db, "root", "admin")


def run(rt: Runtime, clock: Clock, evidence: EvidenceStore, *, dry_run: bool = False):
    return retention_run(rt, CTX, dry_run=dry_run, actor=actor_for(rt.db, "dpo", "auditor"), evidence=evidence,
                         clock=clock)


def subjects(rt: Runtime, gallery: str) -> set[str]:
    return {f["subject_id"] for f in rt.galleries.faces(gallery)}


def database_bytes(rt: Runtime) -> dict[str, list[tuple]]:
    with rt.db.connect() as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}


def test_a_subject_is_erased_after_its_last_interaction_and_the_key_is_destroyed(world) -> None:
    rt, clock, evidence, operator = world
    schedule = set_gallery_retention(rt, "watch", CTX, after_days=30, actor=admin_of(rt)).result
    assert schedule.after_days == 30 and schedule.purpose == CTX.purpose and schedule.seq is not None
    assert gallery_schedules(rt.log, ["watch", "event"])["watch"].seq == schedule.seq
    clock.now += timedelta(days=20)
    # bob is found by a search (a hit) 20 days on: his period starts again from there; ann's does not
    hit = operator.search("watch", face_png("bob", 2))
    assert [c.subject_id for c in hit.result.candidates][:1] == ["bob"]
    keys_before = set(rt.galleries.keys.key_ids())
    clock.now += timedelta(days=11)  # ann: 31 days since enrolment; bob: 11 days since his hit
    dry = run(rt, clock, evidence, dry_run=True)
    assert [(s["gallery_name"], s["subject_id"]) for s in dry["subjects"]] == [("watch", "ann")]
    done = run(rt, clock, evidence)
    assert [s["subject_id"] for s in done["subjects"]] == ["ann"] and subjects(rt, "watch") == {"bob"}
    assert subjects(rt, "event") == {"cyd"}  # no schedule: kept
    # ann's gallery key and her log field key (its index entry and the key) destroyed: crypto-shredding
    assert len(set(rt.galleries.keys.key_ids())) == len(keys_before) - 3
    with pytest.raises(NotFound):
        rt.galleries.delete_subject("watch", "ann")
    entry = rt.log.get(done["audit_seq"])  # the run's record names ann sealed under her destroyed key
    assert entry.record.action == "retention" and entry.record.details["subjects"][0]["subject_id"] == "erased"
    assert [e.erasure.seq for e in entry.erased if e.erasure] == [done["audit_seq"]]
    assert b'"ann"' not in entry.canonical and len(entry.record.details["erased_field_keys"]) == 1
    again = run(rt, clock, evidence)
    assert again["subjects"] == [] and again["audit_seq"] > done["audit_seq"]  # idempotent, still recorded
    assert rt.log.verify().ok


def test_a_review_of_a_hit_is_an_interaction(world) -> None:
    rt, clock, evidence, operator = world
    set_gallery_retention(rt, "watch", CTX, after_days=10, actor=admin_of(rt))
    hit = operator.search("watch", face_png("ann", 3))
    reviewer = AuditSession(rt.log, CTX, actor_for(rt.db, "rita", "reviewer"))
    clock.now += timedelta(days=5)
    reviewer.review(hit.seq, "confirm", note="same person", face_id=hit.result.candidates[0].face_id)
    clock.now += timedelta(days=9)  # 14 days since the enrolment and the hit, 9 since the review: not due yet
    assert "ann" not in {s["subject_id"] for s in run(rt, clock, evidence, dry_run=True)["subjects"]}
    clock.now += timedelta(days=2)
    assert "ann" in {s["subject_id"] for s in run(rt, clock, evidence, dry_run=True)["subjects"]}


def test_a_late_review_of_an_old_hit_keeps_the_subject(world) -> None:
    rt, clock, evidence, operator = world
    set_gallery_retention(rt, "watch", CTX, after_days=10, actor=admin_of(rt))
    hit = operator.search("watch", face_png("ann", 3))
    clock.now += timedelta(days=30)  # the review comes a month after the search
    AuditSession(rt.log, CTX, actor_for(rt.db, "rita", "reviewer")).review(
        hit.seq, "reject", note="not the same person", face_id=hit.result.candidates[0].face_id)
    clock.now += timedelta(days=9)
    assert {s["subject_id"] for s in run(rt, clock, evidence, dry_run=True)["subjects"]} == {"bob"}
    clock.now += timedelta(days=2)
    assert {s["subject_id"] for s in run(rt, clock, evidence, dry_run=True)["subjects"]} == {"ann", "bob"}


def test_a_gallery_is_dropped_at_its_end_date(world) -> None:
    rt, clock, evidence, _ = world
    end = (clock.now + timedelta(days=3)).date().isoformat()
    set_gallery_retention(rt, "event", AuditContext(purpose="security of the 2026 fair"), until=end,
                          actor=admin_of(rt))
    assert run(rt, clock, evidence, dry_run=True)["galleries"] == []
    clock.now += timedelta(days=3)
    done = run(rt, clock, evidence)
    assert [(g["gallery_name"], g["faces"]) for g in done["galleries"]] == [("event", 1)]
    assert "event" not in {g.name for g in rt.galleries.list()} and subjects(rt, "watch") == {"ann", "bob"}
    assert "event" not in gallery_schedules(rt.log, [g.name for g in rt.galleries.list()])  # a gallery created again later starts without it


def test_a_dry_run_changes_nothing(world) -> None:
    rt, clock, evidence, _ = world
    set_gallery_retention(rt, "watch", CTX, after_days=1, actor=admin_of(rt))
    clock.now += timedelta(days=2)
    dpo = actor_for(rt.db, "dpo", "auditor")
    before = database_bytes(rt), rt.galleries.keys.key_ids()
    dry = retention_run(rt, CTX, dry_run=True, actor=dpo, evidence=evidence, clock=clock)
    assert {s["subject_id"] for s in dry["subjects"]} == {"ann", "bob"}
    after = database_bytes(rt), rt.galleries.keys.key_ids()
    assert [t for t in before[0] if before[0][t] != after[0][t]] == [] and after[1] == before[1]


def test_schedules_are_set_by_admins_only_and_malformed_ones_are_refused(world) -> None:
    rt, _, _, _ = world
    with pytest.raises(Forbidden):
        set_gallery_retention(rt, "watch", CTX, after_days=30, actor=actor_for(rt.db, "olga", "operator"))
    for bad in ({"after_days": 0}, {"after_days": 30, "until": "2027-01-01"}, {}, {"until": "next year"},
                {"until": "2027-1-1"}, {"after_days": 10**6}):
        with pytest.raises(BadInput):
            set_gallery_retention(rt, "watch", CTX, actor=admin_of(rt), **bad)
        assert rt.log.get(rt.log.size()).record.details["attempted"] == "retention_schedule"
    assert gallery_schedules(rt.log, ["watch", "event"]) == {}


def test_a_log_schedule_below_the_legal_minimum_is_refused(world) -> None:
    rt, clock, evidence, _ = world
    rt.settings = dataclasses.replace(rt.settings, log_personal_days=30.0, log_personal_min_days=183.0)
    size = rt.log.size()
    with pytest.raises(RetentionBelowMinimum, match="FACETRAIL_LOG_PERSONAL_MIN_DAYS=183"):
        run(rt, clock, evidence)
    refused = rt.log.get(rt.log.size()).record
    assert rt.log.size() == size + 1 and refused.action == "refused"
    assert (refused.outcome, refused.details["attempted"]) == ("retention_below_minimum", "retention")
    assert refused.details["reason"].startswith("FACETRAIL_LOG_PERSONAL_DAYS=30")


def test_log_personal_fields_due_are_shredded_by_the_run(world) -> None:
    rt, clock, evidence, operator = world
    rt.settings = dataclasses.replace(rt.settings, log_personal_days=200.0)
    first = run(rt, clock, evidence, dry_run=True)["log_personal_fields"]
    assert (first["records_due"], first["field_keys_due"], first["status"]) == (0, 0, "nothing_due")
    clock.now += timedelta(days=201)
    operator.search("event", face_png("cyd", 2), top_k=1)  # cyd appears after the cut-off: her fields are kept
    enrolment = rt.log.list(AuditFilter(action="enroll"))
    assert {c for e in enrolment for c in e.record.details["subject_ids"]} == {"ann", "bob", "cyd"}
    dry = run(rt, clock, evidence, dry_run=True)["log_personal_fields"]
    assert dry["status"] == "shreddable" and dry["records_due"] == rt.log.size() - 1  # all but the search
    due = rt.log.field_keys_due(dry["cutoff"])
    assert dry["field_keys_due"] == len(due) > 0
    done = retention_run(rt, CTX, actor=actor_for(rt.db, "dpo", "auditor"), evidence=evidence, clock=clock)
    fields = done["log_personal_fields"]
    assert (fields["status"], fields["shredded"]) == ("shredded", len(due))
    assert set(due) <= set(rt.log.get(done["audit_seq"]).record.details["erased_field_keys"])
    assert rt.log.field_keys_due(dry["cutoff"]) == []
    # ann and bob, not seen since the cut-off, read "erased" naming the run; cyd (searched since) reads in clear
    watch, event = (next(e for e in rt.log.list(AuditFilter(action="enroll", gallery=g))) for g in ("watch", "event"))
    assert watch.record.details["subject_ids"] == ["erased", "erased"]
    assert {e.erasure.seq for e in watch.erased if e.erasure} == {done["audit_seq"]}
    assert event.record.details["subject_ids"] == ["cyd"]
    assert rt.galleries.info("watch").size == 2  # the log's fields only: the gallery keeps its faces
    assert rt.log.verify().ok


def test_the_inventory_shows_the_schedules(world) -> None:
    rt, _, _, _ = world
    set_gallery_retention(rt, "watch", CTX, after_days=1095, actor=admin_of(rt))
    places = {h.place: h for h in privacy_inventory(rt, CTX, actor=actor_for(rt.db, "dpo", "auditor"))}
    assert "watch: each subject erased 1095 days after" in places["table:gallery_faces"].retention
    assert "legal minimum 183 days" in places["table:audit_log"].retention


def test_a_purge_of_the_evaluation_cache_is_recorded(world) -> None:
    rt, _, _, _ = world
    rt.use_token(actor_for(rt.db, "eve", "auditor").token)
    size = rt.log.size()
    dry = purge_evaluation_cache(rt, CTX, everything=True, dry_run=True)
    assert rt.log.size() == size  # a dry run records nothing
    done = purge_evaluation_cache(rt, CTX, everything=True)
    record = rt.log.get(rt.log.size()).record
    assert rt.log.size() == size + 1 and (record.action, record.outcome) == ("retention", "ok")
    assert record.details["rule"] == "evaluation_cache"
    assert record.details["evaluation_cache"] == done.to_dict() and dry.entries == done.entries
