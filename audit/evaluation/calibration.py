"""A threshold calibrated to a target false-match rate, with what it achieves overall and per group.

:func:`calibrate` finds, on a set of embeddings, the loosest cosine-distance
threshold whose overall FMR does not exceed the target (an exact order statistic
of the impostor scores, :func:`audit.evaluation.metrics.calibrate_threshold`) and
reports FMR and FNMR per group at it. :meth:`Calibration.threshold_source` turns it
into the provenance (:class:`core.config.ThresholdSource`) that
:class:`core.thresholds.ThresholdStore` keeps with a default threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from audit.evaluation.config import EvaluationConfig, ThresholdSpec, check_target_fmr
from audit.evaluation.groups import MultiLabel
from audit.evaluation.metrics import ThresholdCalibration
from audit.evaluation.report import json_safe
from audit.evaluation.verification import evaluate_embeddings
from core.config import ThresholdSource

__all__ = ["Calibration", "calibrate"]

_PER_GROUP_KEYS = (
    "pairing",
    "grouping",
    "group",
    "group_name",
    "threshold",
    "genuine_pairs",
    "impostor_pairs",
    "false_matches",
    "false_non_matches",
    "fmr",
    "fnmr",
    "fmr_lo",
    "fmr_hi",
    "fnmr_lo",
    "fnmr_hi",
    "low_count",
)


@dataclass(frozen=True)
class Calibration:
    """A threshold calibrated to a target FMR, with what it achieves overall and per group."""

    result: ThresholdCalibration
    """Threshold, achieved FMR and FNMR on the calibration set."""
    per_group: tuple[Mapping[str, Any], ...]
    """Per-group rows at that threshold (``group``, ``fmr``, ``fnmr``, counts, intervals)."""
    dataset_fingerprint: str | None
    """Fingerprint of the calibration data."""
    created: str
    """UTC time of the calibration."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready provenance."""
        return cast(
            dict[str, Any],
            json_safe(
                {
                    **self.result.__dict__,
                    "per_group": [dict(r) for r in self.per_group],
                    "dataset_fingerprint": self.dataset_fingerprint,
                    "created": self.created,
                }
            ),
        )

    def threshold_source(self, dataset: str) -> ThresholdSource:
        """Return the provenance of this threshold as a configuration's default (calibrated on ``dataset``)."""
        r = self.result
        per_group = tuple(
            (str(row["group_name"]), float(row["fmr"]))
            for row in self.per_group
            if row["pairing"] == "within" and row["fmr"] is not None
        )
        return ThresholdSource(
            kind="calibrated",
            description=f"FMR={r.target_fmr:g} on {dataset} ({self.created[:10]})",
            target_fmr=r.target_fmr,
            achieved_fmr=r.achieved_fmr,
            achieved_fnmr=None if math.isnan(r.achieved_fnmr) else r.achieved_fnmr,
            dataset=dataset,
            dataset_fingerprint=self.dataset_fingerprint,
            calibrated_at=self.created,
            per_group_fmr=per_group,
        )


def calibrate(
    embeddings: np.ndarray,
    subjects: Sequence[Any] | np.ndarray,
    target_fmr: float,
    labels: pd.DataFrame | None = None,
    *,
    by: Sequence[Sequence[str]] = (),
    multi_label: MultiLabel = "combined",
    bootstrap: int = 0,
    dataset_fingerprint: str | None = None,
) -> Calibration:
    """Calibrate a distance threshold to an overall ``target_fmr`` on these embeddings.

    Parameters
    ----------
    embeddings, subjects, labels
        As for :func:`audit.evaluation.verification.evaluate_embeddings`.
    target_fmr
        Overall false-match rate to reach (exact order statistic of impostor scores).
    by
        Groupings for the per-group FMR/FNMR at the calibrated threshold.
    multi_label
        Label policy.
    bootstrap
        Resamples for per-group intervals (0: none).
    dataset_fingerprint
        Provenance.

    Raises
    ------
    BadInput
        For a target outside (0, 1).
    EvaluationError
        When the data has no impostor pairs or the target admits all of them.
    """
    target = check_target_fmr(target_fmr)
    spec = ThresholdSpec(name=f"fmr={target:g}", source="calibrated", target_fmr=target)
    cfg = EvaluationConfig(
        by=tuple(tuple(b) for b in by),
        thresholds=(spec,),
        include_default=False,
        multi_label=multi_label,
        bootstrap=bootstrap,
        cross_group=False,
        hist_bins=16,
    )
    report = evaluate_embeddings(embeddings, subjects, labels, cfg, dataset_fingerprint=dataset_fingerprint)
    cal = report.calibration_rows[0]  # JSON-safe: a NaN rate was stored as None
    values: dict[str, Any] = {k: math.nan if cal[k] is None else cal[k] for k in ThresholdCalibration.__dataclass_fields__}
    result = ThresholdCalibration(**values)
    rows = tuple({k: r[k] for k in _PER_GROUP_KEYS} for r in report.rates)
    return Calibration(
        result=result, per_group=rows, dataset_fingerprint=dataset_fingerprint, created=str(report.run["created"])
    )
