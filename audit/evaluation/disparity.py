"""Disparity: each group's FMR and FNMR relative to the best group, and the max/min ratio.

Per grouping, threshold and metric, over the ``within`` cells:

- the reference (*best*) group is the lowest non-zero rate among groups with enough
  data (any group with a non-zero rate if none has enough); ``relative_to_best`` is
  a group's rate over it;
- ``max_min_ratio`` is the largest over the smallest rate among groups with enough
  data (all groups if fewer than two have);
- both carry percentile intervals over the same subject-bootstrap resamples as the
  rates, and a flag when they leave :data:`DISPARITY_BAND`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.evaluation.bootstrap import percentile_interval
from audit.evaluation.config import EvaluationConfig, ThresholdSpec
from audit.evaluation.groups import PairCell, grouping_name

__all__ = ["DISPARITY_BAND", "RateArrays", "disparity_rows", "max_min_ratio"]

#: Disparity band: a ratio outside it is flagged.
DISPARITY_BAND = (0.8, 1.25)


@dataclass(frozen=True, eq=False)
class RateArrays:
    """Point rates ``(cells, thresholds)``, bootstrap draws ``(R, cells, thresholds)`` and pair counts per cell."""

    fmr: np.ndarray
    fnmr: np.ndarray
    boot_fmr: np.ndarray
    boot_fnmr: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray


def _flag(value: float) -> bool | None:
    lo, hi = DISPARITY_BAND
    return None if math.isnan(value) else bool(not (lo <= value <= hi))


def max_min_ratio(draws: np.ndarray) -> np.ndarray:
    """Per bootstrap draw (row), max/min over groups ignoring NaN: inf when only the min is 0, NaN when undefined."""
    out = np.full(draws.shape[0], np.nan)
    if draws.size == 0:
        return out
    defined = ~np.isnan(draws).all(axis=1)
    if defined.any():
        hi = np.nanmax(draws[defined], axis=1)
        lo = np.nanmin(draws[defined], axis=1)
        ratio = np.full(hi.shape, np.nan)
        np.divide(hi, lo, out=ratio, where=lo > 0)
        ratio[(lo == 0) & (hi > 0)] = np.inf
        out[defined] = ratio
    return out


def _metric_rows(
    cells: Sequence[PairCell],
    idx: list[int],
    low: dict[int, bool],
    spec: ThresholdSpec,
    metric: str,
    point: np.ndarray,
    draws: np.ndarray,
    confidence: float,
) -> list[dict[str, Any]]:
    """Rows of one metric at one threshold for the groups ``idx`` (which have pairs and a rate)."""
    vals = point[idx]
    pool = [j for j, i in enumerate(idx) if vals[j] > 0 and not low[i]] or [j for j in range(len(idx)) if vals[j] > 0]
    mm_pool = [j for j, i in enumerate(idx) if not low[i]]
    if len(mm_pool) < 2:
        mm_pool = list(range(len(idx)))
    d = draws[:, idx] if draws.size else np.zeros((0, len(idx)))
    with np.errstate(divide="ignore", invalid="ignore"):
        if pool:
            jb = pool[int(np.argmin(vals[pool]))]
            best_name: str | None = cells[idx[jb]].group.name
            rel_point = vals / vals[jb]
            rel_draws = d / d[:, [jb]]
        else:
            best_name = None
            rel_point = np.full(vals.shape, np.nan)
            rel_draws = np.full(d.shape, np.nan)
        sub = vals[mm_pool]
        mm_point = float(sub.max() / sub.min()) if sub.max() > 0 else math.nan
        mm_draws = max_min_ratio(d[:, mm_pool])
    rel_lo, rel_hi = percentile_interval(rel_draws, confidence)
    mm_lo, mm_hi = percentile_interval(mm_draws[:, None], confidence)
    return [
        {
            "grouping": grouping_name(cells[i].columns),
            "group": cells[i].group.as_dict(),
            "group_name": cells[i].group.name,
            "best_group_name": best_name,
            "threshold_name": spec.name,
            "threshold": spec.value,
            "metric": metric,
            "rate": float(vals[j]),
            "relative_to_best": float(rel_point[j]),
            "relative_lo": float(rel_lo[j]),
            "relative_hi": float(rel_hi[j]),
            "max_min_ratio": mm_point,
            "max_min_ratio_lo": float(mm_lo[0]),
            "max_min_ratio_hi": float(mm_hi[0]),
            "flag": _flag(float(rel_point[j])),
            "max_min_flag": _flag(mm_point),
            "low_count": low[i],
        }
        for j, i in enumerate(idx)
    ]


def disparity_rows(
    cells: Sequence[PairCell], thresholds: Sequence[ThresholdSpec], rates: RateArrays, cfg: EvaluationConfig
) -> list[dict[str, Any]]:
    """Disparity rows for every grouping of ``cfg.by``, threshold and metric (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for spec in cfg.by:
        idx = [i for i, c in enumerate(cells) if c.pairing == "within" and c.columns == tuple(spec)]
        low = {
            i: bool(
                cells[i].subjects < cfg.min_subjects
                or rates.genuine[i] < cfg.min_genuine_pairs
                or rates.impostor[i] < cfg.min_impostor_pairs
            )
            for i in idx
        }
        for ki, t in enumerate(thresholds):
            for metric, point, draws, den in (
                ("false_match_rate", rates.fmr, rates.boot_fmr, rates.impostor),
                ("false_non_match_rate", rates.fnmr, rates.boot_fnmr, rates.genuine),
            ):
                have = [i for i in idx if den[i] > 0 and not math.isnan(point[i, ki])]
                if have:
                    out += _metric_rows(cells, have, low, t, metric, point[:, ki], draws[:, :, ki], cfg.confidence)
    return out
