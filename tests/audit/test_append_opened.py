"""What ``append`` returns is what a reader gets; the keys sealing keeps in memory never outlive an erasure.

``AuditLog.append`` returns its record opened from the clear values it has just sealed
(audit.trail.sealed ``opened_known``: nothing decoded, no key read), and sealing keeps the
field keys (and tokens) it used while the key store file is unchanged. These tests compare
the returned entry with ``log.get`` field by field for every shape of sealed record, and
erase a subject elsewhere (another key store object on the file, another process) after this
process has sealed under its key: the next record naming the subject must not be sealed
under the destroyed key, and the old records must read ``"erased"``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from audit import AuditContext, AuditedEngine, AuditLog, AuditSession, Forbidden
from audit.trail.log import AuditEntry
from audit.trail.records import AuditRecord
from audit.trail.sealed import ERASED, ERASED_KEYS, SUBJECTS_HINT, FieldKeys
from core import EnrollItem, GalleryStore
from core.keystore import KeyStore
from tests.audit.services import deployment, erase_in_another_process
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="returned entry test", case_ref="CASE-9")
SUBJECTS = ["Ann_Example", "Ben_Example"]


def assert_same_entry(entry: AuditEntry, read: AuditEntry) -> None:
    """The entry ``append`` returned equals the one ``log.get`` reads, field by field."""
    assert (entry.seq, entry.prev_hash, entry.entry_hash, entry.canonical) == \
        (read.seq, read.prev_hash, read.entry_hash, read.canonical)
    for f in dataclasses.fields(AuditRecord):
        assert getattr(entry.record, f.name) == getattr(read.record, f.name), f.name
    assert entry.record == read.record
    assert entry.erased == read.erased
    assert json.dumps(entry.to_dict(), sort_keys=True) == json.dumps(read.to_dict(), sort_keys=True)


@pytest.fixture
def world(tmp_path: Path, fake_engine):
    """A file database with gallery ``g`` of two subjects (three faces); an admin and an operator service on it."""
    photos = [(s, 0) for s in SUBJECTS] + [(SUBJECTS[0], 1)]  # two faces of the first subject
    d = deployment(tmp_path, fake_engine, CTX,
                   [EnrollItem(s, fake_engine.embed(face_png(s, v)), f"{s}-{v}.png") for s, v in photos])
    return tmp_path, d.db, d.log, d.galleries, d.admin, d.operator, d.enrolled


def test_a_search_with_candidates_returns_the_entry_a_reader_gets(world) -> None:
    _, _, log, galleries, _, operator, enrolled = world
    done = operator.search("g", face_png(SUBJECTS[0], 3), top_k=2)
    assert len(done.result.candidates) == 2  # both faces of the subject: two candidates, four sealed values
    first = done.entry.record.candidates[0]
    assert (first.subject_id, first.face_id) == (done.result.candidates[0].subject_id,
                                                 done.result.candidates[0].face_id)
    assert first.subject_id == SUBJECTS[0] and SUBJECTS[0].encode() not in done.entry.canonical
    assert done.entry.canonical.count(b'"sealed.') == 4
    assert_same_entry(done.entry, log.get(done.seq))
    assert_same_entry(enrolled.entry, log.get(enrolled.seq))  # face ids as dict keys (face_detectors), hints
    assert enrolled.entry.record.details["subject_ids"] == SUBJECTS


def test_searches_after_an_enrolment_seal_and_return_without_reading_a_key(world, fake_engine, monkeypatch) -> None:
    """The enrolment made the subjects' keys (and read them back): searches take them from memory, one stat each.

    (Searches by embedding, as the overhead benchmark's: a search by image with candidates keeps
    the probe image as evidence under a new key, a rewrite of the key store, so the next one reads again.)
    """
    _, _, log, _, _, operator, _ = world
    probes = [fake_engine.embed(face_png(s, 3)) for s in SUBJECTS]
    reads: list[int] = []
    real = KeyStore.get_many
    monkeypatch.setattr(KeyStore, "get_many", lambda store, ids: reads.append(1) or real(store, ids))
    done = [operator.search("g", p, top_k=1) for p in probes]
    assert [d.entry.record.candidates[0].subject_id for d in done] == SUBJECTS
    assert reads == []
    monkeypatch.undo()
    for d in done:
        assert_same_entry(d.entry, log.get(d.seq))


def test_every_shape_of_sealed_record_returns_the_entry_a_reader_gets(world) -> None:
    _, _, log, galleries, _, operator, _ = world
    search = operator.search("g", face_png(SUBJECTS[1], 3), top_k=1)
    face = search.result.candidates[0].face_id
    earlier_token = json.loads(search.entry.canonical)["candidates"][0]["subject_id"]
    shapes = [
        # a review of a video candidate ("<track>:<face id>") whose note names the subject
        {"action": "review", "outcome": "ok", "operator": "rita", "reviewer": "rita", "decision": "confirm",
         "target_seq": search.seq, "target_face_id": f"3:{face}", "note": f"same scar as {SUBJECTS[1]}",
         "gallery": {"name": "g", "fingerprint": "f", "size": 2}},
        # an error text naming the subject, the ids in details, a text with "sealed." that is no token
        {"action": "delete", "outcome": "not_found", "operator": "root", "purpose": "sealed. or not",
         "details": {"gallery_name": "g", "subject_id": SUBJECTS[0], "deleted_face_ids": [face],
                     "error": f"KeyError: {SUBJECTS[0]} has sealed.s.0 no face", "tracks": [{"candidates": [face]}]}},
        # a retention run's subjects, each under its own gallery's key
        {"action": "retention", "outcome": "ok", "operator": "root",
         "details": {"subjects": [{"gallery_name": "g", "subject_id": SUBJECTS[0]},
                                  {"gallery_name": "h", "subject_id": "Cy_Example"}]}},
        # a token sealed earlier, quoted whole where sealing does not look (opened under its key, as get does)
        {"action": "export", "outcome": "ok", "operator": "olga", "details": {"quoted": earlier_token,
                                                                            "subject_id": SUBJECTS[1]}},
        # hints: an image hash sealed in probe_sha256, a face in face_detectors keys
        {"action": "enroll", "outcome": "ok", "operator": "root", "gallery": {"name": "g", "fingerprint": "f",
                                                                             "size": 2},
         "probe_sha256": ["a" * 64, "b" * 64], "details": {"face_detectors": {face: "dlib", "zz": "dlib"}},
         SUBJECTS_HINT: {"a" * 64: ["g", SUBJECTS[1]], face: ["g", SUBJECTS[1]]}},
    ]
    for fields in shapes:
        entry = log.append(fields)
        assert b"sealed." in entry.canonical
        assert_same_entry(entry, log.get(entry.seq))
    review, delete, retention, export, enroll = (log.get(s) for s in range(log.size() - 4, log.size() + 1))
    assert review.record.target_face_id == f"3:{face}" and review.record.note == f"same scar as {SUBJECTS[1]}"
    assert delete.record.details["error"].startswith("KeyError: ") and delete.record.purpose == "sealed. or not"
    assert [s["subject_id"] for s in retention.record.details["subjects"]] == [SUBJECTS[0], "Cy_Example"]
    assert export.record.details == {"quoted": SUBJECTS[1], "subject_id": SUBJECTS[1]}
    assert enroll.record.probe_sha256 == ("a" * 64, "b" * 64) and set(enroll.record.details["face_detectors"]) == \
        {face, "zz"}
    assert log.verify().ok


def _key_of(entry: AuditEntry) -> str:
    """The field key id the refusal's sealed subject id names (details.subject_id)."""
    token = json.loads(entry.canonical)["details"]["subject_id"]
    assert token.startswith("sealed.s.")
    return str(token.split(".")[2])


def test_a_key_destroyed_through_another_key_store_object_is_never_used_to_seal_again(world, fake_engine) -> None:
    _, db, log, _, _, operator, _ = world
    victim = SUBJECTS[0]
    seen = operator.search("g", face_png(victim, 3), top_k=1)
    with pytest.raises(Forbidden):  # a refused erasure names the subject: sealed under the key in memory now
        operator.delete_subject("g", victim)
    before = log.store.get(log.size())  # the stored row (reading it through the log would look at the key store)
    assert before is not None
    # another key store object on the file (as another process has): its erasure rewrites the file
    other_log = AuditLog(db, key_path=log.key_path)
    other = AuditedEngine(AuditSession(other_log, CTX, actor_for(db, "dora", "admin")), fake_engine, GalleryStore(db))
    erasure = other.delete_subject("g", victim)
    with pytest.raises(Forbidden):  # the first thing this log does after the erasure: seal the subject's id
        operator.delete_subject("g", victim)
    after = log.get(log.size())
    old_key = str(json.loads(before.canonical)["details"]["subject_id"]).split(".")[2]
    assert old_key in erasure.entry.record.details[ERASED_KEYS]
    assert old_key not in FieldKeys(KeyStore(log.field_keys.keys.path)).keys.get_many([old_key])
    assert after.seq > before.seq and _key_of(after) != old_key  # a new key: the destroyed one was not used
    assert after.record.details["subject_id"] == victim
    assert log.get(seen.seq).record.candidates[0].subject_id == ERASED
    assert log.get(before.seq).record.details["subject_id"] == ERASED
    assert log.verify().ok


@pytest.mark.slow
def test_a_key_destroyed_by_another_process_is_never_used_to_seal_or_shown_again(world) -> None:
    tmp_path, db, log, _, _, operator, _ = world
    victim = SUBJECTS[1]
    seen = operator.search("g", face_png(victim, 3), top_k=1)
    with pytest.raises(Forbidden):  # sealed under the key in memory; nothing is read from the log after it
        operator.delete_subject("g", victim)
    before_seq = log.size()
    erasure_seq = erase_in_another_process(tmp_path, log, victim)
    with pytest.raises(Forbidden):  # the first thing this process does after the erasure: seal the subject's id
        operator.delete_subject("g", victim)
    after = log.get(log.size())
    old_key = _key_of(log.get(before_seq))  # (its canonical bytes: the token stays when its key is gone)
    erasure = log.get(erasure_seq)
    assert old_key in erasure.record.details[ERASED_KEYS]
    assert _key_of(after) != old_key and after.record.details["subject_id"] == victim
    assert log.get(before_seq).record.details["subject_id"] == ERASED
    entry = log.get(seen.seq)
    assert entry.record.candidates[0].subject_id == ERASED
    assert {e.erasure.seq for e in entry.erased if e.erasure is not None} == {erasure.seq}
    assert log.verify().ok
