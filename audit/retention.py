r"""Retention schedules (galleries, personal fields of the log), the retention run, and signed receipts.

**Gallery schedules.** An administrator gives a gallery one schedule (``facetrail gallery
retention NAME --after-days N | --until DATE --purpose TEXT``): each subject is erased ``N``
days after its last interaction (its latest enrolment, search hit or review of a hit), or
the whole gallery on its end date (from 00:00 UTC of that day), the date tied to the
purpose it was kept for (the record's purpose). The ``retention_schedule`` record *is*
the schedule: the latest one of a gallery, made after the gallery was (last) created, is
in force, so nobody changes it without a signed record.

**Personal fields of the log.** ``FACETRAIL_LOG_PERSONAL_DAYS`` says how long personal
fields of audit records are kept; it is never shorter than the legal minimum the deployer
sets (``FACETRAIL_LOG_PERSONAL_MIN_DAYS``, default 183 days): a shorter one is refused
(:class:`RetentionBelowMinimum`, recorded). A field key of the log seals every field of one
subject (:mod:`audit.trail.sealed`, "Retention"), so what is due is the keys of subjects no
record names since the cut-off (:meth:`audit.trail.log.AuditLog.field_keys_due`): the run
names them in its record and destroys them after the commit; their fields then read
``"erased"``, naming the run.

**The run.** :func:`retention_run` applies every rule at once (evaluation cache, review
evidence, gallery schedules, the log's personal fields). A dry run lists what is due and
changes nothing (no record). A run erases what is due through the galleries' own erasure
(rows deleted, the subject's key destroyed after commit: crypto-shredding, as ``gallery
delete --subject``), in one transaction with its ``retention`` record; a second run erases
nothing and is recorded too. The record names the erased subjects sealed (tokens under
their field keys, as every record does) and lists in ``details.erased_field_keys`` the log
field keys it destroys after the commit: the erased subjects', the dropped galleries' (their
subjects' and the gallery's own) and the log's personal fields due, so the erased subjects'
fields in every earlier record read ``"erased"`` naming the run.

**Receipts.** :func:`build_receipt` turns an erasure record (``delete``, ``drop_gallery``)
or a ``retention`` record into a JSON receipt a data subject or a regulator checks offline
with the log's public key (:func:`verify_receipt`)::

    {"format": "facetrail-receipt/1",
     "claims": {"kind", "action", "seq", "at", "by", "purpose", "gallery", "erased": {...}},
     "subject": {"subject_id", "salt": base64} or null (see "Whose erasure" below),
     "scope": what the receipt proves, in words (unsigned; the verifier says it again),
     "checkpoint": the signed checkpoint note of the tree that ends at the record,
     "record": {"seq", "prev_hash", "entry_hash", "canonical", "proof": [base64...]},
     "signature": base64 Ed25519 over b"facetrail.receipt.v1\n" + canonical JSON of
                  {"claims", "checkpoint", "entry_hash"}}

The claims are made from the record's signed text (its personal fields sealed: tokens, not
clear ids) on both sides: the verifier recomputes the record's entry hash, proves it is
leaf ``seq - 1`` of the tree the checkpoint signs (RFC 6962), recomputes the claims from the
record itself, and checks the log key's signatures (the note's and the receipt's): an
edited claim, a record that is not in the log, or another key each fail with a named fault.

**Whose erasure.** A subject's erasure made with a receipt (``gallery delete --subject
--receipt FILE``) puts in its record ``details.subject_commitment`` = ``sha256(salt ||
subject_id)`` (:func:`audit.trail.sealed.subject_commitment`) under a fresh random 32-byte
salt (:func:`new_receipt_salt`) that only that receipt holds, beside the clear id (it is the
requester's own file): ``"subject": {"subject_id", "salt"}``. The verifier checks the
commitment when they are present (``subject_mismatch``, ``no_commitment``); the log holds
neither the salt nor a guessable hash of the id. A receipt made later (``privacy receipt
SEQ``) has no salt: it proves the erasure record is in the log, not whose it was, and its
``scope`` (and the verifier's) says so.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from audit.accounts import Actor
from audit.errors import AuditError
from audit.evidence import EvidenceStore
from audit.outputs import check_out_path
from audit.runtime import Runtime
from audit.session import AuditContext, Audited, AuditSession
from audit.trail.chain import entry_hash, verify_inclusion
from audit.trail.convert import gallery_fields
from audit.trail.excerpt import read_json_object
from audit.trail.log import AuditLog
from audit.trail.notes import NoteError, parse_checkpoint, verify_checkpoint
from audit.trail.records import AuditRecord, canonical_bytes, decode_record
from audit.trail.sealed import ERASED_KEYS, subject_commitment
from audit.trail.store import AuditFilter
from audit.trail.verify import parse_keys
from core.cache import EvaluationCache
from core.errors import BadInput
from core.settings import Settings

__all__ = [
    "RECEIPT_FORMAT",
    "DueGallery",
    "DueSubject",
    "GallerySchedule",
    "LogPersonalSchedule",
    "ReceiptError",
    "ReceiptReport",
    "RetentionBelowMinimum",
    "build_receipt",
    "check_receipt_path",
    "gallery_schedules",
    "log_personal_schedule",
    "new_receipt_salt",
    "retention_due",
    "retention_run",
    "set_gallery_retention",
    "verify_receipt",
    "write_receipt",
]

SCHEDULE_ACTION = "retention_schedule"
RECEIPT_FORMAT = "facetrail-receipt/1"
_RECEIPT_DOMAIN = b"facetrail.receipt.v1\n"
#: Record actions a receipt can be made of, and the kind of receipt.
_RECEIPT_KINDS = {"delete": "erasure", "drop_gallery": "erasure", "retention": "retention"}
#: The longest schedule accepted (100 years): a larger number is a typing error, not a schedule.
_MAX_DAYS = 36_500
#: Records are in time order to within this (a record carries its action's start time; see _first_seq_since).
_ORDER_SLACK = timedelta(days=7)


class RetentionBelowMinimum(AuditError):
    """The log's personal-field schedule is shorter than the deployer's legal minimum (refused, recorded)."""

    code = "retention_below_minimum"


class ReceiptError(AuditError):
    """A receipt cannot be made (no such erasure record) or read (not a JSON receipt file)."""

    code = "bad_receipt"


# -- gallery schedules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GallerySchedule:
    """A gallery's retention schedule: days after a subject's last interaction, or an end date."""

    gallery_name: str
    after_days: int | None
    """Erase a subject this many days after its last interaction (None: an end date instead)."""
    until: str | None
    """Erase the whole gallery from this UTC date on (ISO ``YYYY-MM-DD``)."""
    purpose: str
    """The purpose the gallery is kept for (the schedule record's purpose)."""
    seq: int | None = None
    """The ``retention_schedule`` record that set it."""
    set_by: str | None = None
    set_at: str | None = None

    def describe(self) -> str:
        """One line a reader understands."""
        rule = (f"each subject erased {self.after_days} days after its last enrolment, search hit or review"
                if self.after_days is not None else f"the whole gallery erased on {self.until}")
        return f"{rule}; purpose: {self.purpose} (record #{self.seq} by {self.set_by})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"gallery_name": self.gallery_name, "after_days": self.after_days, "until": self.until,
                "purpose": self.purpose, "seq": self.seq, "set_by": self.set_by, "set_at": self.set_at}


def _check_schedule(after_days: int | None, until: str | None) -> None:
    """Refuse a schedule that is not exactly one of a day count in 1..36500 or an ISO date."""
    if (after_days is None) == (until is None):
        raise ValueError("a retention schedule is either --after-days N or --until DATE, not both and not neither")
    if after_days is not None and (isinstance(after_days, bool) or not isinstance(after_days, int)
                                   or not 1 <= after_days <= _MAX_DAYS):
        raise ValueError(f"--after-days must be a whole number of days in 1..{_MAX_DAYS}, got {after_days!r}")
    if until is not None:
        try:
            date.fromisoformat(until)
        except ValueError as err:
            raise ValueError(f"--until must be a date YYYY-MM-DD, got {until!r}") from err
        if len(until) != 10:
            raise ValueError(f"--until must be a date YYYY-MM-DD, got {until!r}")


def set_gallery_retention(runtime: Runtime, gallery_name: str, context: AuditContext, *,
                          after_days: int | None = None, until: str | None = None,
                          actor: Actor | None = None) -> Audited[GallerySchedule]:
    """Set a gallery's retention schedule (administrators); the record is the schedule (module docstring).

    The context's purpose is the purpose the gallery is kept for.

    Raises
    ------
    NotAuthenticated, Forbidden, MissingContext
        Refused (and recorded): only administrators set schedules, for a purpose.
    BadInput
        Both or neither of ``after_days`` and ``until``, a day count out of range, a bad
        date (refused and recorded).
    RecognitionError
        No such gallery (recorded).
    """
    session = runtime.session(context, actor)
    asked = {"gallery_name": gallery_name, "after_days": after_days, "until": until}
    actor_now = session.check(SCHEDULE_ACTION, asked)
    try:
        _check_schedule(after_days, until)
    except ValueError as err:
        session.refuse(SCHEDULE_ACTION, BadInput.code, str(err), asked)
        raise BadInput(str(err)) from err
    purpose = (context.purpose or "").strip()

    def call() -> GallerySchedule:
        runtime.galleries.info(gallery_name)  # no such gallery: raises, recorded
        return GallerySchedule(gallery_name, after_days, until, purpose, None, actor_now.name)

    def describe(s: GallerySchedule) -> dict[str, Any]:
        return {"gallery": gallery_fields(runtime.galleries.ref(gallery_name)),
                "details": {"schedule": {"after_days": s.after_days, "until": s.until, "purpose": s.purpose}}}

    done = session.run(SCHEDULE_ACTION, call, describe, lambda _: {"details": asked})
    s = done.result
    return Audited(GallerySchedule(s.gallery_name, s.after_days, s.until, s.purpose, done.seq, s.set_by,
                                   done.entry.record.ended_at), done.entry)


def gallery_schedules(log: AuditLog, galleries: Iterable[str]) -> dict[str, GallerySchedule]:
    """Return the schedule in force per gallery of ``galleries`` (those that exist).

    A gallery's schedule is its latest schedule record made since the gallery was (last) created.
    """
    created: dict[str, int] = {}
    for e in log.list(AuditFilter(action="create_gallery")):
        if e.record.outcome == "ok" and e.record.gallery is not None:
            created[e.record.gallery.name] = e.seq
    out: dict[str, GallerySchedule] = {}
    for e in log.list(AuditFilter(action=SCHEDULE_ACTION)):
        r = e.record
        if r.outcome != "ok" or r.gallery is None or e.seq < created.get(r.gallery.name, 0):
            continue
        s = r.details["schedule"]
        out[r.gallery.name] = GallerySchedule(r.gallery.name, s["after_days"], s["until"], s["purpose"], e.seq,
                                              r.operator, r.ended_at)
    existing = set(galleries)
    return {name: s for name, s in out.items() if name in existing}


# -- what is due -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueSubject:
    """A subject whose schedule says erase it now."""

    gallery_name: str
    subject_id: str
    faces: int
    last_enrolled: str
    """ISO time of its latest enrolment."""
    no_interaction_since: str
    """The cut-off: no enrolment, search hit or review of a hit since (ISO, UTC)."""
    schedule_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class DueGallery:
    """A gallery whose end date has come: erase all of it."""

    gallery_name: str
    until: str
    faces: int
    schedule_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def _time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _iso_z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first_seq_since(log: AuditLog, t: datetime) -> int:
    """Return the first seq whose record started at or after ``t`` less :data:`_ORDER_SLACK` (binary search).

    Records are appended in time order, except that a long action's record carries its start
    time: :data:`_ORDER_SLACK` covers actions that ran for up to that long. The caller still
    filters on the start time itself, so this only prunes what is surely older.
    """
    lo, hi, bound = 1, log.size() + 1, t - _ORDER_SLACK
    while lo < hi:
        mid = (lo + hi) // 2
        if _time(log.get(mid).record.started_at) < bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _active_since(runtime: Runtime, gallery_name: str, cutoff: datetime) -> set[str]:
    """Return the subjects of a gallery with a search hit, or a review of one, that started at or after ``cutoff``.

    Only records since the cut-off can keep a subject: one due has no interaction after it.
    """
    first = _first_seq_since(runtime.log, cutoff)
    since = _iso_z(cutoff)
    hits: dict[int, list[str]] = {}
    active: set[str] = set()
    for e in runtime.log.list(AuditFilter(action="search", gallery=gallery_name, after_seq=first - 1)):
        if e.record.candidates:
            hits[e.seq] = [c.subject_id for c in e.record.candidates]
            if e.record.started_at >= since:
                active.update(hits[e.seq])
    for e in runtime.log.list(AuditFilter(action="review", after_seq=first - 1)):
        r = e.record  # a review since the cut-off keeps the subjects of its search, however old that search
        if r.outcome != "ok" or r.started_at < since or r.target_seq is None:
            continue
        if r.target_seq not in hits:
            target = runtime.log.get(r.target_seq).record
            ours = target.action == "search" and target.gallery is not None and target.gallery.name == gallery_name
            hits[r.target_seq] = [c.subject_id for c in target.candidates] if ours else []
        active.update(hits[r.target_seq])
    return active


def retention_due(runtime: Runtime, now: datetime) -> tuple[list[DueGallery], list[DueSubject]]:
    """Return the galleries whose end date has come and the subjects due, under the schedules in force.

    A subject is due when its latest enrolment, and every search hit of it and review of such a
    hit, are older than the schedule's period.
    """
    galleries: list[DueGallery] = []
    subjects: list[DueSubject] = []
    for name, s in sorted(gallery_schedules(runtime.log, [g.name for g in runtime.galleries.list()]).items()):
        if s.until is not None:
            if now >= datetime.combine(date.fromisoformat(s.until), datetime.min.time(), UTC):
                galleries.append(DueGallery(name, s.until, runtime.galleries.info(name).size, s.seq))
            continue
        assert s.after_days is not None
        cutoff = now - timedelta(days=s.after_days)
        enrolled: dict[str, datetime] = {}
        faces: dict[str, int] = {}
        for f in runtime.galleries.faces(name):
            t = _time(f["enrolled_at"])
            enrolled[f["subject_id"]] = max(enrolled.get(f["subject_id"], t), t)
            faces[f["subject_id"]] = faces.get(f["subject_id"], 0) + 1
        idle = [subject for subject in sorted(enrolled) if enrolled[subject] < cutoff]
        if not idle:
            continue
        active = _active_since(runtime, name, cutoff)
        subjects += [DueSubject(name, subject, faces[subject], enrolled[subject].isoformat(), _iso_z(cutoff), s.seq)
                     for subject in idle if subject not in active]
    return galleries, subjects


# -- personal fields of the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogPersonalSchedule:
    """How long personal fields of audit records are kept, and the legal minimum it may not go below."""

    days: float | None
    """None: kept as long as the log."""
    minimum_days: float

    def cutoff(self, now: datetime) -> datetime | None:
        """Return the cut-off: records written before it have personal fields due (None: never)."""
        return None if self.days is None else now - timedelta(days=self.days)

    def describe(self) -> str:
        """One line a reader understands."""
        kept = "as long as the log" if self.days is None else f"{self.days:g} days"
        return f"personal fields kept {kept} (legal minimum {self.minimum_days:g} days)"


def log_personal_schedule(settings: Settings) -> LogPersonalSchedule:
    """Return the log's personal-field schedule from the settings.

    Raises
    ------
    RetentionBelowMinimum
        ``FACETRAIL_LOG_PERSONAL_DAYS`` is shorter than ``FACETRAIL_LOG_PERSONAL_MIN_DAYS``.
    """
    days, minimum = settings.log_personal_days, settings.log_personal_min_days
    if days is not None and days < minimum:
        raise RetentionBelowMinimum(
            f"FACETRAIL_LOG_PERSONAL_DAYS={days:g} is shorter than the legal minimum the deployment sets "
            f"(FACETRAIL_LOG_PERSONAL_MIN_DAYS={minimum:g} days); personal fields of audit records must be kept "
            "at least that long")
    return LogPersonalSchedule(days, minimum)


def _log_fields_plan(log: AuditLog, schedule: LogPersonalSchedule, now: datetime) -> tuple[dict[str, Any], list[str]]:
    """Return the plan of the log's personal fields and the field keys due (random ids)."""
    cutoff = schedule.cutoff(now)
    plan: dict[str, Any] = {"days": None if schedule.days is None else f"{schedule.days:g}",
                            "minimum_days": f"{schedule.minimum_days:g}",
                            "cutoff": None if cutoff is None else _iso_z(cutoff)}
    if cutoff is None:
        return {**plan, "records_due": 0, "field_keys_due": 0, "status": "no_schedule"}, []
    records = len(log.store.select(AuditFilter(until=plan["cutoff"])))  # rows only: no record decoded
    due = log.field_keys_due(plan["cutoff"])
    return {**plan, "records_due": records, "field_keys_due": len(due),
            "status": "shreddable" if due else "nothing_due"}, due


# -- the run -----------------------------------------------------------------------------------------


def _refused_below_minimum(session: AuditSession, settings: Settings) -> LogPersonalSchedule:
    try:
        return log_personal_schedule(settings)
    except RetentionBelowMinimum as err:
        session.refuse("retention", err.code, str(err), {"log_personal_days": str(settings.log_personal_days),
                                                         "log_personal_min_days": str(settings.log_personal_min_days)})
        raise


@dataclass
class _Shredding:
    """The log field keys a run destroys after its commit: (gallery, subject) pairs, and keys named by id."""

    pairs: list[tuple[str, str]]
    key_ids: list[str]

    def shred(self, runtime: Runtime) -> None:
        """Destroy them (after the commit): the galleries' keys and the pairs' field keys in one rewrite, then the rest."""
        field_keys = runtime.log.field_keys
        by_gallery: dict[str, list[str]] = {}
        for gallery, subject in self.pairs:
            by_gallery.setdefault(gallery, []).append(subject)
        also = [k for gallery, subjects in by_gallery.items() for k in field_keys.shred_ids(gallery, subjects)]
        runtime.galleries.flush(also=also)
        if self.key_ids:
            field_keys.shred_key_ids(self.key_ids)


def _erase_due(runtime: Runtime, galleries: list[DueGallery], subjects: list[DueSubject], due_keys: list[str],
               shredding: _Shredding) -> list[str]:
    """Erase the galleries and subjects due (inside the run's transaction); return the field key ids to name.

    Fills ``shredding`` with what to destroy after the commit.
    """
    field_keys = runtime.log.field_keys
    named: set[str] = set()
    for g in galleries:  # its subjects' field keys and the gallery's own (face ids whose subject no record named)
        pairs = [(g.gallery_name, s) for s in sorted({f["subject_id"] for f in runtime.galleries.faces(g.gallery_name)})]
        pairs.append((g.gallery_name, ""))
        named.update(field_keys.erasure_ids(g.gallery_name, [s for _, s in pairs]))
        shredding.pairs += pairs
        runtime.galleries.drop(g.gallery_name)
    # the erased subjects' keys, made now for one that has none (a file from before sealing): the run's record
    # seals the subject under it, and names it, before it is destroyed
    pairs = [(s.gallery_name, s.subject_id) for s in subjects]
    named.update(key_id for key_id, _ in field_keys.keys_for(pairs, create=True).values())
    shredding.pairs += pairs
    for s in subjects:
        runtime.galleries.delete_subject(s.gallery_name, s.subject_id)
    shredding.key_ids = sorted(set(due_keys) - named)
    return sorted(named | set(due_keys))


def retention_run(runtime: Runtime, context: AuditContext | None = None, *, dry_run: bool = False,
                  actor: Actor | None = None, evidence: EvidenceStore | None = None,
                  clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Apply every retention rule now (module docstring); return what was (or, dry, would be) erased.

    Keys: ``dry_run``, ``evaluation_cache``, ``evidence``, ``galleries`` (dropped at their end
    date), ``subjects`` (erased after their period), ``log_personal_fields``; a run adds
    ``audit_seq`` and ``erased_field_keys`` (the log field keys it destroyed, random ids).

    Raises
    ------
    NotAuthenticated, Forbidden
        Refused (and recorded): retention is integrity work (auditors, admins).
    RetentionBelowMinimum
        The log's personal-field schedule is below the legal minimum (refused, recorded).
    """
    session = runtime.session(context or AuditContext(purpose="retention schedule"), actor)
    session.check("retention", {"dry_run": dry_run})
    log_schedule = _refused_below_minimum(session, runtime.settings)
    runtime.log.share_key_store(runtime.galleries.keys)  # one key store object: sealing, erasing, shredding
    now = (clock or (lambda: datetime.now(UTC)))()
    cache = EvaluationCache(runtime.db, runtime.galleries.keys,
                            retention_days=runtime.settings.evaluation_cache_days, clock=clock)
    store = evidence or EvidenceStore.beside(runtime.db.path, runtime.galleries.keys, clock=clock)
    items = [{**item.to_dict(), "reason": why} for item, why in store.due(session.log)]
    galleries, due_subjects = retention_due(runtime, now)
    dropped = {g.gallery_name for g in galleries}
    subjects = [s for s in due_subjects if s.gallery_name not in dropped]
    fields_plan, due_keys = _log_fields_plan(runtime.log, log_schedule, now)
    plan: dict[str, Any] = {
        "evaluation_cache": cache.purge_expired(dry_run=True).to_dict(), "evidence": items,
        "galleries": [g.to_dict() for g in galleries], "subjects": [s.to_dict() for s in subjects],
        "log_personal_fields": fields_plan}
    if dry_run:
        return {"dry_run": True, **plan}
    shredding = _Shredding([], [])

    def call() -> dict[str, Any]:
        named = _erase_due(runtime, galleries, subjects, due_keys, shredding)
        purged = cache.purge_expired()
        for item in items:
            store.destroy(item["evidence_id"])
        fields = {**fields_plan, "shredded": len(due_keys), "status": "shredded" if due_keys else fields_plan["status"]}
        return {**plan, "dry_run": False, "evaluation_cache": purged.to_dict(), "log_personal_fields": fields,
                ERASED_KEYS: named}

    @contextlib.contextmanager
    def unit() -> Iterator[None]:
        with runtime.galleries.lock, runtime.log.transaction():
            yield

    done = session.run("retention", call, lambda r: {"details": {k: v for k, v in r.items() if k != "dry_run"}},
                       lambda _: {"details": plan}, atomic=unit, after_commit=lambda _: shredding.shred(runtime))
    return {**done.result, "audit_seq": done.seq}


# -- receipts ----------------------------------------------------------------------------------------


def _erased(r: AuditRecord) -> dict[str, Any]:
    """Return what a record says was erased (the receipt's ``erased`` claim), from the record alone."""
    d = r.details
    if r.action == "delete":
        ids = list(d.get("deleted_face_ids") or [])
        what = {"subject_id": d["subject_id"]} if "subject_id" in d else {"face_id": d.get("face_id")}
        committed = {"subject_commitment": d["subject_commitment"]} if "subject_commitment" in d else {}
        return {**what, "faces": len(ids), "face_ids": ids, **committed}
    if r.action == "drop_gallery":
        return {"gallery": None if r.gallery is None else r.gallery.name, "faces": d.get("deleted_faces")}
    subjects = [{"gallery": s["gallery_name"], "subject_id": s["subject_id"], "faces": s["faces"]}
                for s in d.get("subjects") or []]
    return {"subjects": subjects,
            "galleries": [{"gallery": g["gallery_name"], "faces": g["faces"]} for g in d.get("galleries") or []],
            "evaluation_cache_entries": (d.get("evaluation_cache") or {}).get("entries", 0),
            "evidence_items": len(d.get("evidence") or []),
            "log_personal_fields": d.get("log_personal_fields"),
            "field_keys_destroyed": len(d.get(ERASED_KEYS) or [])}


def receipt_claims(r: AuditRecord) -> dict[str, Any]:
    """Return a receipt's claims about the erasure (or retention) record ``r``, from the record alone.

    ``r`` is the record as signed (:func:`audit.trail.records.decode_record` of its canonical
    text): personal fields are tokens, as the verifier, who has no key store, reads them.

    Raises
    ------
    ReceiptError
        ``r`` is not a successful erasure or retention record.
    """
    kind = _RECEIPT_KINDS.get(r.action)
    if kind is None or r.outcome != "ok":
        raise ReceiptError(f"record #{r.seq} is a {r.action!r} record with outcome {r.outcome!r}, not a "
                           "successful erasure or retention run; there is no receipt for it")
    return {"kind": kind, "action": r.action, "seq": r.seq, "at": r.ended_at, "by": r.operator,
            "purpose": r.purpose, "gallery": None if r.gallery is None else r.gallery.name, "erased": _erased(r)}


def _signed_body(claims: Mapping[str, Any], note: str, entry_hex: str) -> bytes:
    return _RECEIPT_DOMAIN + canonical_bytes({"claims": dict(claims), "checkpoint": note, "entry_hash": entry_hex})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def new_receipt_salt() -> bytes:
    """Return a fresh random 32-byte salt for a subject's erasure and its receipt (module docstring)."""
    return secrets.token_bytes(32)


_SCOPE_SUBJECT = ("record #{seq} is in the log, and it erased the data of the subject named in this receipt "
                  "(the record's commitment matches the subject id and the salt only this receipt holds)")
_SCOPE_RECORD = ("record #{seq} is in the log; this receipt holds no subject salt, so it proves that the erasure "
                 "record exists, not whose data it erased")


def build_receipt(log: AuditLog, seq: int, subject: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """Return the signed receipt of erasure or retention record ``seq`` (module docstring).

    Parameters
    ----------
    subject
        ``(subject id, salt)`` of an erasure made with ``receipt_salt=salt`` (the requester's
        receipt, written at erasure time): both go in the receipt, which the verifier checks
        against the record's commitment. None: a receipt of the record only (``scope`` says so).

    Raises
    ------
    RecordNotFound
        No record ``seq``.
    ReceiptError
        It is not a successful erasure or retention record, it has no signed checkpoint, or
        ``subject`` does not match its commitment.
    """
    entry = log.get(seq)
    claims = receipt_claims(decode_record(entry.canonical))  # as signed: tokens, as the verifier reads it
    note = log.store.note(seq)
    if note is None:
        raise ReceiptError(f"record #{seq} has no signed checkpoint (a log written before signed notes)")
    held: dict[str, str] | None = None
    if subject is not None:
        if len(subject[1]) != 32:
            raise ReceiptError(f"a receipt's subject salt is 32 bytes (new_receipt_salt), got {len(subject[1])}")
        committed = claims["erased"].get("subject_commitment")
        if committed is None or not hmac.compare_digest(str(committed), subject_commitment(subject[1], subject[0])):
            raise ReceiptError(f"record #{seq} holds no commitment to this subject and salt; the receipt would not "
                               "verify")
        held = {"subject_id": subject[0], "salt": _b64(subject[1])}
    proof = log.prove_inclusion(seq, seq)  # O(log n) stored subtree hashes, checked against the record's note
    return {
        "format": RECEIPT_FORMAT,
        "claims": claims,
        "subject": held,
        "scope": (_SCOPE_RECORD if held is None else _SCOPE_SUBJECT).format(seq=seq),
        "checkpoint": note,
        "record": {"seq": seq, "prev_hash": entry.prev_hash.hex(), "entry_hash": entry.entry_hash.hex(),
                   "canonical": entry.canonical.decode("utf-8"), "proof": [_b64(p) for p in proof]},
        "signature": _b64(log.sign(_signed_body(claims, note, entry.entry_hash.hex()))),
    }


def check_receipt_path(log: AuditLog, path: str | os.PathLike[str]) -> Path:
    """Refuse a receipt path before anything is erased: never a protected file, never an existing one.

    Raises
    ------
    OutputRefused
        As :func:`audit.outputs.check_out_path` (without ``force``).
    """
    return check_out_path(path, log.protected_paths(), force=False)


def write_receipt(log: AuditLog, seq: int, path: str | os.PathLike[str],
                  subject: tuple[str, bytes] | None = None) -> Path:
    """Write the receipt of record ``seq`` to a new file ``path`` (never over an existing or protected one).

    ``subject``: as :func:`build_receipt` (the requester's receipt, at erasure time).

    Raises
    ------
    OutputRefused
        The path is protected or exists.
    ReceiptError, RecordNotFound
        As :func:`build_receipt`.
    """
    out = check_receipt_path(log, path)
    doc = build_receipt(log, seq, subject)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("x", encoding="utf-8") as f:  # "x": a file made since the check is not overwritten either
            f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    except FileExistsError as err:
        raise ReceiptError(f"refusing to overwrite {str(out)!r}, created since the command started") from err
    return out


@dataclass(frozen=True)
class ReceiptReport:
    """Outcome of :func:`verify_receipt`: ``fault`` names what failed (``kind``, ``detail``)."""

    ok: bool
    kind: str | None
    seq: int | None
    checkpoint_size: int | None
    key_id: str | None
    claims: dict[str, Any] | None
    fault: dict[str, str] | None = None
    subject_id: str | None = None
    """The subject whose erasure the receipt shows (its commitment checked), None for a record-only receipt."""
    scope: str | None = None
    """What the receipt proves, in words."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


class _Fault(AuditError):
    """Internal: one named fault of a receipt (turned into a failed :class:`ReceiptReport`)."""

    code = "receipt_fault"

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _part(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise _Fault("malformed", f"the receipt's {name!r} is missing or not a {kind.__name__}")
    return value


def _bytes(value: Any, what: str, *, hexadecimal: bool = False) -> bytes:
    try:
        return bytes.fromhex(str(value)) if hexadecimal else base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error) as err:
        raise _Fault("malformed", f"{what} is not {'hex' if hexadecimal else 'base64'}: {value!r}") from err


def _check_subject(held: Any, claims: Mapping[str, Any], seq: int) -> None:
    """Raise the fault of a receipt's ``subject`` (id and salt) against the record's commitment; None passes."""
    if held is None:
        return
    if not isinstance(held, dict) or not isinstance(held.get("subject_id"), str):
        raise _Fault("malformed", "the receipt's 'subject' is not {\"subject_id\": text, \"salt\": base64}")
    salt = _bytes(held.get("salt"), "the subject's salt")
    if len(salt) != 32:
        raise _Fault("malformed", f"the subject's salt is {len(salt)} bytes, not 32")
    committed = claims["erased"].get("subject_commitment") if isinstance(claims.get("erased"), dict) else None
    if not isinstance(committed, str):
        raise _Fault("no_commitment", f"record #{seq} commits to no subject: this receipt cannot show whose data "
                                      "it erased")
    if not hmac.compare_digest(committed, subject_commitment(salt, held["subject_id"])):
        raise _Fault("subject_mismatch", f"record #{seq}'s commitment does not match the subject id and salt of "
                                         "this receipt: it is not the erasure of that subject")


def _check_receipt(doc: Mapping[str, Any], public_key: str) -> tuple[int, str, int, dict[str, Any]]:
    """Raise the first fault of a receipt; return (seq, key id, checkpoint size, claims)."""
    if doc.get("format") != RECEIPT_FORMAT:
        raise _Fault("bad_format", f"not a facetrail receipt of format {RECEIPT_FORMAT} "
                                   f"(format {doc.get('format')!r})")
    note, claims, record = _part(doc, "checkpoint", str), _part(doc, "claims", dict), _part(doc, "record", dict)
    try:
        keys = parse_keys(public_key, parse_checkpoint(note)[0].origin)
        cp = verify_checkpoint(note, keys)
    except NoteError as err:
        raise _Fault("bad_signature", f"the checkpoint is not signed by the given log key: {err}") from err
    try:
        seq = int(record["seq"])
        prev = _bytes(record["prev_hash"], "prev_hash", hexadecimal=True)
        stated = _bytes(record["entry_hash"], "entry_hash", hexadecimal=True)
        canonical = str(record["canonical"]).encode("utf-8")
        proof = [_bytes(p, "proof") for p in record["proof"]]
    except (KeyError, TypeError, ValueError) as err:
        raise _Fault("malformed", f"the receipt's record is missing a part: {err!r}") from err
    h = entry_hash(prev, canonical)
    if not hmac.compare_digest(h, stated):
        raise _Fault("hash_mismatch", f"record #{seq}'s text does not hash to the entry hash it states")
    if not 1 <= seq <= cp.size or not verify_inclusion(h, seq - 1, cp.size, proof, cp.root, hashed=True):
        raise _Fault("not_in_log", f"record #{seq} is not in the log tree of size {cp.size} that the checkpoint "
                                   "signs")
    try:
        decoded = decode_record(canonical)
        expected = receipt_claims(decoded)
    except (ValueError, ReceiptError) as err:
        raise _Fault("bad_record", f"record #{seq}: {err}") from err
    if decoded.seq != seq:
        raise _Fault("bad_record", f"the record's text is record #{decoded.seq}, the receipt says #{seq}")
    if claims != expected:
        wrong = sorted(k for k in expected.keys() | claims.keys() if claims.get(k) != expected.get(k))
        raise _Fault("claims_mismatch", f"the receipt's claims {wrong} differ from what record #{seq} says")
    _check_subject(doc.get("subject"), expected, seq)
    signature = _bytes(doc.get("signature"), "signature")
    body = _signed_body(claims, note, stated.hex())
    for key in (k for k in keys if k.name == cp.origin):
        try:
            key.ed25519().verify(signature, body)
        except InvalidSignature:
            continue
        return seq, key.key_id.hex(), cp.size, claims
    raise _Fault("bad_signature", "the receipt is not signed by the given log key")


def verify_receipt(path: str | os.PathLike[str], public_key: str | bytes) -> ReceiptReport:
    """Check a receipt offline with only the log's public key; faults are reported, not raised.

    Parameters
    ----------
    public_key
        The log's key: PEM, or verifier keys (one per line, e.g. its key history).

    Raises
    ------
    ReceiptError
        The file cannot be read, or is not a JSON object.
    KeyFileError
        ``public_key`` is not an Ed25519 public key.
    """
    key_text = public_key.decode("ascii", "replace") if isinstance(public_key, bytes) else public_key
    doc = read_json_object(path, "receipt", ReceiptError)
    try:
        seq, key_id, size, claims = _check_receipt(doc, key_text)
    except _Fault as fault:
        claimed = doc.get("claims") if isinstance(doc.get("claims"), dict) else None
        return ReceiptReport(False, None if claimed is None else claimed.get("kind"),
                             None if claimed is None else claimed.get("seq"), None, None, claimed,
                             {"kind": fault.kind, "detail": fault.detail})
    held = doc.get("subject")
    subject_id = held["subject_id"] if isinstance(held, dict) else None
    return ReceiptReport(True, claims["kind"], seq, size, key_id, claims, None, subject_id,
                         (_SCOPE_RECORD if subject_id is None else _SCOPE_SUBJECT).format(seq=seq))
