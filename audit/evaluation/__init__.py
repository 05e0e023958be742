"""Measurement of accuracy and demographic error rates (NIST-style), and its one runner.

``datasets`` (manifests and LFW folders, read through :mod:`core.manifest`) ->
``metrics`` (exact pair counts) -> ``evaluate`` (per-group rates with subject-bootstrap
intervals, disparity, DET, calibration) -> ``store`` (stored runs as tidy tables).
"""

from audit.evaluation.datasets import Dataset, ValidationReport, load_lfw, load_manifest
from audit.evaluation.evaluate import (
    Calibration,
    EmbeddedDataset,
    EvaluationConfig,
    EvaluationReport,
    FalseCandidateChance,
    GroupFrame,
    ThresholdSpec,
    calibrate,
    embed_dataset,
    evaluate_dataset,
    evaluate_embedded,
    evaluate_embeddings,
    parse_threshold,
    ten_fold_accuracy,
)
from audit.evaluation.fetch import fetch_lfw
from audit.evaluation.identification import identification_rates
from audit.evaluation.store import EvaluationStore

__all__ = [
    "Calibration",
    "Dataset",
    "EmbeddedDataset",
    "EvaluationConfig",
    "EvaluationReport",
    "EvaluationStore",
    "FalseCandidateChance",
    "GroupFrame",
    "ThresholdSpec",
    "ValidationReport",
    "calibrate",
    "embed_dataset",
    "evaluate_dataset",
    "evaluate_embedded",
    "evaluate_embeddings",
    "fetch_lfw",
    "identification_rates",
    "load_lfw",
    "load_manifest",
    "parse_threshold",
    "ten_fold_accuracy",
]
