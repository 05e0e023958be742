"""Human review of matches: the two-person rule (EU AI Act Art. 14(5)).

A candidate of a ``search`` or a ``search_video`` (or the pair of a ``verify``) whose
outcome is ``ok`` can be reviewed. A review is itself a record of the log (action
``review``, pointing at the query by ``target_seq`` and at the candidate by
``target_face_id``), made by an authenticated reviewer account through the gate
(:meth:`audit.session.AuditSession.review`); the status of a candidate is read
from those records:

* ``rejected`` if **any** eligible reviewer rejected it (a reject is a veto, whatever
  confirmations came before or after, until the rejecting reviewer explicitly reverses it);
* ``confirmed`` if at least **two different** eligible reviewer accounts confirmed
  it and nobody rejected it;
* ``pending`` otherwise.

Eligible means: a review made by an authenticated person (its record says how the
account signed in, ``details.auth``: with its own password, on the CLI or the dashboard;
not with an API token, which an admin can issue for any account, and not a review
written before accounts signed in, with a name typed as free text), by an account that
is not the operator of the query. Names are compared normalised (:func:`audit.accounts.normalize_name`), so
``"Operator3 "`` and ``"OPERATOR3"`` are operator3: the operator's own review is
refused (and the refusal recorded), and one account confirming twice, under any
spelling, counts once. Who may review at all is the gate's business: the ``review``
permission (reviewers), each with their own password or token, so one person at a
terminal cannot be two reviewers.

One decision per reviewer and candidate
---------------------------------------
A reviewer decides a candidate once: a second review of the same candidate by the same account
(under any spelling) is refused and the refusal recorded, whatever it decides. Changing one's mind
is an explicit **reversal** (``reverse=True``): it must decide the opposite of the reviewer's
standing decision, and its record says so (``details.reversal``: the seq and decision it reverses).
A reviewer's standing decision is their latest one, so a reversed reject no longer vetoes.

Every review made with a reason gives a **reason code** from :data:`REASON_CODES`
(``details.reason_code``); ``"other (explained in the note)"`` needs a note. The review screen
(:func:`submit_review`) refuses a review without a decision or a reason, recorded like any refusal.

Review modes
------------
A ``review`` record is a **non-blind** review (``details.mode`` ``"non_blind"``): the reviewer
chose the query and saw its scores, ranks and earlier reviews. A **blind** review
(:mod:`audit.blind`, ``details.mode`` ``"blind"``) is a ``blind_review`` record that names
no query or face while its batch is open; it counts here once the batch's ``blind_reveal``
record maps it to its query and face, and a decision on a filler never counts (a filler is
not a candidate of the query: it never becomes a match).

Video candidates
----------------
A ``search_video`` record lists every track's candidates in ``candidates``, track after
track, and ``details.tracks[].candidates`` the face ids of each track's candidates in
rank order (:mod:`audit.audited`). The same gallery face can be a candidate of several
tracks (someone who walks past twice), and each is a lead of its own, reviewed on its
own: a video candidate is named by its **candidate id** ``"<track_id>:<face_id>"``
(``"3:5f0c..."``), which is what a review's ``target_face_id`` holds. A review may name
the bare face id when only one track has it (it is recorded as the candidate id).

:class:`~audit.trail.log.AuditLog` offers :func:`match_status` as a method; this
module holds the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from audit.accounts import normalize_name
from audit.errors import RecordNotFound, ReviewRefused
from audit.trail.records import DECISIONS, AuditRecord, Candidate
from audit.trail.sealed import ERASED, SUBJECTS_HINT
from audit.trail.store import AuditFilter

if TYPE_CHECKING:
    from audit.session import AuditSession
    from audit.trail.log import AuditEntry, AuditLog

__all__ = [
    "REASON_CODES",
    "REVIEWABLE_ACTIONS",
    "CandidateStatus",
    "MatchStatus",
    "candidate_id",
    "match_status",
    "match_statuses",
    "review",
    "submit_review",
    "video_candidates",
]

#: Actions whose ``ok`` results can be reviewed.
REVIEWABLE_ACTIONS = ("search", "verify", "search_video")

#: The purpose recorded with every review.
REVIEW_PURPOSE = "human review"

#: Why a reviewer decided as they did (a review's ``details.reason_code``): a fixed list, so reasons can be counted.
REASON_CODES: tuple[str, ...] = (
    "same person: distinctive features match",
    "same person: face shape and features agree",
    "different person: features differ",
    "different person: age, sex or build differ",
    "image quality too poor to decide",
    "other (explained in the note)",
)

#: The reason code that needs a note.
OTHER_REASON = REASON_CODES[-1]


def candidate_id(track_id: int, face_id: str) -> str:
    """Return the name a review gives a video candidate: ``"<track_id>:<face_id>"``."""
    return f"{track_id}:{face_id}"


def video_candidates(target: AuditRecord) -> list[tuple[int, Candidate]]:
    """Pair each candidate of a ``search_video`` record with the id of its track, in the record's order.

    Raises
    ------
    ValueError
        If ``details.tracks`` does not list exactly the record's candidates, in order
        (a record not written by :meth:`audit.audited.AuditedEngine.search_video`).
    """
    tracks = target.details.get("tracks")
    listed: list[tuple[int, str]] = []
    for track in tracks if isinstance(tracks, list) else ():
        faces = track.get("candidates") if isinstance(track, dict) else None
        track_id = track.get("track_id") if isinstance(track, dict) else None
        if not isinstance(track_id, int) or not isinstance(faces, list):
            raise ValueError(f"record {target.seq}: a track of details.tracks lacks its track_id or candidates")
        listed += [(track_id, str(face)) for face in faces]
    if [face for _, face in listed] != [c.face_id for c in target.candidates]:
        raise ValueError(f"record {target.seq}: details.tracks does not list the record's {len(target.candidates)} "
                         "candidates track by track")
    return [(track_id, c) for (track_id, _), c in zip(listed, target.candidates, strict=True)]


@dataclass(frozen=True)
class CandidateStatus:
    """Review status of one candidate (``face_id`` None: the pair of a ``verify``)."""

    face_id: str | None
    subject_id: str | None
    rank: int
    status: str
    """``confirmed``, ``pending`` or ``rejected``."""
    confirmations: tuple[str, ...]
    """Distinct eligible reviewer accounts who confirmed, sorted."""
    rejections: tuple[str, ...]
    """Distinct eligible reviewer accounts who rejected, sorted."""
    track_id: int | None = None
    """For a ``search_video`` candidate: the track it is a candidate of."""
    candidate_id: str | None = None
    """What a review names the candidate (its ``target_face_id``): the face id of a search candidate,
    ``"<track_id>:<face_id>"`` of a video candidate, None for a verify pair."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "face_id": self.face_id,
            "subject_id": self.subject_id,
            "rank": self.rank,
            "status": self.status,
            "confirmations": list(self.confirmations),
            "rejections": list(self.rejections),
            "track_id": self.track_id,
            "candidate_id": self.candidate_id,
        }


@dataclass(frozen=True)
class MatchStatus:
    """Review status of every candidate of one query."""

    seq: int
    operator: str | None
    action: str
    candidates: tuple[CandidateStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "operator": self.operator,
            "action": self.action,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def review(
    session: AuditSession, seq: int, decision: str, *, note: str | None = None, face_id: str | None = None,
    reason: str | None = None, reverse: bool = False,
) -> AuditEntry:
    """Record the session's actor's review of query ``seq`` (one candidate, named by ``face_id``).

    ``face_id`` may be omitted when the query has exactly one candidate (or is a
    ``verify``). A ``search_video`` candidate is named by its candidate id
    ``"<track_id>:<face_id>"``, or by its face id when only one track has that face.
    ``reason`` is a code of :data:`REASON_CODES`; ``reverse`` reverses the reviewer's own
    standing decision on the candidate (see the module docstring). Refusals are recorded
    before they are raised.

    Raises
    ------
    ValueError
        If ``decision`` is not ``confirm`` or ``reject``.
    NotAuthenticated, OperatorMismatch, Forbidden
        Nobody signed in, a ``--reviewer`` that is another account, or an account that is not
        a reviewer (refused and recorded by the gate).
    RecordNotFound
        If there is no record ``seq``.
    ReviewRefused
        If the record is not a reviewable match, the candidate is unknown or
        ambiguous, the reviewer is the query's operator, or signed in with an API token; a
        reason not in :data:`REASON_CODES` (or "other" without a note); a second review of
        the same candidate by the same reviewer; a reversal with nothing to reverse.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be 'confirm' or 'reject', got {decision!r}")
    gate = session.with_context(replace(session.context, purpose=REVIEW_PURPOSE, case_ref=None, case_required=False))
    asked = {"target_seq": seq, "target_face_id": face_id, "decision": decision}
    actor = gate.check("review", asked)
    fields: dict[str, Any] = {"target_seq": seq, "target_face_id": face_id, "reviewer": actor.name,
                              "decision": decision, "note": note}
    if reason is not None and reason not in REASON_CODES:
        why = f"reason {reason!r} is not one of the review reason codes: {'; '.join(REASON_CODES)}"
        gate.refuse("review", ReviewRefused.code, why, **fields)
        raise ReviewRefused(why)
    if reason == OTHER_REASON and not (note or "").strip():
        why = f"reason {OTHER_REASON!r} needs a note saying what the reason is"
        gate.refuse("review", ReviewRefused.code, why, **fields)
        raise ReviewRefused(why)
    if actor.method == "api_token":
        reason = (f"a review is a person's decision: {actor.name} must sign in with their own password "
                  "(API tokens are for scripts, and an admin issues them)")
        gate.refuse("review", ReviewRefused.code, reason, **fields)
        raise ReviewRefused(reason)
    try:
        target = gate.log.get(seq).record
    except RecordNotFound as err:
        gate.refuse("review", RecordNotFound.code, str(err), **fields)
        raise
    gate = gate.with_context(replace(gate.context, case_ref=target.case_ref))
    # the review names a candidate's face: sealed under its subject's key, so it is erased with the subject
    gallery = target.gallery.name if target.gallery is not None else ""
    fields[SUBJECTS_HINT] = {c.face_id: [gallery, c.subject_id] for c in target.candidates if c.subject_id != ERASED}

    def refuse(msg: str) -> ReviewRefused:
        gate.refuse("review", ReviewRefused.code, msg, **fields)
        return ReviewRefused(msg)

    if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
        raise refuse(f"record {seq} is a {target.action} with outcome {target.outcome!r}; "
                     "only search, search_video and verify results with outcome 'ok' can be reviewed")
    if target.action == "search_video":
        fields["target_face_id"] = _video_target(target, face_id, refuse)
    elif target.action == "search":
        faces = [c.face_id for c in target.candidates]
        if face_id is None:
            if len(faces) != 1:
                raise refuse(f"record {seq} has {len(faces)} candidates; name one with face_id")
            fields["target_face_id"] = faces[0]
        elif face_id not in faces:
            raise refuse(f"record {seq} has no candidate with face_id {face_id!r}")
    elif face_id is not None:
        raise refuse(f"record {seq} is a verify: review the pair without a face_id")
    if target.operator is not None and normalize_name(target.operator) == actor.name:
        raise refuse(f"{actor.name!r} ran query {seq} and cannot review it (two-person rule)")
    details: dict[str, Any] = {"mode": "non_blind", "reason_code": reason}
    standing = _standing_decision(gate.log, seq, fields["target_face_id"], actor.name)
    named = fields["target_face_id"] or "the verified pair"
    if reverse:
        if standing is None:
            raise refuse(f"{actor.name} has no decision on candidate {named} of record {seq} to reverse")
        if standing.decision == decision:
            raise refuse(f"{actor.name} already decided {decision!r} on candidate {named} of record {seq} "
                         f"(record {standing.seq}); a reversal decides the opposite")
        details["reversal"] = {"reverses_seq": standing.seq, "from": standing.decision}
    elif standing is not None:
        raise refuse(f"{actor.name} already reviewed candidate {named} of record {seq} (record {standing.seq}: "
                     f"{standing.decision}); a second review is refused: use 'reverse my decision' to change it")
    return gate.record("review", {**fields, "outcome": "ok", "details": details})


def _standing_decision(log: AuditLog, seq: int, named: str | None, name: str) -> AuditRecord | None:
    """Return the latest non-blind review of candidate ``named`` of query ``seq`` by account ``name``, if any."""
    found = None
    for e in log.list(AuditFilter(action="review", target_seq=seq, after_seq=seq)):
        r = e.record
        if (r.target_seq == seq and r.target_face_id == named and r.outcome == "ok" and r.reviewer
                and normalize_name(r.reviewer) == name):
            found = r
    return found


def submit_review(
    session: AuditSession, seq: int, decision: str | None, reason: str | None, *, note: str | None = None,
    face_id: str | None = None, reverse: bool = False,
) -> AuditEntry:
    """Submit from the review screen: :func:`review`, refused (and recorded) without a decision or a reason code.

    Raises
    ------
    ReviewRefused
        No decision, or no reason, chosen (recorded); else as :func:`review`.
    """
    missing = [what for what, value in (("a decision", decision), ("a reason", reason)) if not value]
    if missing:
        why = f"choose {' and '.join(missing)} before submitting a review (nothing is preselected)"
        gate = session.with_context(replace(session.context, purpose=REVIEW_PURPOSE, case_ref=None,
                                            case_required=False))
        actor = gate.check("review", {"target_seq": seq, "target_face_id": face_id})
        gate.refuse("review", ReviewRefused.code, why, target_seq=seq, target_face_id=face_id, reviewer=actor.name,
                    decision=decision, note=note)
        raise ReviewRefused(why)
    assert decision is not None
    return review(session, seq, decision, note=note, face_id=face_id, reason=reason, reverse=reverse)


def _video_target(target: AuditRecord, face_id: str | None, refuse: Callable[[str], ReviewRefused]) -> str:
    """Return the candidate id a review of a ``search_video`` names (module docstring), or refuse (recorded)."""
    try:
        ids = [candidate_id(track_id, c.face_id) for track_id, c in video_candidates(target)]
    except ValueError as err:
        raise refuse(str(err)) from err
    seq = target.seq
    if face_id is None:
        if len(ids) != 1:
            raise refuse(f"record {seq} has {len(ids)} track candidates; name one as TRACK:FACE_ID "
                         f"(its candidates: {', '.join(ids)})")
        return ids[0]
    if face_id in ids:
        return face_id
    same_face = [i for i in ids if i.partition(":")[2] == face_id]
    if len(same_face) == 1:
        return same_face[0]
    if same_face:
        raise refuse(f"face {face_id!r} is a candidate of {len(same_face)} tracks of record {seq}; "
                     f"name one: {', '.join(same_face)}")
    raise refuse(f"record {seq} has no candidate {face_id!r} (its candidates: {', '.join(ids)})")


def _eligible_reviewer(r: AuditRecord, operator: str | None) -> str | None:
    """Return the normalised account of a review that counts, or ``None`` (free text, a script's token, the operator's)."""
    auth = r.details.get("auth")
    if r.action not in ("review", "blind_review") or not r.reviewer or not r.operator or not isinstance(auth, dict):
        return None
    if auth.get("method") not in ("password_session", "dashboard_session"):
        return None
    name = normalize_name(r.reviewer)
    if name != normalize_name(r.operator) or (operator is not None and name == normalize_name(operator)):
        return None
    return name


def _revealed_blind_reviews(log: AuditLog, seq: int) -> list[tuple[str | None, AuditRecord]]:
    """Blind decisions on real candidates of query ``seq``, as the reveals of closed batches map them: (face, record)."""
    out: list[tuple[str | None, AuditRecord]] = []
    for e in log.list(AuditFilter(action="blind_reveal", after_seq=seq)):
        details = e.record.details
        if seq not in (details.get("queries") or ()):
            continue
        for d in details.get("decisions") or ():
            if d.get("seq") != seq or d.get("filler") is not False:
                continue  # a decision on a filler never counts: a filler is not a candidate
            r = log.get(int(d["review_seq"])).record
            if (r.action == "blind_review" and r.details.get("batch_id") == details.get("batch_id")
                    and r.details.get("item") == d.get("item")):
                out.append((str(d["face_id"]), r))
    return out


def match_status(log: AuditLog, seq: int) -> MatchStatus:
    """Return the review status (confirmed / pending / rejected) of each candidate of query ``seq``.

    Raises
    ------
    RecordNotFound
        If there is no record ``seq``.
    ValueError
        If a ``search_video`` record's tracks do not list its candidates (see :func:`video_candidates`).
    """
    target = log.get(seq).record
    if target.action not in REVIEWABLE_ACTIONS or target.outcome != "ok":
        return MatchStatus(seq, target.operator, target.action, ())
    reviews: list[tuple[str | None, AuditRecord]] = [
        (e.record.target_face_id, e.record)
        for e in log.list(AuditFilter(action="review", target_seq=seq, after_seq=seq))
        if e.record.target_seq == seq
    ]
    if target.action == "search":
        reviews += _revealed_blind_reviews(log, seq)
    return _status(target, reviews)


def match_statuses(log: AuditLog, targets: Sequence[AuditRecord]) -> list[MatchStatus]:
    """Return :func:`match_status` of many queries, reading the log's reviews and reveals once (not once per query).

    Raises
    ------
    ValueError
        As :func:`match_status`.
    """
    wanted = {t.seq for t in targets if t.action in REVIEWABLE_ACTIONS and t.outcome == "ok"}
    if not wanted:
        return [MatchStatus(t.seq, t.operator, t.action, ()) for t in targets]
    first = min(wanted)
    by_seq: dict[int, list[tuple[str | None, AuditRecord]]] = {}
    for e in log.list(AuditFilter(action="review", after_seq=first)):
        r = e.record
        if r.target_seq in wanted and r.target_seq is not None and r.seq > r.target_seq:
            by_seq.setdefault(r.target_seq, []).append((r.target_face_id, r))
    searches = {t.seq for t in targets if t.seq in wanted and t.action == "search"}
    if searches and log.list(AuditFilter(action="blind_reveal", after_seq=first), limit=1):
        for seq in sorted(searches):
            by_seq.setdefault(seq, []).extend(_revealed_blind_reviews(log, seq))
    return [_status(t, by_seq.get(t.seq, [])) if t.seq in wanted else MatchStatus(t.seq, t.operator, t.action, ())
            for t in targets]


def _status(target: AuditRecord, reviews: list[tuple[str | None, AuditRecord]]) -> MatchStatus:
    """Apply the two-person rule to ``reviews`` (what each names, the review record) of the query ``target``."""
    # (what a review names it, face id, subject id, rank, track id)
    keys: Sequence[tuple[str | None, str | None, str | None, int, int | None]]
    if target.action == "search":
        keys = [(c.face_id, c.face_id, c.subject_id, c.rank, None) for c in target.candidates]
    elif target.action == "search_video":
        keys = [(candidate_id(t, c.face_id), c.face_id, c.subject_id, c.rank, t) for t, c in video_candidates(target)]
    else:
        keys = [(None, None, None, 1, None)]
    out = []
    for named, face_id, subject_id, rank, track_id in keys:
        decided: dict[str, set[str]] = {}  # a reviewer's standing decisions; only a reversal replaces them
        for reviewed, r in sorted(reviews, key=lambda pair: pair[1].seq):
            name = _eligible_reviewer(r, target.operator) if reviewed == named else None
            if name is None or r.decision is None:
                continue
            if isinstance(r.details.get("reversal"), dict):
                decided[name] = {r.decision}
            else:
                decided.setdefault(name, set()).add(r.decision)
        confirms = {n for n, d in decided.items() if "confirm" in d}
        rejects = {n for n, d in decided.items() if "reject" in d}
        status = "rejected" if rejects else ("confirmed" if len(confirms) >= 2 else "pending")
        out.append(CandidateStatus(face_id, subject_id, rank, status, tuple(sorted(confirms)),
                                   tuple(sorted(rejects)), track_id, named))
    return MatchStatus(target.seq, target.operator, target.action, tuple(out))
