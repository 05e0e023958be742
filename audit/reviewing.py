"""What a reviewer is shown to decide a candidate: the photos, the threshold and the score's error context.

The review screen (one for the match log and the blind review) shows, for one candidate of a
query: the probe photo kept for the review (:mod:`audit.evidence`) and the candidate's gallery
reference photo (kept sealed under the subject's key, :meth:`core.gallery.GalleryStore.photo`),
side by side; the threshold the query ran at and whether it was looser than the deployment's
policy (:mod:`audit.policy`, as the query's record states it); and how often an impostor scores
this close in the designated evaluation, overall and for the candidate's groups.

:func:`review_evidence` opens the photos through the gate: only reviewers and auditors
(``read_log``) of a record that names the candidate; anyone else, or a face the record does not
name, is refused and the refusal recorded; the showing of a photo is recorded (``read_evidence``, once per
sign-in credential and candidate: a page redraws the photos at every interaction; nothing is
recorded when no photo is kept). Photos
are decoded and encoded again as PNG, so no file metadata (a camera's location) reaches the screen.

:func:`review_queue` is a reviewer's queue: the candidates still pending that they may review
and have not, oldest query first, with its age.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from PIL import Image as PILImage

from audit.accounts import normalize_name
from audit.errors import RecordNotFound, ReviewRefused
from audit.evaluation.store import EvaluationStore
from audit.evidence import EvidenceStore
from audit.policy import current_policy
from audit.probe_group import group_key, stated
from audit.session import AuditSession
from audit.trail.log import AuditLog
from audit.trail.records import AuditRecord
from audit.trail.review import REVIEW_PURPOSE, REVIEWABLE_ACTIONS, match_statuses, video_candidates
from audit.trail.store import AuditFilter
from core.errors import GalleryNotFound
from core.gallery import GalleryStore
from core.image import load_image

__all__ = ["QueueItem", "RateAtScore", "ReviewEvidence", "designated_evaluation", "rates_at_score", "review_evidence",
           "review_queue"]


@dataclass(frozen=True)
class RateAtScore:
    """How often an impostor pair of one group scored at least this similarity in an evaluation."""

    group: str
    """``"overall"`` or ``"<grouping>: <group>"``."""
    impostors_at_or_above: int
    impostor_pairs: int

    @property
    def rate(self) -> float | None:
        """The false-match rate at this score (None without impostor pairs)."""
        return self.impostors_at_or_above / self.impostor_pairs if self.impostor_pairs else None

    def words(self) -> str:
        """Say the rate in words: ``"3 in 10,000 impostor pairs"``, ``"fewer than 1 in 167,620"``."""
        if not self.impostor_pairs:
            return "no impostor pairs measured"
        if not self.impostors_at_or_above:
            return f"fewer than 1 in {self.impostor_pairs:,} impostor pairs scored this high"
        return (f"{self.impostors_at_or_above:,} in {self.impostor_pairs:,} impostor pairs scored this high "
                f"(about 1 in {max(1, round(self.impostor_pairs / self.impostors_at_or_above)):,})")


@dataclass(frozen=True)
class ReviewEvidence:
    """What the review screen shows for one candidate (photos as PNG bytes, or None with why)."""

    seq: int
    candidate: str | None
    """What a review names the candidate (face id, ``track:face`` id), None for a verify pair."""
    subject_id: str | None
    similarity: str | None
    threshold: float | None
    policy: dict[str, Any] | None
    """The record's ``details.threshold_policy`` (status ``within``, ``looser``, ...), None if it has none."""
    probe: bytes | None
    probe_note: str
    reference: bytes | None
    reference_note: str
    evaluation: str | None = None
    """The designated evaluation (:func:`designated_evaluation`), None: no evaluation designated."""
    rates: tuple[RateAtScore, ...] = ()
    """The false-match rate at this score: overall, then the candidate's groups the evaluation measured."""
    probe_group: str | None = None
    """The probe's group as the operator stated it at search time (:mod:`audit.probe_group`), None: not stated."""
    probe_rates: tuple[RateAtScore, ...] = ()
    """The false-match rate at this score for the probe's group (empty: not stated or not measured)."""

    @property
    def looser_than_policy(self) -> bool:
        """Whether the query ran at a threshold looser than the deployment's policy."""
        return isinstance(self.policy, dict) and self.policy.get("status") in ("looser", "beyond_limit")


@dataclass(frozen=True)
class QueueItem:
    """One candidate pending for a reviewer."""

    seq: int
    action: str
    candidate: str | None
    subject_id: str | None
    rank: int
    started_at: str
    age_hours: float


def _png(data: bytes) -> bytes:
    """Decode an image and encode it again as PNG (no metadata of the file survives)."""
    buffer = io.BytesIO()
    PILImage.fromarray(load_image(data).pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _candidate_of(record: AuditRecord, candidate: str | None) -> tuple[str | None, str | None, str | None]:
    """Return (candidate id, face id, subject id) of ``candidate`` in the record, or raise ValueError."""
    if record.action == "verify":
        if candidate is not None:
            raise ValueError(f"record {record.seq} is a verify: its pair has no candidate id")
        return None, None, None
    if record.action == "search_video":
        pairs = [(f"{t}:{c.face_id}", c) for t, c in video_candidates(record)]
    else:
        pairs = [(c.face_id, c) for c in record.candidates]
    for named, c in pairs:
        if named == candidate:
            return named, c.face_id, c.subject_id
    raise ValueError(f"record {record.seq} names no candidate {candidate!r}")


def review_evidence(session: AuditSession, galleries: GalleryStore, seq: int, candidate: str | None, *,
                    evidence: EvidenceStore | None = None,
                    evaluations: EvaluationStore | None = None) -> ReviewEvidence:
    """Open the photos and the threshold of one candidate of query ``seq`` for a reviewer or an auditor (recorded).

    ``evaluations``: the evaluation store to read the error rates from (default: a new one on
    the galleries' database); a long-lived one keeps each stored run's report, which never changes.

    Raises
    ------
    NotAuthenticated, Forbidden
        From the gate (recorded): only reviewers and auditors (``read_log``).
    RecordNotFound
        No record ``seq`` (recorded).
    ReviewRefused
        The record is not a reviewable result or does not name the candidate (recorded).
    """
    gate = session.with_context(replace(session.context, purpose=REVIEW_PURPOSE, case_ref=None, case_required=False))
    asked: dict[str, Any] = {"target_seq": seq, "target_face_id": candidate}
    gate.check("read_evidence", asked)
    try:
        record = gate.log.get(seq).record
    except RecordNotFound as err:
        gate.refuse("read_evidence", RecordNotFound.code, str(err), None, **asked)
        raise
    try:
        if record.action not in REVIEWABLE_ACTIONS or record.outcome != "ok":
            raise ValueError(f"record {seq} is a {record.action} with outcome {record.outcome!r}: nothing to review")
        named, face_id, subject_id = _candidate_of(record, candidate)
    except ValueError as err:
        gate.refuse("read_evidence", ReviewRefused.code, str(err), None, **asked)
        raise ReviewRefused(str(err)) from err
    retained = record.details.get("retained")
    probe_id = retained.get("probe_image") if isinstance(retained, dict) else None
    probe, probe_note = None, "not kept for this query"
    if isinstance(probe_id, str):
        store = evidence if evidence is not None else EvidenceStore.beside(galleries.db.path, galleries.keys)
        try:
            probe, probe_note = _png(store.read(gate, probe_id)), "kept for this review"
        except KeyError:
            probe_note = "destroyed: its review ended or its retention expired"
    reference, reference_note = None, "a verify compares two probes: no gallery photo"
    gallery = record.gallery.name if record.gallery is not None and _gallery_exists(galleries, record) else None
    if face_id is not None and record.gallery is not None:
        photo = galleries.photo(gallery, face_id) if gallery is not None else None
        reference, reference_note = ((_png(photo), "the gallery's reference photo") if photo is not None else
                                     (None, "not kept at enrolment, or the subject was erased"))
    shown = {"probe_image": probe is not None, "reference_photo": reference is not None}
    if any(shown.values()) and not _already_recorded(gate, seq, named, shown):  # a photo was opened: recorded
        gate.record("read_evidence", {**asked, "target_face_id": named, "outcome": "ok", "details": shown})
    similarity = next((c.similarity for c in record.candidates if c.face_id == face_id), None)
    threshold = record.details.get("threshold")
    policy = record.details.get("threshold_policy")
    evaluations = evaluations if evaluations is not None else EvaluationStore(galleries.db)
    designated = designated_evaluation(session.log, evaluations, None if record.gallery is None else record.gallery.name,
                                       record.model_config)
    rates: list[RateAtScore] = []
    probe_rates: list[RateAtScore] = []
    probe_group = stated(record.details)  # the operator's statement, never inferred from the face
    if designated is not None and similarity is not None:
        fields = galleries.face_fields(gallery, face_id) if face_id is not None and gallery is not None else None
        rates = rates_at_score(evaluations, designated[0], float(similarity), (fields or {}).get("metadata"))
        if probe_group is not None:
            probe_rates = [r for r in rates_at_score(evaluations, designated[0], float(similarity),
                                                     group_key(probe_group)) if r.group != "overall"]
    return ReviewEvidence(seq, named, subject_id, similarity, _number(threshold),
                          policy if isinstance(policy, dict) else None, probe, probe_note, reference, reference_note,
                          None if designated is None else designated[1], tuple(rates), probe_group, tuple(probe_rates))


def _already_recorded(gate: AuditSession, seq: int, named: str | None, shown: dict[str, bool]) -> bool:
    """Whether this sign-in (the same credential) was already shown the same photos of this candidate.

    A page shows the photos again at every interaction; the first showing per credential is the
    record (it names the credential, so the log says which sign-in saw them), not every redraw.
    """
    assert gate.actor is not None
    auth = gate.actor.auth_fields()
    for e in gate.log.list(AuditFilter(action="read_evidence", target_seq=seq, after_seq=seq)):
        r = e.record
        if (r.target_face_id == named and r.details.get("auth") == auth
                and all(r.details.get(k) == v for k, v in shown.items())):
            return True
    return False


def _number(value: Any) -> float | None:
    """Return a number the record holds (records keep floats as decimal strings), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _gallery_exists(galleries: GalleryStore, record: AuditRecord) -> bool:
    """Whether the record's gallery still exists (a dropped gallery took its photos with it)."""
    assert record.gallery is not None
    try:
        galleries.ref(record.gallery.name)
    except GalleryNotFound:
        return False
    return True


def designated_evaluation(log: AuditLog, evaluations: EvaluationStore, gallery_name: str | None,
                          model_config: dict[str, Any] | None) -> tuple[str, str] | None:
    """Return ``(run id, label)`` of the evaluation the threshold policy designates for a query, or None.

    The deployment designates it (:mod:`audit.policy`, the policy record's ``evaluation``), as
    for the Search and Verify pages: never a run a reviewer or an operator picks. None when the
    policy designates none, or the designated run measured another configuration than the
    query's (its rates would not be this system's).
    """
    run_id = current_policy(log, gallery_name).evaluation
    if run_id is None:
        return None
    stored = {r.run_id: r for r in evaluations.list()}
    key = (model_config or {}).get("embedding_key")
    if run_id not in stored or stored[run_id].embedding_key != key:
        return None
    return run_id, f"evaluation {run_id} on {stored[run_id].dataset} (designated by the threshold policy)"


def rates_at_score(evaluations: EvaluationStore, run_id: str, similarity: float,
                   metadata: dict[str, Any] | None = None) -> list[RateAtScore]:
    """Return the false-match rate at ``similarity`` in evaluation ``run_id``: overall, then per matching group.

    A group of the evaluation (one label, e.g. ``{"sex": "F"}``) is the candidate's when its
    ``metadata`` has that label with that value; groups the evaluation did not measure are left out.
    Counts come from the run's score histograms, as :meth:`EvaluationReport.false_match_rate_at`
    reads them (the bin holding the score counts as at or above it, so the rate is not understated).
    """
    report = evaluations.load(run_id)
    groups: dict[tuple[tuple[str, str], ...], list[Mapping[str, Any]]] = {}
    for row in report.histogram_rows:
        groups.setdefault(tuple(sorted((str(k), str(v)) for k, v in dict(row["group"]).items())), []).append(row)
    labels = {str(k): str(v) for k, v in (metadata or {}).items()}
    out: list[RateAtScore] = []
    for key in sorted(groups, key=lambda k: (len(k), k)):
        if key and not (len(key) == 1 and labels.get(key[0][0]) == key[0][1]):
            continue
        rows = groups[key]
        total = sum(int(r["impostor"]) for r in rows)
        above = sum(int(r["impostor"]) for r in rows if r["bin_hi"] > similarity)
        out.append(RateAtScore("overall" if not key else f"{key[0][0]} {key[0][1]}", above, total))
    return out


def review_queue(log: AuditLog, reviewer: str, *, now: datetime | None = None) -> list[QueueItem]:
    """Return the candidates pending for ``reviewer``: not their own queries, not reviewed by them; oldest first."""
    name = normalize_name(reviewer)
    now = now or datetime.now(UTC)
    out: list[QueueItem] = []
    # which queries to open is read from their unsealed facts in SQL: only the reviewable ones are decoded
    seqs = [f.seq for action in REVIEWABLE_ACTIONS for f in log.facts(AuditFilter(action=action))
            if f.outcome == "ok" and not (f.operator and normalize_name(f.operator) == name)]
    targets = [e.record for e in log.entries(seqs)]
    for record, status in zip(targets, match_statuses(log, targets), strict=True):
        started = pd.Timestamp(record.started_at).to_pydatetime()
        for c in status.candidates:
            if c.status != "pending" or name in c.confirmations or name in c.rejections:
                continue
            out.append(QueueItem(record.seq, record.action, c.candidate_id, c.subject_id, c.rank,
                                 record.started_at, max(0.0, (now - started).total_seconds() / 3600)))
    return sorted(out, key=lambda q: (q.started_at, q.seq, q.rank))
