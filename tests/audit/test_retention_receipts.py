"""Signed receipts of erasures and retention runs, checked as a data subject or a regulator would:
offline, with only the log's public key. Forged, edited or transplanted receipts fail with a named fault."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from audit import (
    AuditContext,
    AuditedEngine,
    AuditSession,
    OutputRefused,
    ReceiptError,
    Runtime,
    build_receipt,
    check_out_path,
    new_receipt_salt,
    protected_paths,
    retention_run,
    verify_receipt,
    write_receipt,
)
from audit.trail.chain import entry_hash
from audit.trail.sealed import is_sealed, subject_commitment
from core import EnrollItem
from tests.auth import actor_for
from tests.fakes import face_png

CTX = AuditContext(purpose="erasure request of a data subject", case_ref="DSR-7")


def make_log(tmp_path: Path, name: str, fake_engine) -> tuple[Runtime, AuditedEngine]:
    folder = tmp_path / name
    folder.mkdir()
    rt = Runtime(str(folder / "ft.duckdb"))
    admin = AuditedEngine(AuditSession(rt.log, CTX, actor_for(rt.db, "root", "admin")), fake_engine, rt.galleries)
    admin.create_gallery("g", fake_engine.config)
    admin.enroll("g", [EnrollItem(s, fake_engine.embed(face_png(s, v)), f"{s}{v}.png")
                       for s in ("ann", "bob") for v in (0, 1)])
    return rt, admin


SALT: dict[str, bytes] = {}


@pytest.fixture
def erased(tmp_path: Path, fake_engine):
    """ann's erasure, with the receipt written for her at that moment (her id and the salt only it holds)."""
    rt, admin = make_log(tmp_path, "a", fake_engine)
    salt = SALT["ann"] = new_receipt_salt()
    done = admin.delete_subject("g", "ann", receipt_salt=salt)
    path = write_receipt(rt.log, done.seq, tmp_path / "receipt.json", subject=("ann", salt))
    return rt, admin, done, path


def edited(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out = path.with_name(f"edited-{path.name}")
    out.write_text(json.dumps(doc))
    return out


def test_an_erasure_receipt_verifies_with_the_public_key_only(erased) -> None:
    rt, _, done, path = erased
    for key in (rt.log.public_key_pem(), rt.log.vkey()):
        report = verify_receipt(path, key)
        assert report.ok, report.fault
        assert (report.kind, report.seq, report.checkpoint_size) == ("erasure", done.seq, done.seq)
    report = verify_receipt(path, rt.log.public_key_pem())
    claims = report.claims
    assert claims is not None
    # the claims are the signed record's: the ids are sealed tokens there, and ann's id is shown by the commitment
    signed = json.loads(json.loads(path.read_text())["record"]["canonical"])
    erased_claim = claims["erased"]
    assert erased_claim == {"subject_id": signed["details"]["subject_id"], "faces": 2,
                            "face_ids": signed["details"]["deleted_face_ids"],
                            "subject_commitment": subject_commitment(SALT["ann"], "ann")}
    assert is_sealed(erased_claim["subject_id"]) and all(is_sealed(f) for f in erased_claim["face_ids"])
    assert "ann" not in json.dumps(claims) and not set(done.result) & set(erased_claim["face_ids"])
    assert report.subject_id == "ann" and report.scope is not None and "erased the data of the subject" in report.scope
    assert (claims["by"], claims["purpose"], claims["gallery"]) == ("root", CTX.purpose, "g")
    assert claims["at"] == rt.log.get(done.seq).record.ended_at
    # the log grows after the erasure: the receipt still verifies (it is proven against the tree of its record)
    rt.log.append({"action": "checkpoint", "outcome": "ok", "purpose": "later"})
    assert verify_receipt(path, rt.log.public_key_pem()).ok


@pytest.mark.parametrize(("change", "fault"), [
    (lambda d: d["claims"]["erased"].update(faces=5), "claims_mismatch"),
    (lambda d: d["claims"]["erased"].update(subject_id="bob"), "claims_mismatch"),
    (lambda d: d["claims"].update(by="someone else"), "claims_mismatch"),
    (lambda d: d["claims"].update(at="2020-01-01T00:00:00.000000Z"), "claims_mismatch"),
    (lambda d: d["record"].update(canonical=d["record"]["canonical"].replace(
        d["claims"]["erased"]["subject_commitment"], subject_commitment(SALT["ann"], "bob"))), "hash_mismatch"),
    (lambda d: d["subject"].update(subject_id="bob"), "subject_mismatch"),
    (lambda d: d["subject"].update(salt=base64.b64encode(bytes(32)).decode()), "subject_mismatch"),
    (lambda d: d["subject"].update(salt=base64.b64encode(bytes(8)).decode()), "malformed"),
    (lambda d: d["record"].update(proof=[]), "not_in_log"),
    (lambda d: d["record"].update(seq=d["record"]["seq"] - 1), "not_in_log"),
    (lambda d: d.update(signature=base64.b64encode(bytes(64)).decode()), "bad_signature"),
    (lambda d: d.update(checkpoint=d["checkpoint"].replace("\n\n", "\n\n\n")), "bad_signature"),
    (lambda d: d.update(format="facetrail-receipt/0"), "bad_format"),
    (lambda d: d.pop("record"), "malformed"),
])
def test_an_edited_receipt_fails_with_a_named_fault(erased, change, fault) -> None:
    rt, _, _, path = erased
    report = verify_receipt(edited(path, change), rt.log.public_key_pem())
    assert not report.ok and report.fault is not None and report.fault["kind"] == fault, report.fault


def test_a_receipt_for_a_record_not_in_the_log_fails(erased) -> None:
    rt, _, done, path = erased

    def fabricate(doc: dict) -> None:
        # a delete record the log never wrote (committing to bob), hashed consistently, with claims and subject
        # that match it: everything checks except that the log's tree does not hold it
        bob = subject_commitment(SALT["ann"], "bob")
        text = doc["record"]["canonical"].replace(doc["claims"]["erased"]["subject_commitment"], bob)
        prev = bytes.fromhex(doc["record"]["prev_hash"])
        doc["record"].update(canonical=text, entry_hash=entry_hash(prev, text.encode()).hex())
        doc["claims"]["erased"]["subject_commitment"] = bob
        doc["subject"]["subject_id"] = "bob"

    report = verify_receipt(edited(path, fabricate), rt.log.public_key_pem())
    assert not report.ok and report.fault is not None and report.fault["kind"] == "not_in_log"


def test_a_receipt_of_another_log_fails_with_this_logs_key(erased, tmp_path: Path, fake_engine) -> None:
    rt, _, _, _ = erased
    other, admin = make_log(tmp_path, "b", fake_engine)
    done = admin.delete_subject("g", "ann")
    path = write_receipt(other.log, done.seq, tmp_path / "other.json")
    assert verify_receipt(path, other.log.public_key_pem()).ok
    report = verify_receipt(path, rt.log.public_key_pem())
    assert not report.ok and report.fault is not None and report.fault["kind"] == "bad_signature"


def test_the_log_names_the_subject_of_an_erasure_only_through_the_requesters_salt(erased, tmp_path: Path) -> None:
    rt, _, _, path = erased
    salt = SALT["ann"]
    rt.db.close()
    # the salt (raw, hex, base64) is in the requester's receipt and in no file of the deployment
    clues = {salt, salt.hex().encode(), base64.b64encode(salt), base64.urlsafe_b64encode(salt)}
    assert base64.b64encode(salt) in path.read_bytes()
    for f in (tmp_path / "a").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(c in data for c in clues), f"the receipt salt is in {f.name}"
    # a guess of the id without the salt does not reproduce the commitment the log holds
    committed = json.loads(path.read_text())["claims"]["erased"]["subject_commitment"]
    assert committed not in {subject_commitment(bytes(32), "ann"), subject_commitment(new_receipt_salt(), "ann")}


def test_a_later_receipt_proves_the_record_exists_not_whose_it_is(erased, tmp_path: Path) -> None:
    rt, _, done, path = erased
    later = write_receipt(rt.log, done.seq, tmp_path / "later.json")  # privacy receipt SEQ: no salt
    doc = json.loads(later.read_text())
    assert doc["subject"] is None and "not whose data it erased" in doc["scope"]
    report = verify_receipt(later, rt.log.public_key_pem())
    assert report.ok and report.subject_id is None and report.scope is not None
    assert "not whose data it erased" in report.scope
    # adding a subject to it is checked against the commitment: the wrong one fails, the right one passes
    doc["subject"] = {"subject_id": "bob", "salt": base64.b64encode(SALT["ann"]).decode()}
    assert verify_receipt(edited(later, lambda d: d.update(subject=doc["subject"])),
                          rt.log.public_key_pem()).fault == {
        "kind": "subject_mismatch", "detail": f"record #{done.seq}'s commitment does not match the subject id and "
                                              "salt of this receipt: it is not the erasure of that subject"}
    with pytest.raises(ReceiptError, match="no commitment"):
        build_receipt(rt.log, done.seq, subject=("bob", SALT["ann"]))


def test_a_drop_and_a_retention_run_have_receipts(erased) -> None:
    rt, admin, _, path = erased
    dropped = admin.drop_gallery("g")
    doc = build_receipt(rt.log, dropped.seq)
    assert doc["claims"]["erased"] == {"gallery": "g", "faces": 2}
    # a subject added to a receipt of a record that commits to none fails, named
    with_subject = path.with_name("drop.json")
    with_subject.write_text(json.dumps({**doc, "subject": {"subject_id": "bob",
                                                           "salt": base64.b64encode(SALT["ann"]).decode()}}))
    report = verify_receipt(with_subject, rt.log.public_key_pem())
    assert report.fault is not None and report.fault["kind"] == "no_commitment"
    ran = retention_run(rt, CTX, actor=actor_for(rt.db, "dpo", "auditor"))
    out = write_receipt(rt.log, ran["audit_seq"], path.with_name("retention.json"))
    report = verify_receipt(out, rt.log.public_key_pem())
    assert report.ok and report.kind == "retention"
    assert report.claims is not None and report.claims["erased"]["subjects"] == []


def test_no_receipt_for_what_is_not_an_erasure(erased) -> None:
    rt, _, _, path = erased
    with pytest.raises(ReceiptError, match="not a successful erasure"):
        build_receipt(rt.log, 1)  # create_gallery
    with pytest.raises(ReceiptError, match="cannot read"):
        verify_receipt(path.with_name("missing.json"), rt.log.public_key_pem())


def test_a_receipt_never_overwrites_a_file_nor_names_a_protected_one(erased, tmp_path: Path) -> None:
    rt, _, done, path = erased
    before = path.read_bytes()
    with pytest.raises(OutputRefused, match="existing file"):
        write_receipt(rt.log, done.seq, path)
    assert path.read_bytes() == before
    for target in (rt.db.path, f"{rt.db.path}.wal", f"{rt.db.path}.keys", f"{rt.db.path}.evidence/x.json",
                   rt.log.key_path, f"{rt.log.key_path}.blind"):
        with pytest.raises(OutputRefused):
            write_receipt(rt.log, done.seq, target)
    custom = tmp_path / "vault" / "subject.keys"  # FACETRAIL_KEYSTORE elsewhere (the CLI test sets it for real)
    with pytest.raises(OutputRefused, match="never"):
        check_out_path(custom, protected_paths(rt.db.path, keystore=custom))


def test_a_receipt_verifies_across_a_key_rotation_with_the_key_history(erased) -> None:
    rt, _, done, path = erased
    old = rt.log.vkey()
    _, _, new = rt.log.rotate_key("root")
    later = write_receipt(rt.log, done.seq, path.with_name("after-rotation.json"))  # the record's note: old key
    assert verify_receipt(later, f"{old}\n{new}\n").ok
    assert verify_receipt(path, old).ok  # the receipt made before the rotation needs only the old key
    report = verify_receipt(later, old)  # the receipt itself is signed by the key of the day it was made
    assert not report.ok and report.fault is not None and report.fault["kind"] == "bad_signature"
