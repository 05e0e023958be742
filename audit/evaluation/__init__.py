"""Measured accuracy and demographic error rates (NIST-style), and the one runner that produces them.

Read it in this order:

- :mod:`~audit.evaluation.runner`: :func:`run_evaluation` / :func:`run_calibration`, THE way to
  evaluate (CLI, demo, notebooks): context check, dataset, embedding once, every
  measurement, the store, one audit record;
- :mod:`~audit.evaluation.config`: what to measure (:class:`EvaluationConfig`, thresholds,
  groupings, bands); :mod:`~audit.evaluation.errors`: :class:`EvaluationError`;
- :mod:`~audit.evaluation.datasets`: manifests (through :mod:`core.manifest`) and LFW folders,
  validation, fingerprints, the first-N-subjects subset; :mod:`~audit.evaluation.fetch`: LFW download;
- :mod:`~audit.evaluation.embedding`: a dataset through the engine and its cache;
- :mod:`~audit.evaluation.metrics` (exact pair counts in one pass), :mod:`~audit.evaluation.groups`
  (labels, policies, reported cells), :mod:`~audit.evaluation.bootstrap` (subject resampling);
- :mod:`~audit.evaluation.verification` (per-group FMR/FNMR), :mod:`~audit.evaluation.disparity`,
  :mod:`~audit.evaluation.inequity` (max/min, max/geometric mean, GARBE, FDR),
  :mod:`~audit.evaluation.cutoffs` (thresholds anyone can reproduce),
  :mod:`~audit.evaluation.curves` (DET, histograms, EER), :mod:`~audit.evaluation.calibration`,
  :mod:`~audit.evaluation.lfw` (the 10-fold protocol), :mod:`~audit.evaluation.identification` (1:N),
  :mod:`~audit.evaluation.fpir` (search thresholds calibrated to a target FPIR for a gallery size);
- a system facetrail does not run, from its own scores: :mod:`~audit.evaluation.scorefiles`
  (pair score files: CSV, bob.measure's 4 and 5 columns), :mod:`~audit.evaluation.listed`
  (their verification rates, through the same steps), :mod:`~audit.evaluation.candidates`
  (candidate lists: rank-1, FNIR, FPIR);
- :mod:`~audit.evaluation.report`: :class:`EvaluationReport`, the tidy tables of a run;
  :mod:`~audit.evaluation.store`: the one :class:`EvaluationStore`.
"""

from audit.evaluation.calibration import Calibration, calibrate
from audit.evaluation.candidates import candidate_rates, read_candidates
from audit.evaluation.config import (
    DEFAULT_THRESHOLDS,
    BadGrouping,
    Band,
    EvaluationConfig,
    ScoreConvention,
    ThresholdKind,
    ThresholdSpec,
    parse_band,
    parse_groupings,
    parse_threshold,
    parse_thresholds,
)
from audit.evaluation.curves import eer_from_det
from audit.evaluation.cutoffs import Precision
from audit.evaluation.datasets import (
    Dataset,
    ValidationReport,
    first_subjects,
    load_label_manifest,
    load_lfw,
    load_manifest,
)
from audit.evaluation.embedding import EmbeddedDataset, embed_dataset, evaluate_embedded
from audit.evaluation.errors import EvaluationError
from audit.evaluation.fetch import fetch_lfw
from audit.evaluation.fpir import FpirCalibration, calibrate_fpir
from audit.evaluation.identification import identification_rates
from audit.evaluation.inequity import MEASURE_EXPLANATIONS, MEASURES
from audit.evaluation.lfw import ten_fold_accuracy, ten_fold_accuracy_both_found
from audit.evaluation.listed import evaluate_listed, listed_pairs
from audit.evaluation.report import EvaluationReport, FalseCandidateChance, GroupFrame
from audit.evaluation.runner import (
    CalibrationRequest,
    CalibrationRun,
    DatasetSource,
    EvaluationRequest,
    EvaluationRun,
    EvaluationStores,
    IdentificationRequest,
    SearchCalibrationRequest,
    SearchCalibrationRun,
    SystemScores,
    load_dataset,
    run_calibration,
    run_evaluation,
    run_search_calibration,
)
from audit.evaluation.scorefiles import ScoreFileError, read_pair_scores
from audit.evaluation.store import EvaluationStore, StoredEvaluation
from audit.evaluation.verification import evaluate_embeddings

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BadGrouping",
    "Band",
    "Calibration",
    "CalibrationRequest",
    "CalibrationRun",
    "Dataset",
    "DatasetSource",
    "EmbeddedDataset",
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationReport",
    "EvaluationRequest",
    "EvaluationRun",
    "EvaluationStore",
    "EvaluationStores",
    "FalseCandidateChance",
    "FpirCalibration",
    "GroupFrame",
    "IdentificationRequest",
    "MEASURES",
    "MEASURE_EXPLANATIONS",
    "Precision",
    "ScoreConvention",
    "ScoreFileError",
    "SearchCalibrationRequest",
    "SearchCalibrationRun",
    "StoredEvaluation",
    "SystemScores",
    "ThresholdKind",
    "ThresholdSpec",
    "ValidationReport",
    "calibrate",
    "calibrate_fpir",
    "candidate_rates",
    "eer_from_det",
    "embed_dataset",
    "evaluate_embedded",
    "evaluate_embeddings",
    "evaluate_listed",
    "fetch_lfw",
    "first_subjects",
    "identification_rates",
    "listed_pairs",
    "load_dataset",
    "load_label_manifest",
    "load_lfw",
    "load_manifest",
    "parse_band",
    "parse_groupings",
    "parse_threshold",
    "parse_thresholds",
    "read_candidates",
    "read_pair_scores",
    "run_calibration",
    "run_evaluation",
    "run_search_calibration",
    "ten_fold_accuracy",
    "ten_fold_accuracy_both_found",
]
