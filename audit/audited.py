"""The audited front door of the engine: every query and every gallery change leaves a record.

:class:`AuditedEngine` puts an :class:`~core.engine.Engine` and a
:class:`~core.gallery.GalleryStore` behind an :class:`~audit.session.AuditSession`.
Each method checks the session's context once, does the work once, and appends one
record (outcome ``ok``, ``no_match`` or the error's ``code``) before it returns the
result or re-raises the error. Records describe results through
:mod:`audit.trail.convert`, the one conversion from the engine's types.

Who acts is the session's authenticated actor, and its role must allow the action
(``search``/``verify`` for operators, gallery changes for admins: see
:data:`audit.accounts.ACTION_PERMISSIONS`); the session refuses (and records) anything else.

A gallery change (create, enrol, delete, drop) and its record commit in one
transaction (the gallery store's lock, then the log's, then the database's): a crash at
any point leaves both or neither. Enrolling images embeds them first, outside the
transaction, so the database is held only for the insert and the record. Erased rows
are checkpointed out of the write-ahead log after the commit.

A video search (:meth:`AuditedEngine.search_video`) is one ``search_video`` record per
job, whatever the length of the footage. It names the video by its SHA-256
(``probe_sha256``; the footage is never stored, nor its path), and holds:

- ``candidates``: every track's candidates, track after track, each track's in rank
  order (ranks restart at 1 in each track). Keeping them in the record's own
  candidate field, in the one wire format of every search, is what lets exports
  pseudonymise their subject ids, and the match log, the overview and the CLI count
  and list them, with no code of their own for video.
- ``details.tracks``: one entry per track (``track_id``, ``start_ms``, ``end_ms``,
  ``faces``, ``best_ms``, ``best_face``, ``searches``) with ``candidates``: the face ids
  of its candidates in rank order, which assigns each record candidate to its track.
  A candidate is reviewed by its candidate id ``"<track_id>:<face_id>"``
  (:mod:`audit.trail.review`).
- ``details``: the sampling (fps, detection scale, searches per track, the limits),
  the video's duration, frame counts and size, the query (``top_k``, ``threshold``,
  exact or not), the expected FPIR of one search at that threshold of this gallery
  (each track is searched up to ``searches_per_track`` times), and ``retained``: what
  was kept of the footage (never the video; the best crop of each track with candidates,
  sealed in the evidence store until its review ends or its retention expires:
  :mod:`audit.evidence`, with the ids of the kept crops and when they expire).

A failed job is recorded with the error's code and what is known of the file
(:func:`core.video.video_facts`: its SHA-256, size, container and declared length).

Searches and video searches follow the deployment's threshold policy (:mod:`audit.policy`):
a threshold looser than the policy's loosest needs a written reason, past its hard limit
it is refused (both refusals recorded, with the warning the operator was shown), and
every search record says where its threshold stood (``details.threshold_policy``).

Every method returns an :class:`~audit.session.Audited` pair ``(result, entry)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from audit.evaluation.report import EvaluationReport
from audit.evaluation.store import EvaluationStore
from audit.evidence import EvidenceStore
from audit.policy import (
    ThresholdBeyondLimit,
    ThresholdCheck,
    ThresholdPolicy,
    ThresholdReasonRequired,
    check_policy_values,
    check_threshold_policy,
    current_policy,
    policy_fields,
)
from audit.privacy_export import export_pseudonym_key
from audit.probe_group import ProbeGroupUnknown, check_probe_group
from audit.session import Audited, AuditSession
from audit.trail.convert import candidate_fields, face_detectors, gallery_fields
from audit.trail.excerpt import write_excerpt
from audit.trail.export import ExportSummary, export_records, load_pseudonym_key
from audit.trail.log import AuditLog
from audit.trail.sealed import SUBJECTS_HINT, subject_commitment, with_erasure_ids
from audit.trail.store import AuditFilter
from core.config import ModelConfig, check_threshold
from core.engine import Engine
from core.enrollment import EmbeddedImages, EnrollReport, embed_images, enroll_embedded
from core.errors import BadInput, EnrollmentFailed, FrameTooLarge, RecognitionError, UnreadableVideo, VideoTooLong
from core.gallery import EnrollItem, GalleryInfo, GalleryStore
from core.image import ImageSource, sha256_file
from core.manifest import SourceImage
from core.results import Embedding, SearchResult, VerifyResult, VideoSearchResult
from core.thresholds import ThresholdStore
from core.video import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_PIXELS_PER_FRAME, video_facts

__all__ = ["AuditedEngine", "audited_export"]

T = TypeVar("T")
P = TypeVar("P")


def _digest(source: ImageSource | Embedding) -> str | None:
    """SHA-256 of a probe that failed before the engine could identify it (None if unknown)."""
    if isinstance(source, Embedding):
        return source.image_sha256
    if isinstance(source, bytes | bytearray):
        return hashlib.sha256(source).hexdigest()
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_file():
            try:
                return sha256_file(path)
            except OSError:
                return None
    return None


def _probe_bytes(source: ImageSource | Embedding) -> bytes | None:
    """Return the image a probe was given as (file bytes, bytes, or pixels as PNG); None for an embedding."""
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return Path(source).read_bytes()
    if isinstance(source, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(source).save(buffer, format="PNG")
        return buffer.getvalue()
    return None


def _recordable(value: Any) -> Any:
    """Return a requested option as a record can hold it (a non-finite number, refused by the engine, as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class AuditedEngine:
    """An engine and a gallery store whose every action is recorded by an :class:`AuditSession`.

    Parameters
    ----------
    session
        The gate: context and log of every action run through this object.
    engine
        The recognition engine.
    galleries
        The gallery store.
    """

    def __init__(self, session: AuditSession, engine: Engine, galleries: GalleryStore) -> None:
        self.session = session
        self.engine = engine
        self.galleries = galleries
        self._evidence: EvidenceStore | None = None
        self._unlinked: list[str] = []
        self._config_kept: tuple[ModelConfig, dict[str, Any]] | None = None
        if galleries.db is getattr(session.log, "db", None):
            session.log.share_key_store(galleries.keys)

    @property
    def log(self) -> Any:
        """The audit log records go to."""
        return self.session.log

    def _config_fields(self, config: ModelConfig) -> dict[str, Any]:
        """Return ``config.to_dict()``, kept for the (frozen) configuration object it was made of.

        A search's record gets the same dict each time: the log copies it into the record
        (:meth:`audit.trail.records.AuditRecord.from_dict`), nothing changes it.
        """
        kept = self._config_kept
        if kept is None or kept[0] is not config:
            kept = self._config_kept = (config, config.to_dict())
        return kept[1]

    def _gallery_ref(self, name: str) -> dict[str, Any] | None:
        try:
            return gallery_fields(self.galleries.ref(name))
        except RecognitionError:
            return None

    def _check_threshold(self, action: str, threshold: float | None, details: Mapping[str, Any]) -> None:
        """Refuse (and record) a threshold that is not a cosine distance in [0, 2] before any work."""
        if threshold is None:
            return
        try:
            check_threshold(threshold)
        except BadInput as err:
            self.session.refuse(action, err.code, str(err), {**details, "threshold_requested": str(threshold)})
            raise

    def _run(self, action: str, call: Callable[[], Any], describe: Callable[[Any], dict[str, Any]],
             on_error: Callable[[BaseException], dict[str, Any]]) -> Audited[Any]:
        done = self.session.run(action, call, describe, on_error)
        kept, self._unlinked = self._unlinked, []
        for evidence_id in kept:  # images kept by ``describe`` are evidence for this record
            self.evidence.link(evidence_id, done.seq)
        return done

    # -- queries --------------------------------------------------------------------------------

    def verify(self, a: ImageSource, b: ImageSource, *, threshold: float | None = None,
               threshold_reason: str | None = None) -> Audited[VerifyResult]:
        """Compare two images (1:1) and record it; outcome ``ok`` when verified, else ``no_match``.

        The threshold follows the policy for every gallery (:mod:`audit.policy`) as a search's
        does; the record's ``details.threshold_policy`` says where it stood.

        Raises
        ------
        MissingContext
            No operator or purpose (a ``refused`` record was appended).
        ThresholdReasonRequired, ThresholdBeyondLimit
            Looser than the policy without a reason, or past its hard limit (refused and recorded).
        RecognitionError
            Whatever the engine raised (recorded with its ``code``).
        """
        self.session.check("verify")
        self._check_threshold("verify", threshold, {})
        policy = self._require(self.verify_threshold_check(threshold), "verify", threshold_reason, {})

        def describe(r: VerifyResult) -> dict[str, Any]:
            return {
                "outcome": "ok" if r.verified else "no_match",
                "model_config": r.config.to_dict(),
                "probe_sha256": [r.a.image_sha256, r.b.image_sha256],
                "faces_found": r.a.faces_detected + r.b.faces_detected,
                "details": {
                    "verified": bool(r.verified),
                    "distance": r.distance,
                    "similarity": r.similarity,
                    "threshold": r.threshold,
                    "faces_detected": [r.a.faces_detected, r.b.faces_detected],
                    "threshold_policy": policy.to_dict(),
                    "detectors": [r.a.detector, r.b.detector],
                    "face_policy": self.engine.face_policy,
                },
            }

        def on_error(_: BaseException) -> dict[str, Any]:
            digests = [_digest(a), _digest(b)]
            return {"model_config": self.engine.config.to_dict(),
                    "probe_sha256": None if None in digests else digests,
                    "details": {"threshold_requested": threshold, "threshold_policy": policy.to_dict(),
                                "face_policy": self.engine.face_policy}}

        return self._run("verify", lambda: self.engine.verify(a, b, threshold=threshold), describe, on_error)

    def search(
        self, gallery_name: str, probe: ImageSource | Embedding, *, top_k: int = 10, threshold: float | None = None,
        threshold_reason: str | None = None, probe_group: str | None = None,
    ) -> Audited[SearchResult]:
        """Search a gallery (1:N) and record it; outcome ``ok`` with candidates, else ``no_match``.

        A threshold looser than the deployment's policy needs ``threshold_reason``
        (:mod:`audit.policy`); the record's ``details.threshold_policy`` says where it stood.
        ``probe_group``, stated by the operator (:mod:`audit.probe_group`), is recorded in
        ``details.probe_group``.

        Raises
        ------
        MissingContext
            No operator or purpose (a ``refused`` record was appended).
        ThresholdReasonRequired, ThresholdBeyondLimit
            Looser than the policy without a reason, or past its hard limit (refused and recorded).
        ProbeGroupUnknown
            ``probe_group`` is not a group label of the designated evaluation (refused and recorded).
        RecognitionError
            Whatever the engine or gallery store raised (recorded with its ``code``).
        """
        self.session.check("search", {"gallery_name": gallery_name})
        self._check_threshold("search", threshold, {"gallery_name": gallery_name})
        policy = self._policy("search", gallery_name, threshold, threshold_reason)
        group = self._probe_group(gallery_name, probe_group)
        return self._search(gallery_name, probe, top_k, threshold, policy, group)

    def search_many(
        self, gallery_name: str, probes: Sequence[ImageSource | Embedding], *, top_k: int = 10,
        threshold: float | None = None, threshold_reason: str | None = None, probe_group: str | None = None,
    ) -> list[Audited[SearchResult] | RecognitionError]:
        """Search several probes against one gallery: one check (of the context and the policy), one record per probe.

        A probe that fails is recorded and returned as its error; the others go on.
        """
        self.session.check("search", {"gallery_name": gallery_name})
        self._check_threshold("search", threshold, {"gallery_name": gallery_name})
        policy = self._policy("search", gallery_name, threshold, threshold_reason)
        group = self._probe_group(gallery_name, probe_group)
        out: list[Audited[SearchResult] | RecognitionError] = []
        for probe in probes:
            try:
                out.append(self._search(gallery_name, probe, top_k, threshold, policy, group))
            except RecognitionError as err:  # recorded by the session; reported per probe
                out.append(err)
        return out

    def _search(
        self, gallery_name: str, probe: ImageSource | Embedding, top_k: int, threshold: float | None,
        policy: ThresholdCheck, probe_group: str | None = None,
    ) -> Audited[SearchResult]:
        def call() -> SearchResult:
            loaded = self.galleries.load(gallery_name)
            return self.engine.search(loaded, probe, top_k=top_k, threshold=threshold)

        def describe(r: SearchResult) -> dict[str, Any]:
            return {
                "outcome": "ok" if r.candidates else "no_match",
                "gallery": gallery_fields(r.gallery),
                "model_config": self._config_fields(r.config),
                "probe_sha256": [r.image_sha256],
                "faces_found": r.faces_detected,
                "candidates": [candidate_fields(c) for c in r.candidates],
                "details": {"top_k": top_k, "threshold": r.threshold, "expected_fpir": self._expected_fpir(r),
                            "threshold_policy": policy.to_dict(), "detector": r.detector,
                            "face_policy": self.engine.face_policy,
                            **({"probe_group": probe_group} if probe_group else {})},
            }

        def on_error(_: BaseException) -> dict[str, Any]:
            digest = _digest(probe)
            return {"gallery": self._gallery_ref(gallery_name), "model_config": self.engine.config.to_dict(),
                    "probe_sha256": None if digest is None else [digest],
                    "details": {"gallery_name": gallery_name, "top_k": top_k, "threshold_requested": threshold,
                                "threshold_policy": policy.to_dict(), "face_policy": self.engine.face_policy,
                                **({"probe_group": probe_group} if probe_group else {})}}

        def recorded(r: SearchResult) -> dict[str, Any]:  # the probe image kept for review is named in the record
            fields = describe(r)
            fields["details"]["retained"] = self._keep_probe(probe, r)
            return fields

        return self._run("search", call, recorded, on_error)

    @property
    def evidence(self) -> EvidenceStore:
        """The evidence store beside the database (images kept for review: :mod:`audit.evidence`)."""
        if self._evidence is None:
            self._evidence = EvidenceStore.beside(self.galleries.db.path, self.galleries.keys)
        return self._evidence

    def _keep_probe(self, probe: ImageSource | Embedding, r: SearchResult) -> dict[str, Any]:
        """Keep the probe image of a search with candidates (sealed, for its review); say what was kept."""
        data = _probe_bytes(probe) if r.candidates else None
        if data is None:
            return {"probe_image": None}
        item = self.evidence.keep(data, "probe_image")
        self._unlinked.append(item.evidence_id)
        return {"probe_image": item.evidence_id, "until": item.expires_at}

    def _keep_crops(self, r: VideoSearchResult) -> dict[str, Any]:
        """Keep the best crop of each track with candidates (sealed, for its review); say what was kept."""
        crops: dict[str, str] = {}
        until = None
        for t in r.tracks:
            if t.candidates and t.crop is not None:
                buffer = io.BytesIO()
                Image.fromarray(t.crop).save(buffer, format="PNG")
                item = self.evidence.keep(buffer.getvalue(), "track_crop")
                self._unlinked.append(item.evidence_id)
                crops[str(t.track_id)], until = item.evidence_id, item.expires_at
        return {"video": False, "crops": len(crops), "crop_evidence": crops, "until": until}

    def _expected_fpir(self, r: SearchResult) -> dict[str, Any] | None:
        """Return the FPIR a search at its threshold of a gallery its size should expect, labelled (core.thresholds)."""
        if r.threshold is None:
            return None
        found = ThresholdStore(self.galleries.db).expected_fpir(r.config, r.gallery.size, r.threshold,
                                                                r.gallery.fingerprint)
        return None if found is None else found.to_dict()

    # -- threshold policy (audit.policy) ------------------------------------------------------

    def threshold_policy(self, gallery_name: str | None = None) -> ThresholdPolicy:
        """Return the threshold policy in force for ``gallery_name`` (the latest policy record, or the built-in)."""
        return current_policy(self.log, gallery_name)

    def threshold_check(self, gallery_name: str, threshold: float | None) -> ThresholdCheck:
        """Return where ``threshold`` (None: the default) stands against the policy, with the warning to show.

        Nothing is recorded: interfaces call this to show the operator the warning (and ask
        for a reason) before the search, which checks again and records the same text.
        """
        return self._threshold_check(gallery_name, threshold, reuse=False)

    def _threshold_check(self, gallery_name: str, threshold: float | None, *, reuse: bool) -> ThresholdCheck:
        """:meth:`threshold_check`; ``reuse``: the policy records as last read while none can have been added.

        The search reuses them (:func:`audit.policy.current_policy` ``reuse``): no other process
        can write the file while this one holds it, and this process's own policy records are counted.
        """
        config = self.engine.config
        policy = current_policy(self.log, gallery_name, reuse=True) if reuse else self.threshold_policy(gallery_name)
        check = check_threshold_policy(policy, threshold, config.threshold, config.threshold_source.description)
        if check.status == "within" or threshold is None:
            return check  # no warning to show: the expected FPIR is not needed (the record states it anyway)
        try:
            ref = self.galleries.ref(gallery_name)
        except RecognitionError:  # an unknown gallery: the search itself refuses and records it
            return check
        found = ThresholdStore(self.galleries.db).expected_fpir(config, ref.size, threshold, ref.fingerprint)
        return check_threshold_policy(policy, threshold, config.threshold, config.threshold_source.description,
                                      None if found is None else found.to_dict())

    def verify_threshold_check(self, threshold: float | None) -> ThresholdCheck:
        """Where a verification's ``threshold`` (None: the default) stands against the policy for every gallery.

        The warning quotes the false-match rate at that threshold from the designated
        evaluation (:meth:`designated_evaluation`). Nothing is recorded (as :meth:`threshold_check`).
        """
        config = self.engine.config
        policy = self.threshold_policy(None)
        check = check_threshold_policy(policy, threshold, config.threshold, config.threshold_source.description,
                                       action="verify")
        if check.status == "within":
            return check
        found = self.designated_evaluation(None)
        rate = None if found is None else {
            "fpir": found[1].false_match_rate_at(1.0 - check.threshold),
            "method": f"the false-match rate at this threshold in the designated evaluation {found[0]}"}
        return check_threshold_policy(policy, threshold, config.threshold, config.threshold_source.description,
                                      rate, action="verify")

    def designated_evaluation(self, gallery_name: str | None) -> tuple[str, EvaluationReport] | None:
        """Return the evaluation the policy designates for ``gallery_name`` (its run id and report), or None.

        Raises
        ------
        BadInput
            The designated run is not stored in this database, or measured another model
            configuration than this engine's (its rates would not be this system's).
        """
        run_id = self.threshold_policy(gallery_name).evaluation
        if run_id is None:
            return None
        store = EvaluationStore(self.galleries.db)
        listed = {r.run_id: r for r in store.list()}
        if run_id not in listed:
            raise BadInput(f"the designated evaluation {run_id!r} is not stored in this database; an admin "
                           "designates another on the Administration page")
        if listed[run_id].embedding_key != self.engine.config.embedding_key:
            raise BadInput(f"the designated evaluation {run_id!r} measured another model configuration "
                           f"({listed[run_id].embedding_key}) than this engine's ({self.engine.config.embedding_key})")
        return run_id, store.load(run_id)

    def _policy(self, action: str, gallery_name: str, threshold: float | None, reason: str | None
                ) -> ThresholdCheck:
        """Return the search's policy check, or refuse (and record, with the warning) a search the policy forbids."""
        return self._require(self._threshold_check(gallery_name, threshold, reuse=True), action, reason,
                             {"gallery_name": gallery_name})

    def _probe_group(self, gallery_name: str, label: str | None) -> str | None:
        """Return the probe's group to record (None: not stated), or refuse (recorded) a label not measured."""
        if label is None or not label.strip():
            return None
        try:
            return check_probe_group(label, self.designated_evaluation(gallery_name))
        except (ProbeGroupUnknown, BadInput) as err:  # an unknown label, or an unusable designated evaluation
            self.session.refuse("search", err.code, str(err), {"gallery_name": gallery_name,
                                                               "probe_group_requested": label})
            raise

    def _require(self, check: ThresholdCheck, action: str, reason: str | None,
                 details: Mapping[str, Any]) -> ThresholdCheck:
        """Return ``check`` with the reason, or refuse (and record, with the warning) what the policy forbids."""
        try:
            return check.require(reason)
        except (ThresholdBeyondLimit, ThresholdReasonRequired) as err:
            given = (reason or "").strip() or None
            self.session.refuse(action, err.code, str(err), {**details,
                                                             "threshold_policy": {**check.to_dict(), "reason": given}})
            raise

    def set_threshold_policy(self, loosest: float | None, hard_limit: float | None, *, reason: str,
                             gallery_name: str | None = None, evaluation: str | None = None
                             ) -> Audited[ThresholdPolicy]:
        """Set the threshold policy (admins), for ``gallery_name`` or every gallery; the record *is* the policy.

        ``loosest`` None: the gallery's default threshold; ``hard_limit`` None: a factor of the
        loosest (:mod:`audit.policy`).

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext
            Refused (and recorded): only administrators set the policy, for a purpose.
        BadInput
            A value that is not a cosine distance in (0, 2], a hard limit stricter than the
            loosest threshold, or no reason (refused and recorded).
        """
        asked = {"loosest": _recordable(loosest), "hard_limit": _recordable(hard_limit),
                 "gallery_name": gallery_name, "reason": reason, "evaluation": evaluation}
        actor = self.session.check("threshold_policy", asked)
        try:
            check_policy_values(loosest, hard_limit)
            if not reason.strip():
                raise ValueError("a threshold policy needs a reason")
            stored = {r.run_id for r in EvaluationStore(self.galleries.db).list()} if evaluation else set()
            if evaluation is not None and evaluation not in stored:
                raise ValueError(f"no stored evaluation has run id {evaluation!r} (see `facetrail evaluations list`)")
        except ValueError as err:
            self.session.refuse("threshold_policy", BadInput.code, str(err), asked)
            raise BadInput(str(err)) from err

        def call() -> ThresholdPolicy:
            return ThresholdPolicy(loosest, hard_limit, gallery_name, None, actor.name, reason.strip(), evaluation)

        done = self._run("threshold_policy", call, lambda p: policy_fields(loosest, hard_limit, gallery_name,
                                                                           reason.strip(), evaluation),
                         lambda _: {"details": asked})
        return Audited(replace(done.result, seq=done.seq), done.entry)

    # -- video ----------------------------------------------------------------------------------

    def search_video(
        self, gallery_name: str, video: str | os.PathLike[str], *, fps: float = 2.0, top_k: int = 10,
        threshold: float | None = None, max_duration: float = DEFAULT_MAX_DURATION_S,
        max_pixels_per_frame: int = DEFAULT_MAX_PIXELS_PER_FRAME, min_face: int = 80, searches_per_track: int = 3,
        progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
        threshold_reason: str | None = None,
    ) -> Audited[VideoSearchResult]:
        """Search a stored video against a gallery, track by track, and record the job (one ``search_video`` record).

        The parameters are those of :meth:`core.engine.Engine.search_video`. The outcome
        is ``ok`` when a track has a candidate, else ``no_match``; the module docstring
        says what the record holds. The result's tracks with candidates carry their best
        crop in memory (``VideoTrack.crop``); nothing of the footage is written anywhere.
        A threshold looser than the policy needs ``threshold_reason``, as for :meth:`search`.

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext, ThresholdReasonRequired, ThresholdBeyondLimit
            Refused (and recorded) before the gallery or the video is read.
        UnreadableVideo, VideoTooLong, FrameTooLarge
            The file is not a video read here, is truncated or damaged, holds no frame,
            or is beyond a limit (recorded with its code and what is known of the file).
        RecognitionError
            Whatever else the engine or the gallery store raised (recorded with its ``code``).
        """
        asked = {"gallery_name": gallery_name}
        self.session.check("search_video", asked)
        self._check_threshold("search_video", threshold, asked)
        policy = self._policy("search_video", gallery_name, threshold, threshold_reason)
        options: dict[str, Any] = {"fps": fps, "top_k": top_k, "max_duration_s": max_duration,
                                   "max_pixels_per_frame": max_pixels_per_frame, "min_face": min_face,
                                   "searches_per_track": searches_per_track}

        def call() -> VideoSearchResult:
            loaded = self.galleries.load(gallery_name)
            return self.engine.search_video(
                loaded, video, fps=fps, top_k=top_k, threshold=threshold, max_duration=max_duration,
                max_pixels_per_frame=max_pixels_per_frame, min_face=min_face,
                searches_per_track=searches_per_track, progress=progress, on_progress=on_progress,
            )

        def on_error(err: BaseException) -> dict[str, Any]:
            details: dict[str, Any] = {"gallery_name": gallery_name, "threshold_requested": threshold,
                                       "requested": {k: _recordable(v) for k, v in options.items()}}
            digest = None
            if isinstance(err, UnreadableVideo | VideoTooLong | FrameTooLarge):  # the file was read: say what it is
                facts = video_facts(video)
                details["video"] = facts.to_dict()
                digest = facts.sha256
            details["retained"] = {"video": False, "crops": 0}
            details["threshold_policy"] = policy.to_dict()
            return {"gallery": self._gallery_ref(gallery_name), "model_config": self.engine.config.to_dict(),
                    "probe_sha256": None if digest is None else [digest], "details": details}

        def describe(r: VideoSearchResult) -> dict[str, Any]:
            fields = self._video_fields(r)
            fields["details"]["threshold_policy"] = policy.to_dict()
            return fields

        return self._run("search_video", call, describe, on_error)

    def _video_fields(self, r: VideoSearchResult) -> dict[str, Any]:
        """Return the record fields of a finished video search (see the module docstring)."""
        candidates: list[dict[str, Any]] = []
        tracks: list[dict[str, Any]] = []
        for t in r.tracks:
            candidates += [candidate_fields(c) for c in t.candidates]
            tracks.append({"track_id": t.track_id, "start_ms": t.start_ms, "end_ms": t.end_ms, "faces": t.faces,
                           "best_ms": t.best_ms, "best_face": t.best_face.to_dict(), "searches": t.searches,
                           "candidates": [c.face_id for c in t.candidates]})
        return {
            "outcome": "ok" if candidates else "no_match",
            "gallery": gallery_fields(r.gallery),
            "model_config": r.config.to_dict(),
            "probe_sha256": [r.video_sha256],
            "faces_found": r.faces_detected,
            "candidates": candidates,
            "details": {
                "top_k": r.top_k,
                "threshold": r.threshold,
                "exact": r.exact,
                "expected_fpir": self._video_expected_fpir(r),
                "expected_fpir_per": "search",
                "searches": r.searches,
                "video": {"duration_ms": r.duration_ms, "frames_decoded": r.frames_decoded,
                          "frames_sampled": r.frames_sampled, "width": r.width, "height": r.height,
                          "rotation": r.rotation},
                "sampling": r.sampling.to_dict(),
                "tracks": tracks,
                "retained": self._keep_crops(r),
            },
        }

    def _video_expected_fpir(self, r: VideoSearchResult) -> dict[str, Any] | None:
        """Return the expected FPIR of one of the job's searches, as :meth:`_expected_fpir` states a search's."""
        found = ThresholdStore(self.galleries.db).expected_fpir(r.config, r.gallery.size, r.threshold,
                                                                r.gallery.fingerprint)
        return None if found is None else found.to_dict()

    # -- changes: each one and its record commit in one transaction ---------------------------

    @contextlib.contextmanager
    def _unit(self) -> Iterator[None]:
        """One transaction for a gallery change and its record, locks taken in the house's order."""
        with self.galleries.lock, self.log.transaction():
            yield

    def _change(
        self, action: str, details: Mapping[str, Any], prepare: Callable[[], P], change: Callable[[P], T],
        describe: Callable[[T], dict[str, Any]], on_error: Callable[[BaseException], dict[str, Any]], *,
        erases: bool = False,
    ) -> Audited[T]:
        self.session.check(action, details)
        return self.session.run_staged(action, prepare, change, describe, on_error, atomic=self._unit,
                                       after_commit=(lambda _: self.galleries.flush()) if erases else None)

    def create_gallery(self, gallery_name: str, config: ModelConfig) -> Audited[GalleryInfo]:
        """Create an empty gallery bound to ``config``'s embedding key, and record it.

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext
            Refused (and recorded) before anything is created.
        RecognitionError
            A bad or taken name (recorded with its ``code``).
        """
        def describe(info: GalleryInfo) -> dict[str, Any]:
            return {"gallery": gallery_fields(info.ref), "model_config": config.to_dict(),
                    "details": {"embedding_key": info.embedding_key}}

        return self._change("create_gallery", {"gallery_name": gallery_name}, lambda: None,
                            lambda _: self.galleries.create(gallery_name, config), describe,
                            lambda _: {"model_config": config.to_dict(), "details": {"gallery_name": gallery_name}})

    def drop_gallery(self, gallery_name: str) -> Audited[int]:
        """Delete a whole gallery and its faces (embeddings really gone), and record it (ids, never images).

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext
            Refused (and recorded) before anything is deleted.
        RecognitionError
            No such gallery (recorded with its ``code``).
        """
        before = self._gallery_ref(gallery_name)
        field_keys = self.log.field_keys
        subjects: list[str] = []

        def prepare() -> None:  # the subjects whose field keys go with the gallery (read before the rows go)
            if before is not None:
                subjects.extend(sorted({f["subject_id"] for f in self.galleries.faces(gallery_name)}))
            subjects.append("")  # the gallery's own key: face ids whose subject a record did not name

        def describe(n: int) -> dict[str, Any]:
            return {"gallery": before, "details": with_erasure_ids(
                {"deleted_faces": n}, field_keys.erasure_ids(gallery_name, subjects))}

        def after_commit(_: int) -> None:
            self.galleries.flush(also=field_keys.shred_ids(gallery_name, subjects))

        self.session.check("drop_gallery", {"gallery_name": gallery_name})
        return self.session.run_staged("drop_gallery", prepare, lambda _: self.galleries.drop(gallery_name),
                                       describe, lambda _: {"gallery": before,
                                                            "details": {"gallery_name": gallery_name}},
                                       atomic=self._unit, after_commit=after_commit)

    def enroll(self, gallery_name: str, items: Sequence[EnrollItem]) -> Audited[tuple[list[str], list[str]]]:
        """Enrol embedded faces into a gallery and record it, in one transaction.

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext
            Refused (and recorded) before anything is enrolled.
        RecognitionError
            Whatever the gallery store raised (recorded with its ``code``; nothing enrolled).
        """
        digests = sorted({i.embedding.image_sha256 for i in items})
        subjects = sorted({i.subject_id for i in items})
        owners = _owners(self.galleries, gallery_name, [(i.subject_id, i.embedding.image_sha256) for i in items])

        def describe(r: tuple[list[str], list[str]]) -> dict[str, Any]:
            new, existing = r
            return {
                "gallery": self._gallery_ref(gallery_name),
                "probe_sha256": digests or None,
                "details": {"subject_ids": subjects, "new_face_ids": list(new), "existing_face_ids": list(existing),
                            "face_detectors": face_detectors(gallery_name, items, self.galleries.face_id)},
                SUBJECTS_HINT: owners,
            }

        def on_error(_: BaseException) -> dict[str, Any]:
            return {"gallery": self._gallery_ref(gallery_name), "probe_sha256": digests or None,
                    "details": {"gallery_name": gallery_name, "subject_ids": subjects}, SUBJECTS_HINT: owners}

        return self._change("enroll", {"gallery_name": gallery_name}, lambda: None,
                            lambda _: self.galleries.enroll(gallery_name, items), describe, on_error)

    def enroll_images(
        self, gallery_name: str, images: Sequence[SourceImage], *, workers: int | None = None,
        progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
    ) -> Audited[EnrollReport]:
        """Embed ``images``, then enrol the faces found and record it (one ``enroll`` record, failures in it).

        The embedding runs before the transaction; the enrolment and its record commit together.

        Raises
        ------
        NotAuthenticated, Forbidden, MissingContext
            Refused (and recorded) before any image is read.
        EnrollmentFailed
            No image yielded a face (recorded as ``enroll_failed`` with the summary).
        RecognitionError
            The gallery is unknown, or the store refused the faces (recorded).
        """
        embedded: list[EmbeddedImages] = []
        found: dict[str, str] = {}  # face id -> the detector that found it, filled once the images are embedded

        def prepare() -> EmbeddedImages:
            embedded.append(embed_images(self.engine, self.galleries, gallery_name, images, workers=workers,
                                         progress=progress, on_progress=on_progress))
            found.update(face_detectors(gallery_name, embedded[0].items, self.galleries.face_id))
            return embedded[0]

        def describe(r: EnrollReport) -> dict[str, Any]:
            return {
                "gallery": self._gallery_ref(gallery_name),
                "details": {"images": len(images), "new_face_ids": list(r.enrolled),
                            "existing_face_ids": list(r.already_enrolled),
                            "subject_ids": sorted({i.subject_id for i in images}),
                            "failures": r.failures.to_dict(), "face_detectors": found,
                            "face_policy": self.engine.face_policy},
                SUBJECTS_HINT: _owners(self.galleries, gallery_name, [(i.subject_id, i.embedding.image_sha256)
                                                      for e in embedded for i in e.items]),
            }

        def on_error(err: BaseException) -> dict[str, Any]:
            details: dict[str, Any] = {"gallery_name": gallery_name, "images": len(images),
                                       "face_policy": self.engine.face_policy}
            if isinstance(err, EnrollmentFailed):
                details["failures"] = err.summary
            named = {i.subject_id: [gallery_name, i.subject_id] for i in images}  # failed paths name them
            return {"gallery": self._gallery_ref(gallery_name), "details": details, SUBJECTS_HINT: named}

        return self._change("enroll", {"gallery_name": gallery_name}, prepare,
                            lambda embedded: enroll_embedded(self.galleries, gallery_name, embedded),
                            describe, on_error)

    def _delete(self, gallery_name: str, what: str, value: str, salt: bytes | None = None) -> Audited[list[str]]:
        method = self.galleries.delete_subject if what == "subject_id" else self.galleries.delete_face
        field_keys = self.log.field_keys
        subjects = [value] if what == "subject_id" else []
        committed = {} if salt is None else {"subject_commitment": subject_commitment(salt, value)}

        def describe(r: list[str]) -> dict[str, Any]:
            # the record names the field keys it destroys (random ids), then they are destroyed after the commit
            details = with_erasure_ids({what: value, "deleted_face_ids": list(r), **committed},
                                       field_keys.erasure_ids(gallery_name, subjects) if r else [])
            hint = {f: [gallery_name, owner[value]] for f in [value, *r] if value in owner}
            return {"outcome": "ok", "gallery": self._gallery_ref(gallery_name), "details": details,
                    **({SUBJECTS_HINT: hint} if hint else {})}

        def on_error(_: BaseException) -> dict[str, Any]:
            return {"gallery": self._gallery_ref(gallery_name), "details": {"gallery_name": gallery_name, what: value}}

        def after_commit(r: list[str]) -> None:  # the gallery's key and the field key: one rewrite of the store
            self.galleries.flush(also=field_keys.shred_ids(gallery_name, subjects) if r else [])

        self.session.check("delete", {"gallery_name": gallery_name, what: value})
        # a face's subject, found before its row goes: its ids in the record are sealed under the subject's key
        owner = {} if what == "subject_id" else self.galleries.face_subjects(gallery_name, [value])
        return self.session.run_staged("delete", lambda: None, lambda _: method(gallery_name, value), describe,
                                       on_error, atomic=self._unit, after_commit=after_commit)

    def delete_subject(self, gallery_name: str, subject_id: str, *,
                       receipt_salt: bytes | None = None) -> Audited[list[str]]:
        """Erase every face of a subject and record it, in one transaction (the record keeps ids, never images).

        ``receipt_salt`` (32 random bytes, :func:`audit.retention.new_receipt_salt`): the record
        also holds ``details.subject_commitment`` = ``sha256(salt || subject_id)``, which the
        receipt written now (:func:`audit.retention.write_receipt` ``subject=``) lets the
        requester check; the salt itself is never stored.
        """
        if receipt_salt is not None and len(receipt_salt) != 32:
            raise ValueError(f"a receipt salt is 32 bytes, got {len(receipt_salt)}")
        return self._delete(gallery_name, "subject_id", subject_id, receipt_salt)

    def delete_face(self, gallery_name: str, face_id: str) -> Audited[list[str]]:
        """Erase one face and record it, in one transaction."""
        return self._delete(gallery_name, "face_id", face_id)


def _owners(galleries: GalleryStore, gallery: str, pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Return the :data:`~audit.trail.sealed.SUBJECTS_HINT` of enrolled (subject, image SHA-256) pairs: images and faces."""
    out: dict[str, list[str]] = {}
    for subject, digest in pairs:
        out[digest] = [gallery, subject]
        out[galleries.face_id(gallery, subject, digest)] = [gallery, subject]
    return out


def audited_export(
    session: AuditSession, log: AuditLog, out: str | os.PathLike[str], fmt: str,
    filters: AuditFilter | None = None, *, pseudonymize: bool = False, pseudonym_key_path: str | None = None,
) -> Audited[ExportSummary]:
    """Export the records matching ``filters`` (``fmt``: csv, jsonl, parquet or excerpt), recorded as ``export``.

    Raises
    ------
    MissingContext
        No purpose (refused and recorded before anything is written).
    BadInput
        An excerpt with ``pseudonymize`` (an excerpt carries the original records), or ``since``/``until``
        that are not dates or are in the wrong order (:meth:`AuditFilter.problem`; refused and recorded).
    AuditError
        The export failed (recorded with its code).
    """
    filters = filters or AuditFilter()
    excerpt = fmt == "excerpt"
    asked = {"format": fmt, "out": Path(out).name, "filters": filters.to_dict(), "pseudonymized": pseudonymize}
    session.check("export", asked)
    problem = filters.problem()
    if problem is not None:  # "last week" would otherwise be a recorded export of 0 records
        session.refuse("export", BadInput.code, problem, asked)
        raise BadInput(problem)
    if excerpt and pseudonymize:
        reason = "a verifiable excerpt carries the original records; drop pseudonymisation"
        session.refuse("export", BadInput.code, reason, asked)
        raise BadInput(reason)

    def call() -> ExportSummary:
        if excerpt:
            return write_excerpt(log, out, filters)
        key = None if not pseudonymize else (
            load_pseudonym_key(log, pseudonym_key_path) if pseudonym_key_path else export_pseudonym_key(log))
        return export_records(log, out, fmt, filters, key)  # type: ignore[arg-type]

    return session.run("export", call, lambda s: {"details": {**s.to_dict(), "path": Path(s.path).name}},
                       lambda _: {"details": asked})
