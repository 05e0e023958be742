"""The one way to evaluate: :func:`run_evaluation` (and :func:`run_calibration`, which shares its steps).

``facetrail evaluate``/``calibrate``, the demo scene and the notebooks all call
these two functions, so a fix lands everywhere at once. Each run:

1. checks the session's context before any work (``session.check``: a missing
   operator or purpose is refused, and the refusal recorded);
2. loads the dataset (a manifest or an LFW folder, optionally its first N subjects,
   with bands) and any gallery; input that cannot be used (a missing column, a
   grouping column the data lacks, a probe pattern that matches nothing) is
   refused and the refusal recorded (``session.refuse``);
3. embeds every image once through the engine's embedding cache, passing on the
   hash the loader computed, choosing each image's face by the dataset's subject-face
   rule (:attr:`~audit.evaluation.datasets.Dataset.subject_face`: an LFW folder's is the
   central face, LFW's protocol; a manifest's the largest; the request may name another,
   and the run and its record say which and who declared it)
   (:func:`~audit.evaluation.embedding.embed_dataset`);
4. evaluates: verification rates per group, the LFW protocol (10-fold accuracy and
   per-group rates on its pairs) for an LFW folder, 1:N identification against a
   gallery dataset, calibration (``fmr=...`` thresholds; for ``calibrate``, the
   threshold and its per-group rates);
5. stores the run (every table, the LFW results with it) in the one
   :class:`~audit.evaluation.store.EvaluationStore`, and saves a calibration meant
   as the default threshold through :class:`core.thresholds.ThresholdStore` with
   its provenance;
6. leaves exactly one ``evaluate`` record (``session.run``): started when the work
   started, with a summary naming the run, the dataset and its fingerprint, counts
   and overall rates as decimal strings; a failure is recorded with its code.

``reuse_stored`` (the demo) returns the stored run of the same data under the same
embedding key and subject-face rule instead of evaluating again; nothing is then recorded, as nothing
was done.

A system facetrail does not run (:class:`SystemScores`: a vendor's pair score file
and/or candidate lists) goes through the same steps with its own scores in place of
the engine: the manifest is read for names, subjects and labels only
(:func:`~audit.evaluation.datasets.load_label_manifest`), the files are read and
checked in step 2 (a bad file is refused, the refusal recorded, nothing stored:
:mod:`~audit.evaluation.scorefiles`, :mod:`~audit.evaluation.candidates`), step 4 is
:func:`~audit.evaluation.listed.evaluate_listed` and
:func:`~audit.evaluation.candidates.candidate_rates`, and the stored run and its one
record name the system, its version and the files' SHA-256.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from audit.errors import AuditError
from audit.evaluation.calibration import Calibration, calibrate
from audit.evaluation.candidates import CandidateLists, candidate_rates, read_candidates
from audit.evaluation.config import (
    DEFAULT_THRESHOLDS,
    Band,
    EvaluationConfig,
    ScoreConvention,
    ThresholdSpec,
    check_target_fmr,
)
from audit.evaluation.cutoffs import Precision
from audit.evaluation.datasets import (
    Dataset,
    check_subject_face,
    load_label_manifest,
    load_lfw,
    load_manifest,
    with_bands,
)
from audit.evaluation.embedding import EmbeddedDataset, embed_dataset, evaluate_embedded
from audit.evaluation.errors import EvaluationError
from audit.evaluation.fpir import FpirCalibration, calibrate_fpir
from audit.evaluation.groups import MultiLabel
from audit.evaluation.identification import identification_rates
from audit.evaluation.lfw import lfw_results
from audit.evaluation.listed import evaluate_listed, listed_pairs
from audit.evaluation.report import EvaluationReport, json_safe
from audit.evaluation.scorefiles import PairScoreFile, ScoreFormat, read_pair_scores
from audit.evaluation.store import EvaluationStore
from audit.evaluation.verification import run_metadata
from audit.session import AuditSession
from core.cache import EmbeddingCache, EvaluationCache
from core.config import FacePolicy
from core.engine import Engine
from core.errors import BadInput, ConfigMismatch, ManifestError, RecognitionError
from core.gallery import GalleryStore
from core.index import ExactIndex
from core.storage import Database
from core.thresholds import ThresholdStore

__all__ = [
    "CalibrationRequest",
    "CalibrationRun",
    "DatasetSource",
    "EvaluationRequest",
    "EvaluationRun",
    "EvaluationStores",
    "IdentificationRequest",
    "SearchCalibrationRequest",
    "SearchCalibrationRun",
    "SystemScores",
    "load_dataset",
    "run_calibration",
    "run_evaluation",
    "run_search_calibration",
]

T = TypeVar("T")

#: The audit action of evaluations and calibrations.
ACTION = "evaluate"


@dataclass(frozen=True)
class DatasetSource:
    """Where an evaluation's images and labels come from: a manifest CSV or an LFW folder."""

    manifest: Path | None = None
    """A manifest CSV (``image``, subject and label columns)."""
    lfw: Path | None = None
    """An LFW-layout folder (``images/<Name>/<Name>_NNNN.jpg``, ``pairs.txt``, optional ``labels.csv``)."""
    subject_column: str | None = None
    """The manifest's subject column (an LFW folder's subject is the person's folder)."""
    label_columns: tuple[str, ...] | None = None
    """Label columns to keep (default: all)."""
    bands: tuple[Band, ...] = ()
    """Numeric label columns to band."""
    subject_limit: int | None = None
    """Only the first N subjects (sorted ids)."""
    pairs_only: bool = True
    """For an LFW folder with ``pairs.txt``: only the images its pairs use."""
    subject_face: FacePolicy | None = None
    """Which face of an image with several is the subject, in place of the dataset's own rule
    (``None``: the dataset's: ``"central"`` for an LFW folder, ``"largest"`` for a manifest)."""

    def __post_init__(self) -> None:
        if self.subject_face is not None:
            check_subject_face(self.subject_face)
        if (self.manifest is None) == (self.lfw is None):
            raise BadInput("an evaluation dataset is a manifest or an LFW folder (exactly one of them)")
        if self.manifest is not None and not self.subject_column:
            raise ManifestError("a manifest needs its subject column")
        if self.subject_limit is not None and self.subject_limit < 1:
            raise BadInput(f"the number of subjects to keep must be at least 1, got {self.subject_limit}")

    @property
    def path(self) -> Path:
        """The manifest or the folder."""
        return self.manifest if self.manifest is not None else self.lfw  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """Return what an audit record says about the source."""
        out: dict[str, Any] = {"dataset": str(self.path)}
        if self.subject_limit is not None:
            out["subject_limit"] = self.subject_limit
        if self.subject_face is not None:
            out["subject_face"] = self.subject_face
        return out


def load_dataset(source: DatasetSource) -> Dataset:
    """Load and validate a dataset as the runner does (manifest or LFW folder, subset, bands).

    Raises
    ------
    ManifestError
        The manifest or folder cannot be used, or a band's column is not a label column.
    BadInput
        A subject id that is not usable.
    """
    if source.lfw is not None:
        dataset = load_lfw(source.lfw, label_columns=source.label_columns, pairs_only=source.pairs_only,
                           subject_limit=source.subject_limit)
    else:
        assert source.manifest is not None and source.subject_column is not None
        dataset = load_manifest(source.manifest, source.subject_column, source.label_columns,
                                subject_limit=source.subject_limit)
    if source.subject_face is not None and source.subject_face != dataset.subject_face:
        dataset = dataset.with_subject_face(
            source.subject_face, f"asked for by the evaluation, in place of the dataset's {dataset.subject_face!r} "
                                 f"({dataset.subject_face_reason})")
    return with_bands(dataset, source.bands)


@dataclass(frozen=True)
class IdentificationRequest:
    """1:N: the evaluated dataset's images (or those matching a pattern) searched against a gallery dataset."""

    gallery: DatasetSource
    """The gallery's images (every image, not only protocol pairs)."""
    probe_glob: str | None = None
    """Only probe images whose ``image`` path matches (``"*/c118.jpg"``)."""
    thresholds: tuple[float, ...] = ()
    """Distances to measure at besides the evaluation's named thresholds (the Search page's grid)."""


@dataclass(frozen=True)
class SystemScores:
    """A system facetrail does not run, evaluated from the scores it produced (a vendor's, say)."""

    name: str
    """The system (``"Rekognition"``, ``"vendor X"``): stored with the run and in its record."""
    direction: Literal["similarity", "distance"]
    """Higher scores mean more alike (``similarity``) or less alike (``distance``)."""
    version: str | None = None
    """The system's version, as the auditor knows it."""
    pairs: Path | None = None
    """A pair score file (CSV ``image_a,image_b,score`` or bob.measure's 4 or 5 columns)."""
    pair_format: ScoreFormat | None = None
    """Its format (default: detected from the first line)."""
    candidates: Path | None = None
    """Candidate lists (``probe,candidate_subject,rank,score``): 1:N rates."""
    gallery: DatasetSource | None = None
    """The candidates' gallery, a manifest (its subjects and size; no image is read)."""
    probe_glob: str | None = None
    """Only manifest images whose ``image`` matches are searches (default: every image)."""
    tolerance: float = 0.0
    """How far a score may be from the system's exact one (0: the file's digits are the scores)."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise BadInput("name the evaluated system (--system NAME)")
        if self.direction not in ("similarity", "distance"):
            raise BadInput(f"score direction must be 'similarity' or 'distance', not {self.direction!r}")
        if self.pairs is None and self.candidates is None:
            raise BadInput("a system is evaluated from a pair score file, candidate lists, or both")
        if self.candidates is not None and (self.gallery is None or self.gallery.manifest is None):
            raise BadInput("candidate lists need their gallery's manifest (--gallery-manifest, --gallery-subject-col)")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise BadInput(f"score tolerance must be a finite number >= 0, got {self.tolerance!r}")

    @property
    def convention(self) -> ScoreConvention:
        """What the scores are."""
        return ScoreConvention(self.direction)

    def describe(self) -> dict[str, Any]:
        """Return what an audit record says about the system and its files (strings, never floats)."""
        out: dict[str, Any] = {"system": self.name, "score_direction": self.direction}
        if self.version:
            out["system_version"] = self.version
        if self.pairs is not None:
            out["scores"] = str(self.pairs)
        if self.candidates is not None:
            out["candidates"] = str(self.candidates)
        return out


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate (:func:`run_evaluation`)."""

    dataset: DatasetSource
    """The labelled images."""
    by: tuple[tuple[str, ...], ...] | None = None
    """Groupings; ``None``: none for a manifest, every label column for an LFW folder."""
    thresholds: tuple[ThresholdSpec, ...] = DEFAULT_THRESHOLDS
    """Thresholds besides the model's own."""
    include_default: bool = True
    """Also report the model configuration's threshold (``"default"``)."""
    multi_label: MultiLabel = "combined"
    """Policy for multi-valued labels."""
    bootstrap: int = 1000
    """Subject bootstrap resamples (0: no intervals)."""
    seed: int = 0
    """Bootstrap seed."""
    identification: IdentificationRequest | None = None
    """Also measure 1:N against a gallery."""
    store: bool = True
    """Store the run (in :attr:`EvaluationStores.runs`)."""
    reuse_stored: bool = False
    """Return the stored run of the same data and embedding key, if any, instead of evaluating."""
    workers: int | None = None
    """Processes for embedding (default: all cores)."""
    progress: bool = False
    """Show a progress bar while embedding."""
    system: SystemScores | None = None
    """Evaluate this system from its own scores instead of facetrail's engine."""

    def __post_init__(self) -> None:
        if self.bootstrap < 0:
            raise BadInput(f"bootstrap resamples must be >= 0, got {self.bootstrap}")
        if self.identification is not None and self.dataset.lfw is not None:
            raise BadInput("1:N searches take the probes of a manifest, not an LFW folder")
        if self.system is None:
            scores = [t.name for t in self.thresholds if t.score is not None]
            if scores:
                raise BadInput(f"threshold(s) {scores} are a system's scores: they need its score files (--scores)")
            return
        if self.dataset.manifest is None:
            raise BadInput("a system's scores are evaluated against a manifest (--manifest), not an LFW folder")
        if self.identification is not None:
            raise BadInput("a system's 1:N rates come from its candidate lists (--candidates), not facetrail's searches")
        if self.include_default:
            raise BadInput("facetrail does not know a system's default threshold: name it as score=<value>")
        distances = [t.name for t in self.thresholds if t.distance is not None]
        if distances:
            raise BadInput(f"threshold(s) {distances} are cosine distances; a system's thresholds are score=<value> "
                           "(or fmr=<rate>, calibrated on its pair scores)")
        if self.system.pairs is None and any(t.score is None for t in self.thresholds):
            raise BadInput("fmr=... thresholds are calibrated on pair scores: give --scores, or name score=<value>")

    def config(self, dataset: Dataset) -> EvaluationConfig:
        """Return the evaluation config for the loaded dataset."""
        by = self.by if self.by is not None else (
            tuple((c,) for c in dataset.label_columns) if self.dataset.lfw is not None else ()
        )
        return EvaluationConfig(by=by, thresholds=self.thresholds, include_default=self.include_default,
                                multi_label=self.multi_label, bootstrap=self.bootstrap, seed=self.seed)


@dataclass(frozen=True)
class CalibrationRequest:
    """A threshold to calibrate to an overall FMR (:func:`run_calibration`)."""

    dataset: DatasetSource
    """The labelled images."""
    target_fmr: float
    """The overall false-match rate to reach, in (0, 1)."""
    by: tuple[tuple[str, ...], ...] = ()
    """Groupings for the per-group FMR/FNMR at the threshold."""
    multi_label: MultiLabel = "combined"
    """Policy for multi-valued labels."""
    save_default: bool = True
    """Store it as the model configuration's default threshold, with its provenance."""
    workers: int | None = None
    """Processes for embedding."""
    progress: bool = False
    """Show a progress bar while embedding."""

    def __post_init__(self) -> None:
        check_target_fmr(self.target_fmr)


@dataclass(frozen=True)
class EvaluationStores:
    """Where a run reads and writes: evaluation runs, the embedding cache, calibrated thresholds."""

    runs: EvaluationStore
    """Evaluation runs."""
    cache: EmbeddingCache | None
    """The embedding cache (``None``: embed everything)."""
    thresholds: ThresholdStore
    """Default thresholds with their provenance."""
    galleries: GalleryStore | None = None
    """Enrolled galleries (1:N calibrations search one)."""

    @classmethod
    def on(cls, db: Database) -> EvaluationStores:
        """Return the stores of one database."""
        return cls(EvaluationStore(db), EvaluationCache(db), ThresholdStore(db), GalleryStore(db))


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """What :func:`run_evaluation` did."""

    report: EvaluationReport
    """The results (with the LFW and 1:N results when measured)."""
    dataset: Dataset
    """The evaluated dataset."""
    failures_to_acquire: int
    """Images without a usable face (0 for a reused run: see the report's FTA rows)."""
    failures_by_code: Mapping[str, int]
    """Those failures counted by error code (``no_face``, ``unreadable_image`` ...)."""
    computed: int
    """Images embedded by this run (the rest came from the cache)."""
    stored: bool
    """Whether the run is in the store."""
    reused: bool = False
    """A stored run returned instead of a new one (``reuse_stored``)."""
    audit_seq: int | None = None
    """The run's ``evaluate`` record (``None`` for a reused run)."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.report.run["run_id"])


@dataclass(frozen=True, eq=False)
class CalibrationRun:
    """What :func:`run_calibration` did."""

    calibration: Calibration
    """The threshold, what it achieves, per group."""
    dataset: Dataset
    """The calibration dataset."""
    images: int
    """Images with a face."""
    failures_to_acquire: int
    """Images without a usable face."""
    saved: bool
    """Stored as the configuration's default threshold."""
    audit_seq: int | None = None
    """The run's record."""


def _refusing(session: AuditSession, attempted: str, attempt: Mapping[str, Any], call: Callable[[], T]) -> T:
    """Run ``call`` (input checks, no engine); refuse the action, recorded, if the input is not usable."""
    try:
        return call()
    except (RecognitionError, AuditError) as err:
        session.refuse(attempted, err.code, str(err), attempt)
        raise


def _check_columns(dataset: Dataset, by: tuple[tuple[str, ...], ...]) -> None:
    missing = sorted({c for spec in by for c in spec} - set(dataset.label_columns))
    if missing:
        raise ManifestError(
            f"grouping column(s) {missing} are not label columns of the dataset ({list(dataset.label_columns)})"
        )


def _embed(engine: Engine, dataset: Dataset, stores: EvaluationStores, workers: int | None,
           progress: bool) -> EmbeddedDataset:
    embedded = embed_dataset(engine, dataset, cache=stores.cache, workers=workers, progress=progress)
    if embedded.embeddings.shape[0] < 2:
        raise EvaluationError(f"only {embedded.embeddings.shape[0]} image(s) of {len(dataset)} yielded a face")
    return embedded


def _overall(report: EvaluationReport) -> dict[str, dict[str, str | None]]:
    """Overall threshold, FMR and FNMR per named threshold, as decimal strings (records hold no floats)."""
    out: dict[str, dict[str, str | None]] = {}
    for r in report.rates:
        if r["pairing"] == "all":
            out[r["threshold_name"]] = {
                "threshold": None if r["threshold"] is None else f"{r['threshold']:.6f}",
                "fmr": None if r["fmr"] is None else f"{r['fmr']:.6e}",
                "fnmr": None if r["fnmr"] is None else f"{r['fnmr']:.6f}",
            }
    return out


def _subject_face(dataset: Dataset) -> dict[str, str]:
    """Return the dataset's subject-face rule and who declared it (every configuration is embedded under it)."""
    return {"subject_face": dataset.subject_face, "subject_face_reason": dataset.subject_face_reason}


def _summary(run: EvaluationRun) -> dict[str, Any]:
    """Return the ``evaluate`` record's details: ids, counts and overall rates (strings, never floats)."""
    report, dataset = run.report, run.dataset
    details: dict[str, Any] = {
        "command": "evaluate",
        "run_id": run.run_id,
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        **_subject_face(dataset),
        "images": int(report.run["images"]),
        "subjects": int(report.run["subjects"]),
        "failures_to_acquire": run.failures_to_acquire,
        "failures_by_code": dict(run.failures_by_code),
        "genuine_pairs": int(report.run["genuine_pairs"]),
        "impostor_pairs": int(report.run["impostor_pairs"]),
        "code_version": report.run["code_version"],
        "stored": run.stored,
        "overall": _overall(report),
    }
    if dataset.selection:
        details["dataset_selection"] = dataset.selection
    accuracy = report.lfw_accuracy()
    if accuracy is not None and accuracy.get("accuracy") is not None:
        details["lfw_accuracy"] = f"{accuracy['accuracy']:.6f}"
        details["lfw_pairs"] = int(accuracy["pairs"])
    about = report.run.get("identification")
    if about:
        details["identification"] = {k: v for k, v in dict(about).items() if not isinstance(v, float)}
    return details


def _identify(request: IdentificationRequest, engine: Engine, stores: EvaluationStores, probes: EmbeddedDataset,
              gallery: Dataset, report: EvaluationReport, config: EvaluationConfig, workers: int | None
              ) -> EvaluationReport:
    """1:N rates of the (selected) probes against the gallery's acquired images."""
    embedded = embed_dataset(engine, gallery, cache=stores.cache, workers=workers)
    table = probes.table
    keep = np.ones(len(table), dtype=bool)
    if request.probe_glob:
        keep = np.array([fnmatch.fnmatch(str(p), request.probe_glob) for p in table["image"]], dtype=bool)
        if not keep.any():
            raise EvaluationError(f"probe pattern {request.probe_glob!r} matches no acquired probe image")
    thresholds = {**report.thresholds(), **{f"{t:.3f}": float(t) for t in request.thresholds}}
    # subject ids of two different datasets live in different namespaces (nobody is mated)
    g_prefix = "probe:" if gallery.fingerprint == probes.dataset.fingerprint else "gallery:"
    rows = identification_rates(
        probes.embeddings[keep],
        [f"probe:{s}" for s in table.loc[keep, probes.dataset.subject_column]],
        embedded.embeddings,
        [f"{g_prefix}{s}" for s in embedded.subjects],
        thresholds,
        probe_labels=table.loc[keep, list(probes.dataset.label_columns)].reset_index(drop=True),
        by=config.by,
        multi_label=config.multi_label,
    )
    about = {"gallery": gallery.name, "gallery_fingerprint": gallery.fingerprint,
             "gallery_selection": gallery.selection, "gallery_faces": int(embedded.embeddings.shape[0]),
             "probe_glob": request.probe_glob, "probes": int(keep.sum())}
    return report.with_identification(rows, about)


def _evaluate(request: EvaluationRequest, engine: Engine, stores: EvaluationStores, dataset: Dataset,
              gallery: Dataset | None) -> EvaluationRun:
    embedded = _embed(engine, dataset, stores, request.workers, request.progress)
    config = request.config(dataset)
    failures = int((~embedded.ok).sum())
    report = evaluate_embedded(embedded, config).with_run(
        {"dataset": dataset.name, "dataset_selection": dataset.selection, "failures_to_acquire": failures,
         **_subject_face(dataset)})
    if dataset.pairs:
        ten_fold, pair_rows = lfw_results(dataset.pairs, embedded.table["image"].tolist(), embedded.embeddings,
                                          dataset.table.set_index("image"), dataset.label_columns)
        report = report.with_lfw(ten_fold, pair_rows)
    if request.identification is not None and gallery is not None:
        report = _identify(request.identification, engine, stores, embedded, gallery, report, config,
                           request.workers)
    if request.store:
        stores.runs.save(report, dataset_name=dataset.name)
    by_code = dict(Counter(embedded.failure_codes))
    return EvaluationRun(report, dataset, failures, by_code, embedded.computed, stored=request.store)


def _prepare(request: EvaluationRequest) -> tuple[Dataset, Dataset | None]:
    """Load the dataset and gallery and check the request against them (no engine yet)."""
    dataset = load_dataset(request.dataset)
    _check_columns(dataset, request.config(dataset).by)
    gallery = None
    ident = request.identification
    if ident is not None:
        gallery = load_dataset(ident.gallery)
        if ident.probe_glob and not any(fnmatch.fnmatch(str(p), ident.probe_glob) for p in dataset.table["image"]):
            raise BadInput(f"probe pattern {ident.probe_glob!r} matches no image of {dataset.name}")
    return dataset, gallery


@dataclass(frozen=True, eq=False)
class _SystemInputs:
    """A system run's checked inputs: the manifest, and the files read against it."""

    dataset: Dataset
    pairs: PairScoreFile | None
    gallery: Dataset | None
    candidates: CandidateLists | None


def _prepare_system(request: EvaluationRequest) -> _SystemInputs:
    """Read the manifest (labels only) and the system's files; every problem is refused with its line."""
    system, source = request.system, request.dataset
    manifest, subject_column = source.manifest, source.subject_column
    assert system is not None and manifest is not None and subject_column
    dataset = with_bands(load_label_manifest(manifest, subject_column, source.label_columns,
                                             subject_limit=source.subject_limit), source.bands)
    _check_columns(dataset, request.config(dataset).by)
    images = dataset.table["image"].astype(str).tolist()
    subjects = dataset.subjects
    pairs = read_pair_scores(system.pairs, images, subjects, format=system.pair_format) if system.pairs else None
    gallery = lists = None
    if system.candidates is not None:
        assert system.gallery is not None and system.gallery.manifest is not None
        gallery = load_label_manifest(system.gallery.manifest, system.gallery.subject_column or "", ())
        rows = [i for i, name in enumerate(images) if system.probe_glob is None
                or fnmatch.fnmatch(name, system.probe_glob)]
        if not rows:
            raise BadInput(f"probe pattern {system.probe_glob!r} matches no image of {dataset.name}")
        lists = read_candidates(system.candidates, images, subjects, rows, set(gallery.subjects), system.convention)
    return _SystemInputs(dataset, pairs, gallery, lists)


def _system_about(system: SystemScores, inputs: _SystemInputs) -> dict[str, Any]:
    """Return the run metadata's ``system``: who, what files (name, format, SHA-256), how precise."""
    about: dict[str, Any] = {"name": system.name, "version": system.version, "score_direction": system.direction,
                             "tolerance": system.tolerance}
    if inputs.pairs is not None:
        about |= {"scores": inputs.pairs.path.name, "scores_sha256": inputs.pairs.sha256,
                  "scores_format": inputs.pairs.format, "scores_lines": inputs.pairs.lines}
    if inputs.candidates is not None:
        about |= {"candidates": inputs.candidates.path.name, "candidates_sha256": inputs.candidates.sha256,
                  "candidate_lines": inputs.candidates.lines}
    return about


def _evaluate_system(request: EvaluationRequest, stores: EvaluationStores, inputs: _SystemInputs) -> EvaluationRun:
    system = request.system
    assert system is not None
    dataset = inputs.dataset
    cfg = request.config(dataset)
    convention = system.convention
    columns = list(dict.fromkeys(c for spec in cfg.by for c in spec))
    about = {"dataset": dataset.name, "dataset_selection": dataset.selection, "failures_to_acquire": 0,
             "system": _system_about(system, inputs)}
    if inputs.pairs is not None:
        pairs = listed_pairs(inputs.pairs, dataset, columns, convention, cfg.hist_bins)
        report = evaluate_listed(pairs, cfg, precision=Precision(system.tolerance),
                                 dataset_fingerprint=dataset.fingerprint, run=about)
        thresholds = report.thresholds()
    else:
        lists = inputs.candidates
        assert lists is not None
        counts = {"images": int(lists.probes.size), "subjects": len(set(dataset.subjects)), "genuine_pairs": 0,
                  "impostor_pairs": 0}
        meta = run_metadata(cfg, counts, convention, dataset_fingerprint=dataset.fingerprint)
        report = EvaluationReport(run=json_safe({**meta, **about}), rates=())
        thresholds = {t.name: float(t.score) for t in cfg.thresholds if t.score is not None}
    if inputs.candidates is not None and inputs.gallery is not None:
        lists = inputs.candidates
        table = dataset.table.reset_index(drop=True)
        rows = candidate_rates(
            lists, [str(s) for s in table.loc[lists.probes, dataset.subject_column]], set(inputs.gallery.subjects),
            len(inputs.gallery), thresholds, convention,
            probe_labels=table.loc[lists.probes, list(dataset.label_columns)].reset_index(drop=True),
            by=cfg.by, multi_label=cfg.multi_label,
        )
        report = report.with_identification(rows, {
            "gallery": inputs.gallery.name, "gallery_fingerprint": inputs.gallery.fingerprint,
            "gallery_faces": len(inputs.gallery), "probe_glob": system.probe_glob, "probes": int(lists.probes.size),
            "least_alike_candidate_score": lists.least_alike,
        })
    if request.store:
        stores.runs.save(report, dataset_name=dataset.name)
    return EvaluationRun(report, dataset, 0, {}, 0, stored=request.store)


def _run_system(request: EvaluationRequest, stores: EvaluationStores, session: AuditSession) -> EvaluationRun:
    """Evaluate a system's own scores through the runner's steps (see the module docstring)."""
    assert request.system is not None
    attempt = {"command": "evaluate", **request.dataset.describe(), **request.system.describe()}
    session.check(ACTION, attempt)
    inputs = _refusing(session, ACTION, attempt, lambda: _prepare_system(request))
    audited = session.run(
        ACTION,
        lambda: _evaluate_system(request, stores, inputs),
        lambda run: {"details": {**_summary(run), **request.system.describe()}},  # type: ignore[union-attr]
        lambda err: {"details": {**attempt, "dataset_fingerprint": inputs.dataset.fingerprint}},
    )
    return replace(audited.result, audit_seq=audited.seq)


def run_evaluation(
    request: EvaluationRequest, engine: Engine | None, stores: EvaluationStores, session: AuditSession
) -> EvaluationRun:
    """Evaluate a labelled dataset under ``engine``, store the run and record it (see the module docstring).

    Parameters
    ----------
    request
        What to evaluate.
    engine
        The engine (its configuration's threshold is the ``"default"``); ``None`` for a
        system's own scores (``request.system``), which need no engine.
    stores
        Runs, embedding cache, thresholds.
    session
        Who runs it and why; every refusal and the run itself are recorded through it.

    Returns
    -------
    EvaluationRun
        With the report and the record's sequence number.

    Raises
    ------
    MissingContext
        No operator or purpose (refused and recorded before any work).
    ManifestError, BadInput
        The dataset, gallery or request cannot be used (refused and recorded).
    EvaluationError
        The data cannot be evaluated as asked (fewer than two faces, say); recorded.
    ScoreFileError
        A system's score or candidate file with a problem (its line named; refused and recorded).
    """
    if request.system is not None:
        return _run_system(request, stores, session)
    if engine is None:
        raise ValueError("evaluating facetrail's engine needs an engine")
    attempt = {"command": "evaluate", **request.dataset.describe()}
    session.check(ACTION, attempt)
    dataset, gallery = _refusing(session, ACTION, attempt, lambda: _prepare(request))
    if request.reuse_stored:
        found = stores.runs.latest(embedding_key=engine.config.embedding_key, dataset_fingerprint=dataset.fingerprint)
        stored = None if found is None else stores.runs.load(found)
        # a run stored before datasets declared their subject-face rule was embedded under the largest face
        if stored is not None and stored.run.get("subject_face", "largest") == dataset.subject_face:
            return EvaluationRun(stored, dataset, 0, {}, 0, stored=True, reused=True)
    model_config = engine.config.to_dict()
    audited = session.run(
        ACTION,
        lambda: _evaluate(request, engine, stores, dataset, gallery),
        lambda run: {"details": _summary(run), "model_config": model_config},
        lambda err: {"details": {**attempt, "dataset_fingerprint": dataset.fingerprint}, "model_config": model_config},
    )
    return replace(audited.result, audit_seq=audited.seq)


def _calibrate(request: CalibrationRequest, engine: Engine, stores: EvaluationStores, dataset: Dataset
               ) -> CalibrationRun:
    embedded = _embed(engine, dataset, stores, request.workers, request.progress)
    cal = calibrate(
        embedded.embeddings,
        embedded.subjects,
        request.target_fmr,
        embedded.table[list(dataset.label_columns)],
        by=request.by,
        multi_label=request.multi_label,
        dataset_fingerprint=dataset.fingerprint,
    )
    if request.save_default:
        stores.thresholds.save(engine.config, cal.result.threshold, cal.threshold_source(dataset.name))
    return CalibrationRun(cal, dataset, int(embedded.ok.sum()), int((~embedded.ok).sum()), request.save_default)


def _calibration_summary(run: CalibrationRun) -> dict[str, Any]:
    r = run.calibration.result
    details: dict[str, Any] = {
        "command": "calibrate",
        "dataset": run.dataset.name,
        "dataset_fingerprint": run.dataset.fingerprint,
        **_subject_face(run.dataset),
        "target_fmr": f"{r.target_fmr:.6e}",
        "threshold": f"{r.threshold:.12f}",
        "achieved_fmr": f"{r.achieved_fmr:.6e}",
        "achieved_fnmr": None if math.isnan(r.achieved_fnmr) else f"{r.achieved_fnmr:.6f}",
        "impostor_pairs": r.impostor_pairs,
        "genuine_pairs": r.genuine_pairs,
        "images": run.images,
        "failures_to_acquire": run.failures_to_acquire,
        "saved_as_default": run.saved,
    }
    if run.dataset.selection:
        details["dataset_selection"] = run.dataset.selection
    return details


@dataclass(frozen=True)
class SearchCalibrationRequest:
    """A search threshold to calibrate to a target FPIR against an enrolled gallery (:func:`run_search_calibration`)."""

    probes: DatasetSource
    """The probes: people searched against the gallery (a manifest)."""
    gallery: str
    """The enrolled gallery searched."""
    target_fpir: float
    """The FPIR to reach, in (0, 1)."""
    for_gallery_size: int | None = None
    """The gallery size the threshold is for (default: the gallery's; another size is extrapolated, labelled so)."""
    probe_glob: str | None = None
    """Only probe images whose ``image`` path matches."""
    by: tuple[tuple[str, ...], ...] = ()
    """Probe groupings for the per-group FPIR."""
    multi_label: MultiLabel = "combined"
    """Policy for multi-valued labels."""
    save: bool = True
    """Store it as the default threshold for searches of such a gallery."""
    workers: int | None = None
    """Processes for embedding."""
    progress: bool = False
    """Show a progress bar while embedding."""

    def __post_init__(self) -> None:
        check_target_fmr(self.target_fpir, "target FPIR")
        if not self.gallery:
            raise BadInput("name the enrolled gallery to calibrate searches of (--gallery)")
        if self.for_gallery_size is not None and self.for_gallery_size < 1:
            raise BadInput(f"the gallery size to calibrate for must be at least 1, got {self.for_gallery_size}")
        if self.probes.manifest is None:
            raise BadInput("the probes of an FPIR calibration are a manifest (--manifest, --subject-col)")


@dataclass(frozen=True, eq=False)
class SearchCalibrationRun:
    """What :func:`run_search_calibration` did."""

    calibration: FpirCalibration
    """The threshold, what it achieves, per probe group."""
    dataset: Dataset
    """The probes."""
    gallery: str
    """The gallery searched."""
    gallery_fingerprint: str
    """Its fingerprint."""
    failures_to_acquire: int
    """Probe images without a usable face."""
    saved_id: int | None
    """The stored calibration's id (``None`` if not saved)."""
    audit_seq: int | None = None
    """The run's record."""


def _gallery_matrix(galleries: GalleryStore, name: str) -> tuple[np.ndarray, list[str], str, int]:
    """Return the gallery's embeddings, their subjects, its fingerprint and size, as the engine searches them."""
    loaded = galleries.load(name)
    if not isinstance(loaded.index, ExactIndex):
        raise EvaluationError(f"gallery {name!r} loaded as an approximate index; an FPIR calibration needs every face")
    matrix = np.asarray(loaded.index.matrix)  # the exact index's live rows, which GalleryStore.load orders by face id
    faces = sorted(galleries.faces(name), key=lambda f: str(f["face_id"]))
    if len(faces) != matrix.shape[0]:
        raise EvaluationError(f"gallery {name!r} changed while it was read; run the calibration again")
    return matrix, [str(f["subject_id"]) for f in faces], loaded.ref.fingerprint, loaded.ref.size


def _calibrate_search(request: SearchCalibrationRequest, engine: Engine, stores: EvaluationStores, dataset: Dataset
                      ) -> SearchCalibrationRun:
    assert stores.galleries is not None
    embedded = _embed(engine, dataset, stores, request.workers, request.progress)
    table = embedded.table
    keep = np.ones(len(table), dtype=bool)
    if request.probe_glob:
        keep = np.array([fnmatch.fnmatch(str(p), request.probe_glob) for p in table["image"]], dtype=bool)
        if not keep.any():
            raise EvaluationError(f"probe pattern {request.probe_glob!r} matches no acquired probe image")
    matrix, subjects, fingerprint, size = _gallery_matrix(stores.galleries, request.gallery)
    cal = calibrate_fpir(
        embedded.embeddings[keep], [str(s) for s in table.loc[keep, dataset.subject_column]], matrix, subjects,
        request.target_fpir, for_gallery_size=request.for_gallery_size,
        probe_labels=table.loc[keep, list(dataset.label_columns)].reset_index(drop=True), by=request.by,
        multi_label=request.multi_label,
    )
    saved = None
    if request.save:
        now = datetime.now(UTC).isoformat()
        saved = stores.thresholds.save_search(
            engine.config, threshold=cal.threshold, target_fpir=cal.target_fpir, gallery=request.gallery,
            gallery_fingerprint=fingerprint, gallery_size=size, for_gallery_size=cal.for_gallery_size,
            method=cal.method, nonmated_distances=cal.distances,
            source=cal.threshold_source(dataset.name, request.gallery, now),
            details={**cal.details(), "probes": dataset.name, "probe_glob": request.probe_glob,
                     "dataset_fingerprint": dataset.fingerprint},
        )
    return SearchCalibrationRun(cal, dataset, request.gallery, fingerprint, int((~embedded.ok).sum()), saved)


def _search_calibration_summary(run: SearchCalibrationRun) -> dict[str, Any]:
    c = run.calibration
    return {
        "command": "calibrate",
        "target_fpir": f"{c.target_fpir:.6g}",
        "for_gallery_size": c.for_gallery_size,
        "method": c.method,
        "threshold": f"{c.threshold:.12f}",
        "achieved_fpir": f"{c.achieved_fpir:.6g}",
        "measured_target_fpir": f"{c.measured_target:.6g}",
        "searches": c.searches,
        "false_positive_searches": c.false_positive_searches,
        "gallery_name": run.gallery,
        "gallery_fingerprint": run.gallery_fingerprint,
        "gallery_size": c.gallery_size,
        "dataset": run.dataset.name,
        "dataset_fingerprint": run.dataset.fingerprint,
        "failures_to_acquire": run.failures_to_acquire,
        "per_group_fpir": {str(r["group_name"]): None if r["fpir"] is None else f"{r['fpir']:.6g}"
                           for r in c.per_group},
        "saved_as_search_default": run.saved_id is not None,
        "search_calibration_id": run.saved_id,
    }


def run_search_calibration(
    request: SearchCalibrationRequest, engine: Engine, stores: EvaluationStores, session: AuditSession
) -> SearchCalibrationRun:
    """Calibrate a search threshold to a target FPIR against an enrolled gallery, save it, record it.

    The runner's steps: context check, refusal of unusable input (the probes' manifest,
    a grouping column, a gallery that does not exist or was enrolled under another
    configuration than ``engine``'s), the probes embedded once through the cache, the
    gallery's faces as the engine searches them, :func:`~audit.evaluation.fpir.calibrate_fpir`,
    the threshold stored with its provenance (:meth:`core.thresholds.ThresholdStore.save_search`)
    and one ``evaluate`` record (``details.command`` is ``"calibrate"``).

    Raises
    ------
    MissingContext
        No purpose (refused and recorded).
    ManifestError, BadInput, GalleryNotFound, ConfigMismatch
        Unusable input (refused and recorded).
    EvaluationError
        The data cannot be calibrated on (recorded).
    """
    attempt = {"command": "calibrate", "target_fpir": f"{request.target_fpir:.6g}", "gallery_name": request.gallery,
               **request.probes.describe()}
    session.check("calibrate", attempt)

    def prepare() -> Dataset:
        if stores.galleries is None:
            raise BadInput("an FPIR calibration needs the database's galleries")
        key, _ = stores.galleries.binding(request.gallery)
        if key != engine.config.embedding_key:
            raise ConfigMismatch(f"gallery {request.gallery!r} was enrolled under {key}, not under the engine's "
                                 f"{engine.config.embedding_key}: calibrate with the gallery's configuration")
        dataset = load_dataset(request.probes)
        _check_columns(dataset, request.by)
        if request.probe_glob and not any(fnmatch.fnmatch(str(p), request.probe_glob) for p in dataset.table["image"]):
            raise BadInput(f"probe pattern {request.probe_glob!r} matches no image of {dataset.name}")
        return dataset

    dataset = _refusing(session, "calibrate", attempt, prepare)
    model_config = engine.config.to_dict()
    audited = session.run(
        ACTION,
        lambda: _calibrate_search(request, engine, stores, dataset),
        lambda run: {"details": _search_calibration_summary(run), "model_config": model_config},
        lambda err: {"details": {**attempt, "dataset_fingerprint": dataset.fingerprint}, "model_config": model_config},
    )
    return replace(audited.result, audit_seq=audited.seq)


def run_calibration(
    request: CalibrationRequest, engine: Engine, stores: EvaluationStores, session: AuditSession
) -> CalibrationRun:
    """Calibrate a threshold to an overall FMR on a labelled dataset, save it as the default, record it.

    The same steps as :func:`run_evaluation`: context check, refusal of unusable input,
    embedding once through the cache, one ``evaluate`` record (``details.command`` is
    ``"calibrate"``). With ``save_default`` the threshold becomes the default of every
    configuration with the engine's embedding key, with its provenance
    (:meth:`~audit.evaluation.calibration.Calibration.threshold_source`).

    Raises
    ------
    MissingContext
        No operator or purpose (refused and recorded).
    ManifestError, BadInput
        The dataset or a grouping column cannot be used (refused and recorded).
    EvaluationError
        The data cannot be calibrated on (recorded).
    """
    attempt = {"command": "calibrate", **request.dataset.describe()}
    session.check("calibrate", attempt)

    def prepare() -> Dataset:
        dataset = load_dataset(request.dataset)
        _check_columns(dataset, request.by)
        return dataset

    dataset = _refusing(session, "calibrate", attempt, prepare)
    model_config = engine.config.to_dict()
    audited = session.run(
        ACTION,
        lambda: _calibrate(request, engine, stores, dataset),
        lambda run: {"details": _calibration_summary(run), "model_config": model_config},
        lambda err: {"details": {**attempt, "dataset_fingerprint": dataset.fingerprint}, "model_config": model_config},
    )
    return replace(audited.result, audit_seq=audited.seq)
