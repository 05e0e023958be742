"""Shreddable personal fields inside log records (audit.trail.sealed), tested from the outside.

The attacker has every file facetrail wrote (the database, its write-ahead log, the key
store, the audit key, exports made after the erasure, an excerpt made before it) and knows
the erased subject's id, face ids, image hash and embedding bytes from before. Real engine
code, gallery store and audit trail; only the face models are fake.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession, Forbidden
from audit.audited import audited_export
from audit.trail import log as trail_log
from audit.trail import verify_excerpt, write_excerpt
from audit.trail.records import AuditRecord, decode_record
from audit.trail.sealed import ERASED, FieldKeys, SealedFieldError, seal_fields
from audit.trail.store import AuditFilter
from core import Database, EnrollItem, GalleryStore
from core.gallery import face_id_for
from core.keystore import KeyStore
from tests.audit.services import deployment, erase_in_another_process
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="sealed fields test", case_ref="DSAR-7", legal_basis="GDPR art. 17")
SUBJECTS = [f"Jane_Roe_{i:02d}" for i in range(4)]
WHY = AuditContext(purpose="data subject request DSAR-7", case_ref="DSAR-7")


def files_written(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    """A file database, gallery ``g`` of four subjects, one search per subject (each with candidates)."""
    items = [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in SUBJECTS]
    d = deployment(tmp_path, fake_engine, CTX, items, key_name="ft.duckdb.audit-key")
    db, log, galleries, admin, operator = d.db, d.log, d.galleries, d.admin, d.operator
    searches = {s: operator.search("g", face_png(s, 3), top_k=1) for s in SUBJECTS}
    assert all(done.result.candidates[0].subject_id == s for s, done in searches.items())
    return tmp_path, db, log, galleries, admin, items, searches


def test_erased_subject_leaves_no_id_in_any_file_and_the_trail_and_an_earlier_excerpt_verify(world) -> None:
    root, db, log, galleries, admin, items, searches = world
    victim = SUBJECTS[1]
    item = next(i for i in items if i.subject_id == victim)
    digest = item.embedding.image_sha256
    face = galleries.face_id("g", victim, digest)
    unkeyed = face_id_for("g", victim, digest)  # anyone can compute it from the name and the photo
    vector = item.embedding.vector.tobytes()
    seq = searches[victim].seq
    # two reviewers name the candidate; one writes the subject's name in a note
    for name in ("rita", "ravi"):
        AuditSession(log, AuditContext(), actor_for(db, name, "reviewer")).review(
            seq, "confirm", note=f"same scar as {victim}")
    assert log.match_status(seq).candidates[0].status == "confirmed"
    # an erasure refused (an operator may not erase): the refusal names the subject
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), admin.engine, galleries)
    with pytest.raises(Forbidden):
        operator.delete_subject("g", victim)
    # before: an authorised reader sees every value in clear (so this test can fail) ...
    clear = log.get(seq).record
    assert (clear.candidates[0].subject_id, clear.candidates[0].face_id) == (victim, face)
    assert log.list(AuditFilter(action="enroll"))[0].record.probe_sha256 is not None
    assert digest in log.list(AuditFilter(action="enroll"))[0].record.probe_sha256
    # ... while the signed bytes already hold none of them
    signed = b"".join(e.canonical for e in log.list())
    for value in (victim, face, digest):
        assert value.encode() not in signed
    excerpt = root / "before.json"
    write_excerpt(log, excerpt, AuditFilter(case_ref="DSAR-7"))
    vkey = log.public_key_pem()

    erasure = AuditedEngine(AuditSession(log, WHY, actor_for(db, "dora", "admin")), admin.engine, galleries)
    erased_seq = erasure.delete_subject("g", victim).seq
    out = root / "exports"
    out.mkdir()
    auditor = AuditSession(log, CTX, actor_for(db, "audrey", "auditor"))
    for fmt in ("csv", "jsonl", "parquet"):
        audited_export(auditor, log, out / f"plain.{fmt}", fmt)
        audited_export(auditor, log, out / f"pseudo.{fmt}", fmt, pseudonymize=True)
    after = log.get(seq)
    assert log.verify().ok
    db.close()

    # nor the unkeyed face id or the image hash anyone computes from the name and the photo (gallery rows hold
    # references keyed under the key store's secret, as subject_ref: the deleted row's may stay in the file)
    clues = {victim.encode(), vector, base64.b64encode(vector), unkeyed.encode(), digest.encode()}
    for path, data in files_written(root).items():
        for clue in clues:
            assert clue not in data, f"{clue[:24]!r} of the erased subject is in {path.name}"
    # the trail and the excerpt made before the erasure still verify: not a byte changed
    reopened = Database(root / "ft.duckdb")
    log2 = AuditLog(reopened, key_path=root / "ft.duckdb.audit-key")
    assert log2.verify().ok
    assert verify_excerpt(excerpt, vkey).ok
    # the erased fields read "erased", with the erasure: who, when, why
    record = log2.get(seq)
    assert (record.record.candidates[0].subject_id, record.record.candidates[0].face_id) == (ERASED, ERASED)
    assert after.record == record.record
    by = {e.path: e.erasure for e in record.erased}
    assert set(by) == {"$.candidates[0].subject_id", "$.candidates[0].face_id"}
    assert {(e.seq, e.operator, e.purpose) for e in by.values() if e} == {(erased_seq, "dora", WHY.purpose)}
    reviews = log2.list(AuditFilter(action="review", target_seq=seq))
    assert [(r.record.target_face_id, r.record.note) for r in reviews] == [(ERASED, ERASED)] * 2
    assert log2.match_status(seq).candidates[0].status == "confirmed"  # the two-person rule still counts them
    # nothing else changed: the other subjects read in clear, in the log and in the plain export
    others = [log2.get(searches[s].seq).record.candidates[0].subject_id for s in SUBJECTS if s != victim]
    assert others == [s for s in SUBJECTS if s != victim]
    rows = [json.loads(line)["record"] for line in (out / "plain.jsonl").read_text().splitlines()]
    shown = {r["seq"]: r for r in rows}
    assert shown[seq]["candidates"][0]["subject_id"] == ERASED
    assert shown[searches[SUBJECTS[0]].seq]["candidates"][0]["subject_id"] == SUBJECTS[0]
    pseudo = {json.loads(line)["record"]["seq"]: json.loads(line)["record"]
              for line in (out / "pseudo.jsonl").read_text().splitlines()}
    assert pseudo[seq]["candidates"][0]["subject_id"] == ERASED
    assert pseudo[searches[SUBJECTS[0]].seq]["candidates"][0]["subject_id"].startswith("ps_")


def test_a_reader_without_the_key_store_sees_no_personal_value(world, tmp_path: Path) -> None:
    _, db, log, _, _, _, searches = world
    record = decode_record(log.get(searches[SUBJECTS[0]].seq).canonical)  # what the database file holds
    stranger = FieldKeys(KeyStore(tmp_path / "another.keys"))
    opened, erased = stranger.open(record)
    assert opened.candidates[0].subject_id == ERASED and erased and all(e.erasure is None for e in erased)
    assert SUBJECTS[0] not in json.dumps(record.to_dict())


def test_a_token_moved_or_altered_does_not_open(tmp_path: Path) -> None:
    keys = FieldKeys(KeyStore(tmp_path / "ks"))
    fields = {"started_at": "2026-01-01T00:00:00.000000Z", "ended_at": "2026-01-01T00:00:00.000000Z",
              "seq": 1, "action": "search", "outcome": "ok", "gallery": {"name": "g", "fingerprint": "f", "size": 1},
              "candidates": [{"subject_id": "alice", "face_id": "fa", "distance": "0.1", "similarity": "0.9",
                              "rank": 1}]}
    sealed = AuditRecord.from_dict(seal_fields(fields, keys))
    token = sealed.candidates[0].subject_id
    assert token.startswith("sealed.s.") and "alice" not in token
    assert keys.open(sealed)[0].candidates[0].subject_id == "alice"
    # the same value gives the same token (readers compare stored JSON), another value another one
    again = AuditRecord.from_dict(seal_fields(fields, keys))
    assert again.candidates[0].subject_id == token and again.candidates[0].face_id != token
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    bad = AuditRecord.from_dict({**sealed.to_dict(), "candidates": [{**sealed.candidates[0].to_dict(),
                                                                     "subject_id": flipped}]})
    with pytest.raises(SealedFieldError, match=r"\$\.candidates\[0\]\.subject_id"):
        keys.open(bad)
    moved = AuditRecord.from_dict({**sealed.to_dict(), "candidates": [{**sealed.candidates[0].to_dict(),
                                                                      "subject_id": sealed.candidates[0].face_id}]})
    opened = keys.open(moved)[0]  # a face token in a subject field opens as what it is, never as another value
    assert opened.candidates[0].subject_id == "fa"
    wrong_kind = "sealed.i." + token.removeprefix("sealed.s.")
    with pytest.raises(SealedFieldError):
        keys.open(AuditRecord.from_dict({**sealed.to_dict(), "candidates": [
            {**sealed.candidates[0].to_dict(), "subject_id": wrong_kind}]}))


def test_records_written_before_sealing_read_and_verify_as_before(tmp_path: Path, monkeypatch) -> None:
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "key")
    old = {"action": "search", "outcome": "ok", "operator": "olga", "purpose": "p",
           "gallery": {"name": "g", "fingerprint": "f", "size": 1},
           "candidates": [{"subject_id": "bob", "face_id": "fb", "distance": "0.1", "similarity": "0.9", "rank": 1}]}
    monkeypatch.setattr(trail_log, "seal_fields", lambda fields, keys, tokens=None: dict(fields))  # the code before sealing
    first = log.append(old)
    monkeypatch.undo()
    second = log.append(old)
    assert b'"bob"' in first.canonical and b'"bob"' not in second.canonical
    fresh = AuditLog(db, key_path=tmp_path / "key")
    assert fresh.verify().ok
    assert fresh.get(first.seq).record.candidates == fresh.get(second.seq).record.candidates
    assert fresh.get(first.seq).erased == () and fresh.get(first.seq).canonical == first.canonical


def test_an_erased_subject_enrolled_again_gets_a_new_key_and_old_records_stay_erased(world, fake_engine) -> None:
    _, db, log, galleries, admin, items, searches = world
    victim = SUBJECTS[2]
    admin.delete_subject("g", victim)
    admin.enroll("g", [EnrollItem(victim, fake_engine.embed(face_png(victim)), "again.png")])
    again = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), fake_engine, galleries)
    fresh = again.search("g", face_png(victim, 3), top_k=1)
    assert log.get(fresh.seq).record.candidates[0].subject_id == victim
    assert log.get(searches[victim].seq).record.candidates[0].subject_id == ERASED
    assert log.verify().ok


def test_dropping_a_gallery_erases_its_subjects_fields(world) -> None:
    _, db, log, _, admin, _, searches = world
    dropped = admin.drop_gallery("g")
    names = [log.get(searches[s].seq).record.candidates[0].subject_id for s in SUBJECTS]
    assert names == [ERASED] * len(SUBJECTS)
    enrolled = log.list(AuditFilter(action="enroll"))[0]
    assert enrolled.record.details["subject_ids"] == [ERASED] * len(SUBJECTS)
    assert set(enrolled.record.probe_sha256 or ()) == {ERASED}
    assert {e.erasure.seq for e in enrolled.erased if e.erasure} == {dropped.seq}
    assert FieldKeys(KeyStore(Path(str(db.path) + ".keys"))).erasure_ids("g", [*SUBJECTS, ""]) == []
    assert log.verify().ok


def test_the_report_counts_sealed_subjects_and_names_them_opened(world) -> None:
    from audit.reports.query import count_log

    _, db, log, _, admin, _, searches = world
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), admin.engine, admin.galleries)
    for _ in range(3):
        operator.search("g", face_png(SUBJECTS[3], 3), top_k=1)
    counts = count_log(db, log.size(), "2000-01-01", "2100-01-01", repeated=3)
    assert list(counts.repeated_subjects["subject_id"]) == [SUBJECTS[3]]
    admin.delete_subject("g", SUBJECTS[3])
    counts = count_log(db, log.size(), "2000-01-01", "2100-01-01", repeated=3)
    assert list(counts.repeated_subjects["subject_id"]) == [ERASED]


def test_retention_shreds_the_fields_of_subjects_not_seen_since_the_cut_off(tmp_path: Path) -> None:
    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "key")

    def search(subject: str, day: str) -> int:
        at = f"{day}T10:00:00.000000Z"
        return log.append({"action": "search", "outcome": "ok", "operator": "olga", "purpose": "p", "started_at": at,
                           "ended_at": at, "gallery": {"name": "g", "fingerprint": "f", "size": 2},
                           "candidates": [{"subject_id": subject, "face_id": "f-" + subject, "distance": "0.1",
                                           "similarity": "0.9", "rank": 1}]}).seq

    old = search("ann", "2026-01-05")
    both = search("ben", "2026-01-06")
    recent = search("ben", "2026-11-20")  # ben appears after the cut-off: his fields are kept, the old one too
    due = log.field_keys_due("2026-06-01")
    assert len(due) == 1 and log.field_keys_due("2026-01-01") == []
    assert "ann" not in json.dumps(due)
    retention = log.append({"action": "retention", "outcome": "ok", "operator": "rex", "purpose": "retention run",
                            "details": {"erased_field_keys": due}})
    assert log.field_keys.shred_key_ids(due) == 1
    assert log.field_keys_due("2026-06-01") == []  # idempotent: nothing left to shred
    entry = log.get(old)
    assert entry.record.candidates[0].subject_id == ERASED
    assert [(e.erasure.seq, e.erasure.action, e.erasure.operator) for e in entry.erased if e.erasure] == [
        (retention.seq, "retention", "rex")] * 2
    shown = entry.to_dict()  # what `audit show SEQ --json` prints
    assert shown["record"]["candidates"][0]["subject_id"] == ERASED
    assert [e["erased_by"]["seq"] for e in shown["erased"]] == [retention.seq] * 2
    assert {e["path"] for e in shown["erased"]} == {"$.candidates[0].subject_id", "$.candidates[0].face_id"}
    assert "erased" not in log.get(recent).to_dict()  # nothing else changes for records that lost nothing
    assert [log.get(s).record.candidates[0].subject_id for s in (both, recent)] == ["ben", "ben"]
    assert log.verify().ok
    # ann searched again later gets a fresh key: the new record reads in clear, the old one stays erased
    again = search("ann", "2026-11-21")
    assert log.get(again).record.candidates[0].subject_id == "ann" and log.get(old).erased


def test_an_enrolment_failure_naming_the_subject_is_erased_with_it(tmp_path: Path, fake_engine) -> None:
    from core.manifest import SourceImage

    db = Database(tmp_path / "ft.duckdb")
    log = AuditLog(db, key_path=tmp_path / "key")
    galleries = GalleryStore(db)
    admin = AuditedEngine(AuditSession(log, CTX, actor_for(db, "root", "admin")), fake_engine, galleries)
    admin.create_gallery("g", fake_engine.config)
    victim = "Jane_Roe_77"
    folder = tmp_path / "people" / victim
    folder.mkdir(parents=True)
    (folder / "good.png").write_bytes(face_png(victim))
    (folder / "broken.png").write_bytes(b"not an image at all")
    done = admin.enroll_images("g", [SourceImage(str(folder / n), victim, image=n) for n in ("good.png", "broken.png")])
    failures = log.get(done.seq).record.details["failures"]
    assert failures["count"] == 1 and victim in failures["first"][0]["image"]  # readable before the erasure
    admin.delete_subject("g", victim)
    assert log.get(done.seq).record.details["failures"]["first"] == [
        {"code": "unreadable_image", "image": ERASED, "error": ERASED}]
    db.close()
    for path, data in files_written(tmp_path).items():
        if "people" not in path.parts:
            assert victim.encode() not in data, path.name


def test_a_retention_run_erases_subjects_fields_like_an_erasure(tmp_path: Path, fake_engine) -> None:
    """The outsider's test, for retention: a subject erased after its period and a gallery dropped at its end
    date leave no id in clear in any file, and their fields read "erased" naming the retention record."""
    from datetime import UTC, datetime, timedelta

    from audit import Runtime, retention_run, set_gallery_retention

    rt = Runtime(str(tmp_path / "ft.duckdb"))
    admin = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "root", "admin")), fake_engine, rt.galleries)
    operator = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "olga", "operator")), fake_engine,
                             rt.galleries)
    layout = {"kept": [SUBJECTS[0], SUBJECTS[3]], "old": [SUBJECTS[1]], "fair": [SUBJECTS[2]]}
    searches: dict[str, int] = {}
    for gallery, subjects in layout.items():
        admin.create_gallery(gallery, fake_engine.config)
        admin.enroll(gallery, [EnrollItem(s, fake_engine.embed(face_png(s)), f"{s}.png") for s in subjects])
        for s in subjects:
            searches[s] = operator.search(gallery, face_png(s, 3), top_k=1).seq
    assert rt.log.get(searches[SUBJECTS[1]]).record.candidates[0].subject_id == SUBJECTS[1]  # so this can fail
    later = datetime.now(UTC) + timedelta(days=31)
    set_gallery_retention(rt, "old", WHY, after_days=30, actor=actor_for(rt.db, "root", "admin"))
    set_gallery_retention(rt, "fair", WHY, until=later.date().isoformat(), actor=actor_for(rt.db, "root", "admin"))
    done = retention_run(rt, WHY, actor=actor_for(rt.db, "rex", "auditor"), clock=lambda: later)
    assert [s["subject_id"] for s in done["subjects"]] == [SUBJECTS[1]]  # the caller (an auditor) sees who
    assert [g["gallery_name"] for g in done["galleries"]] == ["fair"]
    run_seq = done["audit_seq"]
    assert rt.log.verify().ok
    rt.db.close()

    for path, data in files_written(tmp_path).items():
        for victim in (SUBJECTS[1], SUBJECTS[2]):
            assert victim.encode() not in data, f"{victim} is in {path.name} after the retention run"
    log = AuditLog(Database(tmp_path / "ft.duckdb"), key_path=rt.settings.audit_key)
    assert log.verify().ok
    for victim in (SUBJECTS[1], SUBJECTS[2]):
        entry = log.get(searches[victim])
        assert (entry.record.candidates[0].subject_id, entry.record.candidates[0].face_id) == (ERASED, ERASED)
        assert {(e.erasure.seq, e.erasure.action, e.erasure.operator) for e in entry.erased if e.erasure} == {
            (run_seq, "retention", "rex")}
    ran = log.get(run_seq)  # the run's own record names the subject it erased, sealed: it reads erased too
    assert ran.record.details["subjects"][0]["subject_id"] == ERASED
    assert [e.path for e in ran.erased] == ["$.details.subjects[0].subject_id"]
    # old's subject and fair's subject (fair has no key of its own: every face id a record named is its subject's)
    assert len(ran.record.details["erased_field_keys"]) == 2
    kept = [log.get(searches[s]).record.candidates[0].subject_id for s in layout["kept"]]
    assert kept == layout["kept"]  # nothing else changed


def test_a_retention_run_names_the_key_it_seals_a_subject_from_before_sealing_under(tmp_path: Path, fake_engine,
                                                                                   monkeypatch) -> None:
    """A subject enrolled before sealing has no field key: the run makes one to seal its record, and names it."""
    from datetime import UTC, datetime, timedelta

    from audit import Runtime, retention_run, set_gallery_retention

    rt = Runtime(str(tmp_path / "ft.duckdb"))
    admin = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "root", "admin")), fake_engine, rt.galleries)
    monkeypatch.setattr(trail_log, "seal_fields",  # the code before sealing (which had no hint either)
                        lambda fields, keys, tokens=None: {k: v for k, v in fields.items() if k != "sealed_subjects"})
    admin.create_gallery("old", fake_engine.config)
    admin.enroll("old", [EnrollItem(SUBJECTS[1], fake_engine.embed(face_png(SUBJECTS[1])), "a.png")])
    monkeypatch.undo()
    assert rt.log.field_keys.erasure_ids("old", [SUBJECTS[1]]) == []  # no field key yet
    set_gallery_retention(rt, "old", WHY, after_days=30, actor=actor_for(rt.db, "root", "admin"))
    later = datetime.now(UTC) + timedelta(days=31)
    done = retention_run(rt, WHY, actor=actor_for(rt.db, "rex", "auditor"), clock=lambda: later)
    ran = rt.log.get(done["audit_seq"])
    assert SUBJECTS[1].encode() not in ran.canonical
    assert ran.record.details["subjects"][0]["subject_id"] == ERASED
    assert [e.erasure.seq for e in ran.erased if e.erasure] == [done["audit_seq"]]
    assert rt.log.verify().ok
    rt.db.close()


def test_the_entry_an_append_returns_reads_as_the_stored_record_opened_under_its_keys(world) -> None:
    _, db, log, galleries, _, _, searches = world
    for done in searches.values():
        stored = log.get(done.seq)
        assert done.entry.record == stored.record and done.entry.canonical == stored.canonical
        assert done.entry.record.candidates[0].subject_id in SUBJECTS
    # a value its writer sealed itself (not by seal_fields) is opened under its key, as before
    [(_, token)] = log.field_keys.seal_owned([("s", SUBJECTS[0], "g", SUBJECTS[0])]).items()
    entry = log.append({"action": "blind_batch", "outcome": "ok", "operator": "olga", "details": {"plan": token,
                                                                                           "subject_id": SUBJECTS[1]}})
    assert entry.record.details == {"plan": SUBJECTS[0], "subject_id": SUBJECTS[1]}
    assert log.get(entry.seq).record == entry.record


@pytest.mark.slow
def test_a_subject_erased_by_another_process_is_never_shown_or_sealed_again_here(world, fake_engine) -> None:
    """This process searched the subject (its field key read and used); another process erases the subject."""
    tmp_path, db, log, galleries, _, items, searches = world
    victim = SUBJECTS[1]
    operator = AuditedEngine(AuditSession(log, CTX, actor_for(db, "olga", "operator")), fake_engine, galleries)
    seen = operator.search("g", face_png(victim, 4), top_k=1)  # the victim's key is in this process's memory now
    assert log.get(seen.seq).record.candidates[0].subject_id == victim
    erasure_seq = erase_in_another_process(tmp_path, log, victim)
    # every earlier record of the victim reads "erased" here, naming the other process's erasure
    for seq in (searches[victim].seq, seen.seq):
        entry = log.get(seq)
        assert entry.record.candidates[0].subject_id == ERASED
        assert {e.erasure.seq for e in entry.erased if e.erasure is not None} == {erasure_seq}
    # a search for the victim now finds nobody of that id, and no key was made for the victim again
    after = operator.search("g", face_png(victim, 4), top_k=4)
    assert victim not in {c.subject_id for c in after.result.candidates}
    assert victim not in log.get(after.seq).canonical.decode()
    assert log.field_keys.erasure_ids("g", [victim]) == []
    assert log.verify().ok
