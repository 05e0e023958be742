"""Blind review with fillers: one (probe, candidate) item at a time, no score, rank or earlier verdict.

Seeing an algorithm's score or a colleague's verdict shifts a reviewer's criterion, and nobody
knows a reviewer's own error rate unless some of the candidates they judge are known
non-matches. A **blind batch** does both:

1. An auditor opens a batch (:func:`open_batch`, action ``blind_batch``) over ``search``
   queries with candidates, naming a **filler gallery**: faces of people known not to be the
   probe (another gallery than the searched one). A share of the batch's items
   (``filler_share``) are **fillers**: a probe of the batch with a face of the filler gallery
   whose subject is none of that query's candidates and whose image is not the probe, drawn at
   random (with ``match_on``, among faces sharing gallery metadata such as ``sex`` with one of
   the query's candidates, so that fillers do not stand out by looking unlike them).
2. Each reviewer asks for their next item (:func:`next_item`): one item at a time, in an
   order of their own (a keyed hash of the reviewer's name and the item, so it is fixed for a
   reviewer and a batch and differs between reviewers), without score, rank, query, case,
   subject or anyone's verdict. Items of a query the reviewer ran are not in their queue. A
   reviewer decides each item once (:func:`decide`, action ``blind_review``, ``details.mode``
   ``"blind"``); the record's latency is the time from the item's first serving (a
   ``blind_serve`` record) to the decision.
3. The auditor closes the batch (:func:`reveal`, action ``blind_reveal``): the record
   publishes the batch's key and plan and maps every decision to its query, face and
   whether it was a filler. From then on the two-person rule counts the blind decisions on
   real candidates (:func:`audit.trail.review.match_status`), never those on fillers, and
   :mod:`audit.evaluation.reviewers` measures each reviewer.

What a reviewer reading the log can learn
-----------------------------------------
Reviewers may read the log, so nothing written while a batch is open tells fillers apart:

* the ``blind_batch`` record holds the plan (which queries, which face goes with which probe,
  which are fillers, the share of fillers) only sealed: AES-GCM under the batch's key, plus the
  SHA-256 of the plan (which holds a random salt) as a commitment; in the clear it says only
  how many queries and items the batch has (so a reviewer cannot look the batch's searches up
  in the match log, nor learn how many items are fillers). The key is derived (HMAC-SHA256) from a key file outside the database,
  ``<signing key>.blind``, so whoever reads or rewrites the database cannot open a plan;
* a ``blind_review`` record names no query, face or case: only the batch, the reviewer's own
  item id (a keyed hash of reviewer and item, so two reviewers' records of one item cannot be
  linked) and ``details.filler_seal``, an HMAC of the item id and whether it is a filler under
  the batch key, which says "filler or not" to anyone holding the key and nothing to anyone
  else;
* only the ``blind_reveal`` record, written when the batch is over, says which items were
  fillers, and publishes the key so that anyone can check the seals and the commitment.

Erasure
-------
The plan names faces and subjects, and its key is published at the reveal, so the plan never
holds them in clear: each face id and subject id in it is a sealed token under its subject's
log field key (:mod:`audit.trail.sealed`, the token its search record holds), put in before
the plan is hashed and sealed. The commitment, the reveal's published plan and its decisions
cover the tokens, so :func:`verify_reveal` checks the same bytes before and after an
erasure; the service and whoever reads the log with the key store read clear ids, and
``"erased"`` once the subject is erased. A decision's note naming its item's face or subject
is sealed whole under that subject's key (:data:`~audit.trail.sealed.SUBJECTS_HINT`). A batch
opened before plans were sealed keeps its ids in clear (its commitment covers them).

After the reveal a reviewer can read which of their past decisions were on fillers: the trail
must be checkable without trusting facetrail, and the batch is over. Fillers are drawn afresh
for every batch (from a filler gallery large enough that its faces are not learnt). The
match log still shows the scores of queries to anyone with ``read_log``: a deployment that
reviews blind should let its reviewers review only here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from audit.accounts import normalize_name
from audit.errors import AuditError, RecordNotFound
from audit.evidence import EvidenceStore
from audit.trail.keys import load_or_create_pseudonym_key
from audit.trail.records import DECISIONS, AuditRecord, canonical_bytes, decimal6, decode_record
from audit.trail.review import OTHER_REASON, REASON_CODES
from audit.trail.sealed import ERASED, SUBJECTS_HINT
from audit.trail.store import AuditFilter
from core.errors import GalleryNotFound, NotFound
from core.image import load_image

if TYPE_CHECKING:
    from audit.session import AuditSession
    from audit.trail.log import AuditEntry, AuditLog
    from core.gallery import GalleryStore

__all__ = [
    "BLIND_MODE",
    "NON_BLIND_MODE",
    "BlindBatch",
    "BlindItem",
    "BlindPlanItem",
    "BlindReviewRefused",
    "BlindRevealMismatch",
    "blind_batches",
    "decide",
    "next_item",
    "open_batch",
    "probe_image",
    "reveal",
    "submit_decision",
    "verify_reveal",
]

#: ``details.mode`` of a blind decision (``blind_review``) and of an ordinary review (``review``).
BLIND_MODE = "blind"
NON_BLIND_MODE = "non_blind"

#: The purpose recorded with blind decisions (the same as ordinary reviews).
REVIEW_PURPOSE = "human review"
#: The purpose recorded when an auditor opens or closes a batch.
AUDIT_PURPOSE = "measuring reviewers (blind review with fillers)"

_TICKET_PARTS = 4


class BlindReviewRefused(AuditError):
    """A blind batch, item or decision is refused (the refusal is recorded first)."""

    code = "blind_review_refused"


class BlindRevealMismatch(AuditError):
    """A revealed batch does not check out against its own records (:func:`verify_reveal`)."""

    code = "blind_reveal_mismatch"


@dataclass(frozen=True)
class BlindPlanItem:
    """One item of a batch's plan (never shown to a reviewer while the batch is open)."""

    index: int
    """Position in the plan (which is shuffled, so it says nothing about fillers)."""
    seq: int
    """The query whose probe the item shows."""
    face_id: str
    """The face shown beside the probe (``"erased"`` once its subject is: the plan holds it sealed)."""
    subject_id: str
    """That face's subject (likewise)."""
    gallery: str
    """The face's gallery: the query's, or the filler gallery."""
    filler: bool
    """Whether the face is a filler (a known non-match)."""
    operator: str | None
    """The query's operator (their own items are not in their queue)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the plan entry as recorded at the reveal."""
        return {"index": self.index, "seq": self.seq, "face_id": self.face_id, "subject_id": self.subject_id,
                "gallery": self.gallery, "filler": self.filler, "operator": self.operator}


@dataclass(frozen=True)
class BlindBatch:
    """A batch as facetrail knows it (the key and the plan: for the service and auditors only)."""

    batch_id: str
    """Random id, named in every record of the batch."""
    seq: int
    """Seq of the ``blind_batch`` record."""
    queries: tuple[int, ...]
    """The queries whose candidates are reviewed."""
    filler_gallery: str
    """Where the fillers come from."""
    items: tuple[BlindPlanItem, ...]
    """The plan."""
    key: bytes
    """The batch's key (seals, item ids, order)."""
    revealed_seq: int | None
    """Seq of the ``blind_reveal`` record, None while the batch is open."""

    def item_id(self, reviewer: str, index: int) -> str:
        """Return the id reviewer ``reviewer`` knows plan item ``index`` by (unlinkable across reviewers)."""
        return _mac(self.key, f"item:{reviewer}:{index}")[:20]

    def filler_seal(self, item_id: str, filler: bool) -> str:
        """Return the seal a decision on ``item_id`` records: an HMAC of the item and whether it is a filler."""
        return _mac(self.key, f"filler:{item_id}:{int(filler)}")

    def queue(self, reviewer: str) -> list[BlindPlanItem]:
        """Return the items ``reviewer`` reviews, in their own order (none of a query they ran)."""
        mine = [i for i in self.items if i.operator is None or normalize_name(i.operator) != reviewer]
        return sorted(mine, key=lambda i: _mac(self.key, f"order:{reviewer}:{i.index}"))


@dataclass(frozen=True)
class BlindItem:
    """What a reviewer is shown: an item to decide, and nothing about it but where it is in their queue."""

    batch_id: str
    item_id: str
    """The reviewer's own id of the item."""
    ticket: str
    """What :func:`decide` takes: batch, item and the time it was served, with a MAC."""
    position: int
    """1-based position in the reviewer's queue."""
    total: int
    """Items in the reviewer's queue."""
    photos: None = None
    """Not carried here: the photos are fetched with :func:`probe_image` and :func:`face_image`."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no score, rank, query, face, subject or verdict)."""
        return {"mode": BLIND_MODE, "batch_id": self.batch_id, "item": self.item_id, "ticket": self.ticket,
                "position": self.position, "total": self.total, "photos": self.photos}


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _master_key(log: AuditLog) -> bytes:
    """Load the key the batch keys are derived from: ``<signing key>.blind`` (outside the database)."""
    return load_or_create_pseudonym_key(Path(str(log.key_path) + ".blind"))


def _batch_key(log: AuditLog, batch_id: str) -> bytes:
    return hmac.new(_master_key(log), b"facetrail blind batch\x00" + batch_id.encode("ascii"),
                    hashlib.sha256).digest()


def _gate(session: AuditSession, purpose: str) -> AuditSession:
    return session.with_context(replace(session.context, purpose=purpose, case_ref=None, case_required=False))


def _refuser(gate: AuditSession, action: str, fields: dict[str, Any]) -> Callable[[str], BlindReviewRefused]:
    def refuse(msg: str) -> BlindReviewRefused:
        gate.refuse(action, BlindReviewRefused.code, msg, details=fields)
        return BlindReviewRefused(msg)
    return refuse


# -- opening a batch -----------------------------------------------------------------------------------


def _query(log: AuditLog, seq: int, refuse: Callable[[str], BlindReviewRefused]) -> AuditRecord:
    try:
        record = log.get(seq).record
    except RecordNotFound as err:
        raise refuse(str(err)) from err
    if record.action != "search" or record.outcome != "ok" or not record.candidates or record.gallery is None:
        raise refuse(f"record {seq} is a {record.action} with outcome {record.outcome!r}; a blind batch reviews "
                     "search results with candidates (outcome 'ok')")
    if any(ERASED in (c.face_id, c.subject_id) for c in record.candidates):
        raise refuse(f"record {seq} has candidates whose subjects were erased: they cannot be reviewed")
    return record


def _filler_count(n_real: int, share: float) -> int:
    """Fillers such that they are ``share`` of all items (rounded to the nearest whole item)."""
    return round(share * n_real / (1.0 - share)) if share > 0 else 0


def _templates(galleries: GalleryStore, queries: list[AuditRecord], match_on: Sequence[str],
               refuse: Callable[[str], BlindReviewRefused]) -> dict[int, list[dict[str, Any]]]:
    """Per query, the ``match_on`` metadata of its candidates (read from the searched gallery): what fillers match."""
    if not match_on:
        return {q.seq: [{}] for q in queries}
    metadata: dict[str, dict[str, dict[str, Any]]] = {}
    out: dict[int, list[dict[str, Any]]] = {}
    for q in queries:
        name = q.gallery.name if q.gallery else ""
        if name not in metadata:
            try:
                metadata[name] = {f["face_id"]: f["metadata"] for f in galleries.faces(name)}
            except NotFound as err:
                raise refuse(f"fillers cannot be matched on {list(match_on)} for query {q.seq}: its gallery "
                             f"{name!r} is gone ({err})") from err
        known = [metadata[name].get(c.face_id) or {} for c in q.candidates]
        out[q.seq] = [{k: m[k] for k in match_on} for m in known if all(k in m for k in match_on)]
        if not out[q.seq]:
            raise refuse(f"fillers cannot be matched on {list(match_on)} for query {q.seq}: none of its candidates "
                         f"has that metadata in gallery {name!r}")
    return out


def _plan(queries: list[AuditRecord], faces: list[dict[str, Any]], filler_gallery: str, share: float,
          templates: dict[int, list[dict[str, Any]]], refuse: Callable[[str], BlindReviewRefused]
          ) -> list[BlindPlanItem]:
    """Every candidate of every query, and fillers drawn at random for probes taken in turn (then shuffled).

    A filler of a query matches the metadata of one of its candidates, picked at random (``templates``).
    """
    rng = secrets.SystemRandom()
    real = [(q, c.face_id, c.subject_id, q.gallery.name if q.gallery else "") for q in queries for c in q.candidates]
    n_fillers = _filler_count(len(real), share)
    fillers: list[tuple[AuditRecord, str, str, str]] = []
    used: set[str] = set()
    turns = [queries[i % len(queries)] for i in rng.sample(range(n_fillers), n_fillers)] if n_fillers else []
    for q in turns:
        excluded = {c.subject_id for c in q.candidates}
        probes = set(q.probe_sha256 or ())
        taken = {f for p, f, _, _ in fillers if p.seq == q.seq}
        template = rng.choice(templates[q.seq])
        eligible = [f for f in faces if f["subject_id"] not in excluded and f["image_sha256"] not in probes
                    and f["face_id"] not in taken and all(f["metadata"].get(k) == v for k, v in template.items())]
        if not eligible:
            alike = f" with metadata {template}" if template else ""
            raise refuse(f"filler gallery {filler_gallery!r} has too few faces for {n_fillers} fillers: none left "
                         f"for query {q.seq}{alike} (faces of its candidates' subjects and of its probe are excluded)")
        fresh = [f for f in eligible if f["face_id"] not in used] or eligible
        face = rng.choice(fresh)
        used.add(face["face_id"])
        fillers.append((q, face["face_id"], face["subject_id"], filler_gallery))
    chosen = [(*r, False) for r in real] + [(*f, True) for f in fillers]
    rng.shuffle(chosen)
    return [BlindPlanItem(i, q.seq, face, subject, gallery, filler, q.operator)
            for i, (q, face, subject, gallery, filler) in enumerate(chosen)]


def open_batch(
    session: AuditSession, galleries: GalleryStore, queries: Sequence[int], filler_gallery: str, *,
    filler_share: float = 0.25, match_on: Sequence[str] = (),
) -> AuditEntry:
    """Open a blind batch over the candidates of ``queries`` with fillers from ``filler_gallery`` (auditors).

    Parameters
    ----------
    session
        The auditor's gate.
    galleries
        Where the filler gallery's faces are read.
    queries
        Seqs of ``search`` records with outcome ``ok``.
    filler_gallery
        A gallery of people known not to be any probe (not a gallery any of the queries searched).
    filler_share
        Share of the batch's items that are fillers, ``0 <= share < 1`` (rounded to whole items).
    match_on
        Gallery metadata keys (``sex``, ``race``, ...) a filler must share with one of its query's
        candidates (read from the searched gallery), so that fillers are not told apart by looking
        unlike the probe's candidates. Empty: fillers drawn from the whole gallery.

    Returns
    -------
    AuditEntry
        The ``blind_batch`` record (``details.batch_id`` names the batch).

    Raises
    ------
    NotAuthenticated, Forbidden, MissingContext
        From the gate (recorded).
    BlindReviewRefused
        No queries, a query that is not a search with candidates, a repeated query, a bad share,
        an unknown filler gallery, the searched gallery as filler gallery, too few filler faces, or
        ``match_on`` metadata that the candidates lack (recorded first).
    """
    gate = _gate(session, AUDIT_PURPOSE)
    # the queries are not named in the trail while the batch is open (reviewers read the log): only their number
    # nor the share of fillers (knowing it would shift a reviewer's criterion): the reveal publishes both
    asked = {"n_queries": len(queries), "filler_gallery": filler_gallery, "match_on": list(match_on)}
    gate.check("blind_batch", asked)
    refuse = _refuser(gate, "blind_batch", asked)
    if not queries:
        raise refuse("a blind batch needs at least one query")
    if len(set(queries)) != len(queries):
        raise refuse("a query is listed twice")
    if not 0.0 <= filler_share < 1.0:
        raise refuse(f"filler_share must be at least 0 and below 1, got {filler_share!r}")
    records = [_query(gate.log, int(seq), refuse) for seq in queries]
    searched = sorted({r.gallery.name for r in records if r.gallery is not None})
    if filler_gallery in searched:
        raise refuse(f"the filler gallery {filler_gallery!r} is a gallery the queries searched: its faces are not "
                     "known non-matches of the probes")
    try:
        faces = galleries.faces(filler_gallery)
        ref = galleries.ref(filler_gallery)
    except NotFound as err:
        raise refuse(f"unknown filler gallery {filler_gallery!r}: {err}") from err
    plan_items = _plan(records, faces, filler_gallery, filler_share, _templates(galleries, records, match_on, refuse),
                       refuse)
    batch_id = secrets.token_hex(8)
    plan = {"batch_id": batch_id, "salt": secrets.token_hex(32), "queries": [r.seq for r in records],
            "filler_share": decimal6(filler_share), "items": _sealed_items(gate.log, plan_items)}
    plan_bytes = canonical_bytes(plan)
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_batch_key(gate.log, batch_id)).encrypt(nonce, plan_bytes, batch_id.encode("ascii"))
    return gate.record("blind_batch", {"outcome": "ok", "details": {
        "batch_id": batch_id, "n_queries": len(records),
        "filler_gallery": {"name": ref.name, "fingerprint": ref.fingerprint, "size": ref.size},
        "match_on": list(match_on), "items": len(plan_items),
        "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
        "sealed_plan": base64.b64encode(nonce + sealed).decode("ascii"),
    }})


def _sealed_items(log: AuditLog, items: Sequence[BlindPlanItem]) -> list[dict[str, Any]]:
    """Return the plan entries with each face id and subject id sealed under its subject's log field key.

    The plan is committed to (SHA-256) and published at the reveal with these tokens in it, so
    erasing a subject (destroying its field key) leaves its ids in clear in no blind record:
    they read ``"erased"`` like every other sealed field (:mod:`audit.trail.sealed`). The
    tokens of a real candidate are those of its search record (same key, same value).
    """
    wanted = [(kind, value, i.gallery, i.subject_id) for i in items
              for kind, value in (("f", i.face_id), ("s", i.subject_id))]
    tokens = log.field_keys.seal_owned(wanted)
    return [{**i.to_dict(), "face_id": tokens[("f", i.face_id, i.gallery, i.subject_id)],
             "subject_id": tokens[("s", i.subject_id, i.gallery, i.subject_id)]} for i in items]


# -- reading batches -----------------------------------------------------------------------------------


def _open_plan(log: AuditLog, record: AuditRecord) -> tuple[bytes, dict[str, Any]]:
    """Return the batch's key and its plan (decrypted, checked against the recorded SHA-256)."""
    details = record.details
    batch_id = str(details["batch_id"])
    key = _batch_key(log, batch_id)
    blob = base64.b64decode(str(details["sealed_plan"]))
    try:
        plan_bytes = AESGCM(key).decrypt(blob[:12], blob[12:], batch_id.encode("ascii"))
    except InvalidTag as err:
        raise BlindReviewRefused(f"the plan of blind batch {batch_id} (record {record.seq}) cannot be opened with "
                                 "this installation's blind key file (<signing key>.blind)") from err
    if hashlib.sha256(plan_bytes).hexdigest() != details["plan_sha256"]:
        raise BlindReviewRefused(f"the plan of blind batch {batch_id} does not match its recorded SHA-256")
    plan: dict[str, Any] = json.loads(plan_bytes)
    return key, plan


def blind_batches(log: AuditLog, *, batch_id: str | None = None, open_only: bool = False) -> list[BlindBatch]:
    """Return every blind batch of the log (or the one named; or only those still open), oldest first, plans opened.

    The plan items' face and subject ids read in clear (``"erased"`` once their subject is).

    Raises
    ------
    BlindReviewRefused
        If ``batch_id`` names no batch, or a plan cannot be opened with this installation's key.
    """
    return _batches(log, batch_id=batch_id, open_only=open_only, clear_ids=True)


def _batches(log: AuditLog, *, batch_id: str | None, open_only: bool, clear_ids: bool) -> list[BlindBatch]:
    """:func:`blind_batches`; with ``clear_ids`` False the items keep the plan's sealed ids (what serving needs).

    Serving and deciding an item read the batch every time and need no face or subject but the
    item's own (:func:`_clear_item`): opening every token of a large plan each time would cost more
    than the rest of a decision.
    """
    records = [e.record for e in log.list(AuditFilter(action="blind_batch"))
               if batch_id is None or e.record.details.get("batch_id") == batch_id]
    if batch_id is not None and not records:
        raise BlindReviewRefused(f"no blind batch {batch_id!r}")
    reveals = {str(e.record.details.get("batch_id")): e.seq
               for e in log.list(AuditFilter(action="blind_reveal"))}
    out = []
    for r in records:
        if open_only and str(r.details["batch_id"]) in reveals:
            continue
        key, plan = _open_plan(log, r)
        items = [BlindPlanItem(**item) for item in (log.field_keys.open_json(plan["items"]) if clear_ids
                                                    else plan["items"])]
        bid = str(r.details["batch_id"])
        out.append(BlindBatch(bid, r.seq, tuple(int(q) for q in plan["queries"]),
                              str(r.details["filler_gallery"]["name"]), tuple(items), key, reveals.get(bid)))
    return out


def _decided(log: AuditLog, batch: BlindBatch, reviewer: str) -> dict[str, AuditEntry]:
    """Return the reviewer's decisions in ``batch``, by their item id."""
    return {str(e.record.details.get("item")): e
            for e in log.list(AuditFilter(action="blind_review", operator=reviewer, after_seq=batch.seq))
            if e.record.details.get("batch_id") == batch.batch_id}


def _ticket(batch: BlindBatch, reviewer: str, item_id: str, served_ms: int) -> str:
    mac = _mac(batch.key, f"ticket:{reviewer}:{item_id}:{served_ms}")[:16]
    return f"{batch.batch_id}.{item_id}.{served_ms}.{mac}"


def _reviewer(session: AuditSession, action: str, asked: dict[str, Any]) -> tuple[AuditSession, str]:
    """Return the gate for a reviewer's blind action, and the reviewer's name (API tokens refused, recorded)."""
    gate = _gate(session, REVIEW_PURPOSE)
    actor = gate.check(action, asked)
    if actor.method == "api_token":
        reason = (f"a review is a person's decision: {actor.name} must sign in with their own password "
                  "(API tokens are for scripts, and an admin issues them)")
        gate.refuse(action, BlindReviewRefused.code, reason, details=asked)
        raise BlindReviewRefused(reason)
    return gate, actor.name


def next_item(session: AuditSession, batch_id: str | None = None) -> BlindItem | None:
    """Return the signed-in reviewer's next undecided item (of ``batch_id``, else of the oldest open batch that has one).

    The first serving of an item to the reviewer is recorded (action ``blind_serve``: batch and the
    reviewer's item id, nothing more); serving it again (a reload, another session) gives the same
    ticket, so the time per decision runs from the first serving and cannot be reset.

    Raises
    ------
    NotAuthenticated, Forbidden
        From the gate (recorded): only reviewers review.
    BlindReviewRefused
        An API token, an unknown or closed batch (recorded).
    """
    gate, reviewer = _reviewer(session, "blind_review", {"batch_id": batch_id})
    refuse = _refuser(gate, "blind_review", {"batch_id": batch_id})
    try:
        batches = _batches(gate.log, batch_id=batch_id, open_only=batch_id is None, clear_ids=False)
    except BlindReviewRefused as err:
        raise refuse(str(err)) from err
    if batch_id is not None and batches[0].revealed_seq is not None:
        raise refuse(f"blind batch {batch_id} is closed (revealed in record {batches[0].revealed_seq})")
    for batch in batches:
        if batch.revealed_seq is not None:
            continue
        queue = batch.queue(reviewer)
        decided = _decided(gate.log, batch, reviewer)
        for position, item in enumerate(queue, start=1):
            item_id = batch.item_id(reviewer, item.index)
            if item_id not in decided:
                served_ms = _serve(gate, batch, reviewer, item_id)
                return BlindItem(batch.batch_id, item_id, _ticket(batch, reviewer, item_id, served_ms), position,
                                 len(queue))
    return None


def _serve(gate: AuditSession, batch: BlindBatch, reviewer: str, item_id: str) -> int:
    """Return when ``item_id`` was first served to ``reviewer`` (ms since the epoch), recording it if it is now."""
    with gate.log.transaction():  # two sessions serving one item at once record one serving
        for e in gate.log.list(AuditFilter(action="blind_serve", operator=reviewer, after_seq=batch.seq)):
            if e.record.details.get("batch_id") == batch.batch_id and e.record.details.get("item") == item_id:
                return int(e.record.details["served_ms"])
        served_ms = int(time.time() * 1000)
        gate.record("blind_serve", {"outcome": "ok", "details": {
            "mode": BLIND_MODE, "batch_id": batch.batch_id, "item": item_id, "served_ms": served_ms}})
        return served_ms


def _parse_ticket(ticket: str, refuse: Callable[[str], BlindReviewRefused]) -> tuple[str, str, int, str]:
    parts = ticket.split(".")
    if len(parts) != _TICKET_PARTS or not parts[2].isdigit():
        raise refuse(f"not a blind review ticket: {ticket!r} (take one from the next item)")
    return parts[0], parts[1], int(parts[2]), parts[3]


def _ticket_item(gate: AuditSession, reviewer: str, ticket: str, refuse: Callable[[str], BlindReviewRefused]
                 ) -> tuple[BlindBatch, BlindPlanItem, int, int]:
    """Return the open batch, the plan item, the serving time and now (ms) of a ticket served to ``reviewer``."""
    batch_id, item_id, served_ms, mac = _parse_ticket(ticket, refuse)
    try:
        batch = _batches(gate.log, batch_id=batch_id, open_only=False, clear_ids=False)[0]
    except BlindReviewRefused as err:
        raise refuse(str(err)) from err
    if batch.revealed_seq is not None:
        raise refuse(f"blind batch {batch_id} is closed (revealed in record {batch.revealed_seq})")
    now_ms = int(time.time() * 1000)
    if not hmac.compare_digest(mac, _ticket(batch, reviewer, item_id, served_ms).rsplit(".", 1)[1]) \
            or served_ms > now_ms:
        raise refuse(f"ticket {ticket!r} was not served to {reviewer} (take one from the next item)")
    item = next((i for i in batch.queue(reviewer) if batch.item_id(reviewer, i.index) == item_id), None)
    if item is None:
        raise refuse(f"item {item_id} is not in {reviewer}'s queue of batch {batch_id}")
    return batch, item, served_ms, now_ms


def _clear_item(log: AuditLog, item: BlindPlanItem) -> BlindPlanItem:
    """Return a plan item of :func:`_batches` (sealed ids) with its face and subject ids opened."""
    opened = log.field_keys.open_json([item.face_id, item.subject_id])
    return replace(item, face_id=str(opened[0]), subject_id=str(opened[1]))


def _served_item(session: AuditSession, ticket: str, what: str) -> tuple[AuditSession, BlindPlanItem]:
    """Return the gate and the plan item of a ticket served to the signed-in reviewer, to show ``what`` of it.

    Refusals (not a reviewer, a ticket not theirs or not open) are recorded as for :func:`decide`.
    """
    asked = {"ticket": ticket, "what": what}
    gate, reviewer = _reviewer(session, "blind_review", asked)
    _, item, _, _ = _ticket_item(gate, reviewer, ticket, _refuser(gate, "blind_review", asked))
    return gate, item


def probe_image(session: AuditSession, galleries: GalleryStore, ticket: str, *,
                evidence: EvidenceStore | None = None) -> bytes | None:
    """Return the probe photo of the item of ``ticket`` as PNG, or None when no image is kept for it.

    The photo is the one the evidence store kept for the search's review (:mod:`audit.evidence`;
    destroyed when the review ends or its retention expires), decoded and encoded again as PNG: its
    bytes are not those whose SHA-256 the search recorded, nor the same at two servings (a random
    text chunk), so the photo does not lead a reviewer to the search and its scores; nothing of the
    file's metadata is shown. The face beside it comes from :func:`face_image`.

    Parameters
    ----------
    evidence
        The evidence store (default: the one beside the galleries' database).

    Raises
    ------
    NotAuthenticated, Forbidden
        From the gate (recorded).
    BlindReviewRefused
        As :func:`decide` for the ticket (recorded).
    """
    gate, item = _served_item(session, ticket, "probe image")
    retained = gate.log.get(item.seq).record.details.get("retained")
    evidence_id = retained.get("probe_image") if isinstance(retained, dict) else None
    if not isinstance(evidence_id, str):
        return None
    store = evidence if evidence is not None else EvidenceStore.beside(galleries.db.path, galleries.keys)
    try:
        data = store.read(gate, evidence_id)
    except KeyError:  # destroyed: the review ended or the retention expired
        return None
    return _served_png(data)


def face_image(session: AuditSession, galleries: GalleryStore, ticket: str) -> bytes | None:
    """Return the reference photo of the face of the item of ``ticket`` as PNG, or None when none is kept.

    The gallery keeps each face's photo sealed under its subject's key (:meth:`core.gallery.GalleryStore.photo`;
    gone when the subject is erased). Served like :func:`probe_image`: encoded again as PNG with a random
    chunk, so neither its bytes nor its metadata say whether the face is a candidate or a filler.

    Raises
    ------
    NotAuthenticated, Forbidden
        From the gate (recorded).
    BlindReviewRefused
        As :func:`decide` for the ticket (recorded).
    """
    gate, sealed = _served_item(session, ticket, "face image")
    item = _clear_item(gate.log, sealed)
    try:
        data = galleries.photo(item.gallery, item.face_id)
    except GalleryNotFound:  # the gallery was dropped since the batch opened: its photos went with it
        return None
    return None if data is None else _served_png(data)


def _served_png(data: bytes) -> bytes:
    """Decode an image and encode it as PNG with a random text chunk (never the same bytes twice)."""
    info = PngInfo()
    info.add_text("serving", secrets.token_hex(16))  # never the same bytes twice, whatever the encoder does
    buffer = io.BytesIO()
    PILImage.fromarray(load_image(data).pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _note_hint(item: BlindPlanItem, note: str | None) -> dict[str, Any]:
    """Return the :data:`~audit.trail.sealed.SUBJECTS_HINT` of a decision whose note may name the item's face or subject.

    With it a note naming them is sealed whole under the subject's field key (erased with the
    subject). Without a note there is nothing to seal, and no hint: a decision names no key.
    """
    if not note or ERASED in (item.face_id, item.subject_id):
        return {}
    return {SUBJECTS_HINT: {item.face_id: [item.gallery, item.subject_id]}}


def decide(session: AuditSession, ticket: str, decision: str, *, note: str | None = None,
           reason: str | None = None) -> AuditEntry:
    """Record the signed-in reviewer's decision on the item of ``ticket`` (action ``blind_review``).

    ``reason`` is a code of :data:`audit.trail.review.REASON_CODES`, recorded as ``details.reason_code``
    as a Match log review records it (the blind review screen requires one: :func:`submit_decision`).

    Raises
    ------
    ValueError
        If ``decision`` is not ``confirm`` or ``reject``.
    NotAuthenticated, Forbidden
        From the gate (recorded).
    BlindReviewRefused
        An API token, a reason that is not a reason code (or "other" without a note), a ticket that is
        malformed, forged or not this reviewer's, a closed batch, or an item the reviewer already decided
        (recorded first).
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be 'confirm' or 'reject', got {decision!r}")
    asked = {"ticket": ticket, "decision": decision, **({} if reason is None else {"reason_code": reason})}
    gate, reviewer = _reviewer(session, "blind_review", asked)
    refuse = _refuser(gate, "blind_review", asked)
    if reason is not None and reason not in REASON_CODES:
        raise refuse(f"reason {reason!r} is not one of the review reason codes: {'; '.join(REASON_CODES)}")
    if reason == OTHER_REASON and not (note or "").strip():
        raise refuse(f"reason {OTHER_REASON!r} needs a note saying what the reason is")
    batch, item, served_ms, now_ms = _ticket_item(gate, reviewer, ticket, refuse)
    batch_id, item_id = batch.batch_id, batch.item_id(reviewer, item.index)
    served = datetime.fromtimestamp(served_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with gate.log.transaction():  # no second decision, and none after the reveal, even from another session
        closed = _revealed_seq(gate.log, batch)
        previous = None if closed is not None else _decided(gate.log, batch, reviewer).get(item_id)
        entry = None if closed is not None or previous is not None else gate.record("blind_review", {
            "outcome": "ok", "reviewer": reviewer, "decision": decision, "note": note,
            "details": {"mode": BLIND_MODE, "batch_id": batch_id, "item": item_id,
                        "filler_seal": batch.filler_seal(item_id, item.filler),
                        **({} if reason is None else {"reason_code": reason})},
            **(_note_hint(_clear_item(gate.log, item), note) if note else {}),
        }, started_at=served, latency_ms=float(now_ms - served_ms))
    if closed is not None:
        raise refuse(f"blind batch {batch_id} is closed (revealed in record {closed})")
    if previous is not None or entry is None:
        raise refuse(f"{reviewer} already decided item {item_id} (record {previous and previous.seq}); "
                     "a decision is final")
    return entry


def submit_decision(session: AuditSession, ticket: str, decision: str | None, reason: str | None, *,
                    note: str | None = None) -> AuditEntry:
    """Submit from the blind review screen: :func:`decide`, refused (and recorded) without a decision or a reason code.

    Raises
    ------
    BlindReviewRefused
        No decision, or no reason, chosen (recorded); else as :func:`decide`.
    """
    missing = [what for what, value in (("a decision", decision), ("a reason", reason)) if not value]
    if missing:
        asked = {"ticket": ticket, "decision": decision}
        gate, _ = _reviewer(session, "blind_review", asked)
        raise _refuser(gate, "blind_review", asked)(
            f"choose {' and '.join(missing)} before submitting a blind decision (nothing is preselected)")
    assert decision is not None
    return decide(session, ticket, decision, note=note, reason=reason)


# -- closing a batch -----------------------------------------------------------------------------------


def reveal(session: AuditSession, batch_id: str) -> AuditEntry:
    """Close ``batch_id`` and publish its key, its plan and which decision was on which face (auditors).

    After this record the two-person rule counts the batch's decisions on real candidates, and
    no more decisions are taken in the batch.

    Raises
    ------
    NotAuthenticated, Forbidden, MissingContext
        From the gate (recorded).
    BlindReviewRefused
        An unknown batch, or one already revealed (recorded first).
    """
    gate = _gate(session, AUDIT_PURPOSE)
    asked = {"batch_id": batch_id}
    gate.check("blind_reveal", asked)
    refuse = _refuser(gate, "blind_reveal", asked)
    try:
        batch = _batches(gate.log, batch_id=batch_id, open_only=False, clear_ids=False)[0]  # ids as committed to
    except BlindReviewRefused as err:
        raise refuse(str(err)) from err
    if batch.revealed_seq is not None:
        raise refuse(f"blind batch {batch_id} was revealed already (record {batch.revealed_seq})")
    _, plan = _open_plan(gate.log, gate.log.get(batch.seq).record)
    with gate.log.transaction():  # every decision recorded before the reveal is in it, and there is one reveal
        closed = _revealed_seq(gate.log, batch)
        entry = None if closed is not None else gate.record("blind_reveal", {"outcome": "ok", "details": {
            "batch_id": batch_id, "batch_seq": batch.seq, "queries": list(batch.queries), "key": batch.key.hex(),
            "plan": plan, "decisions": _revealed_decisions(gate.log, batch),
        }})
    if closed is not None or entry is None:
        raise refuse(f"blind batch {batch_id} was revealed already (record {closed})")
    return entry


def _revealed_seq(log: AuditLog, batch: BlindBatch) -> int | None:
    """Return the seq of the batch's ``blind_reveal`` record, None while it is open (read now)."""
    return next((e.seq for e in log.list(AuditFilter(action="blind_reveal", after_seq=batch.seq))
                 if e.record.details.get("batch_id") == batch.batch_id), None)


def _revealed_decisions(log: AuditLog, batch: BlindBatch) -> list[dict[str, Any]]:
    """Return every decision of the batch with its item, query, face and filler flag (what a reveal lists).

    ``batch`` is read with the plan's ids as sealed: the face is named as the plan names it.
    """
    decisions = []
    for e in log.list(AuditFilter(action="blind_review", after_seq=batch.seq)):
        r = e.record
        if r.details.get("batch_id") != batch.batch_id or r.reviewer is None:
            continue
        item = next((i for i in batch.queue(r.reviewer) if batch.item_id(r.reviewer, i.index) == r.details["item"]),
                    None)
        if item is None:
            continue
        decisions.append({"review_seq": e.seq, "reviewer": r.reviewer, "item": r.details["item"],
                          "index": item.index, "seq": item.seq, "face_id": item.face_id,
                          "filler": item.filler})
    return decisions


# -- checking a reveal from the trail alone ------------------------------------------------------------


def _only(entries: list[AuditEntry], what: str) -> AuditEntry:
    if len(entries) != 1:
        raise BlindRevealMismatch(f"{len(entries)} {what} record(s), expected exactly one")
    return entries[0]


def verify_reveal(log: AuditLog, batch_id: str) -> int:
    """Check a revealed batch from its records alone (no key file); return the number of decisions checked.

    The published key must open the sealed plan, the plan must be the published one and hash to the
    SHA-256 committed when the batch opened, and every ``blind_review`` of the batch must be listed
    exactly once, on the item its reviewer's item id names, with the filler flag its seal commits to.

    Raises
    ------
    BlindRevealMismatch
        On the first thing that does not check out (named in the message).
    """
    opened = _only([e for e in log.list(AuditFilter(action="blind_batch"))
                    if e.record.details.get("batch_id") == batch_id], f"blind_batch {batch_id}")
    revealed = _only([e for e in log.list(AuditFilter(action="blind_reveal", after_seq=opened.seq))
                      if e.record.details.get("batch_id") == batch_id], f"blind_reveal {batch_id}")
    details = decode_record(revealed.canonical).details  # as signed: the plan's ids are tokens, opened or not
    key = bytes.fromhex(str(details["key"]))
    blob = base64.b64decode(str(opened.record.details["sealed_plan"]))
    try:
        plan_bytes = AESGCM(key).decrypt(blob[:12], blob[12:], batch_id.encode("ascii"))
    except InvalidTag as err:
        raise BlindRevealMismatch(f"the key published in record {revealed.seq} does not open the plan sealed in "
                                  f"record {opened.seq}") from err
    if hashlib.sha256(plan_bytes).hexdigest() != opened.record.details["plan_sha256"]:
        raise BlindRevealMismatch(f"the plan of batch {batch_id} does not hash to the SHA-256 committed in record "
                                  f"{opened.seq}")
    if canonical_bytes(details["plan"]) != plan_bytes:
        raise BlindRevealMismatch(f"the plan published in record {revealed.seq} is not the plan sealed in record "
                                  f"{opened.seq}")
    items = [BlindPlanItem(**i) for i in json.loads(plan_bytes)["items"]]
    batch = BlindBatch(batch_id, opened.seq, (), "", tuple(items), key, revealed.seq)
    listed = {int(d["review_seq"]): d for d in details.get("decisions") or ()}
    reviews = [e for e in log.list(AuditFilter(action="blind_review", after_seq=opened.seq))
               if e.seq < revealed.seq and e.record.details.get("batch_id") == batch_id]
    if sorted(listed) != [e.seq for e in reviews]:
        raise BlindRevealMismatch(f"record {revealed.seq} lists decisions {sorted(listed)}, the batch has "
                                  f"{[e.seq for e in reviews]}")
    for e in reviews:
        r, d = e.record, listed[e.seq]
        item = next((i for i in items if r.reviewer and batch.item_id(r.reviewer, i.index) == r.details["item"]), None)
        if item is None or batch.filler_seal(str(r.details["item"]), item.filler) != r.details.get("filler_seal"):
            raise BlindRevealMismatch(f"decision {e.seq} names no item of {r.reviewer}'s queue, or its seal does not "
                                      "match the plan")
        expected = {"review_seq": e.seq, "reviewer": r.reviewer, "item": r.details["item"], "index": item.index,
                    "seq": item.seq, "face_id": item.face_id, "filler": item.filler}
        if d != expected:
            raise BlindRevealMismatch(f"record {revealed.seq} lists decision {e.seq} as {d}, the plan says {expected}")
    return len(reviews)
