"""Inequity measures: one number per grouping and threshold for how unequal the groups' error rates are.

Over the ``within`` cells of a grouping (pairs of two people of one group, as NIST
compares impostors), at each threshold of the run, with ``x_1..x_n`` the groups' FMR
(or FNMR):

``max_min_ratio``
    ``max(x) / min(x)``: the worst group against the best (facetrail's long-standing
    measure; :mod:`audit.evaluation.disparity` also reports it per group).
``max_geomean_ratio``
    ``max(x) / (x_1 * ... * x_n)^(1/n)``: the worst group against the geometric mean of
    all groups, the summary NIST's FRTE demographic reporting uses ("Max/GeoMean",
    FRVT Part 8, *Summarizing Demographic Differentials*); 1 is parity. Less swayed by
    one lucky group with a near-zero rate than max/min.
``gini``
    The Gini coefficient with the small-sample correction of Howard et al. (2022,
    *Evaluating proposed fairness models for face recognition algorithms*):
    ``G(x) = n/(n-1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))``; 0 is parity, 1 the
    largest inequality ``n`` groups can have. ``G`` of the FMRs is GARBE's ``A``, of
    the FNMRs its ``B``. (0 when every rate is equal, zeros included.)
``garbe``
    Gini Aggregation Rate for Biometric Equitability (Howard et al. 2022):
    ``GARBE = alpha * A + (1 - alpha) * B`` with ``alpha = 0.5``; 0 is parity.
``max_difference``
    ``max(x) - min(x)``: FDR's ``A`` (FMR) and ``B`` (FNMR).
``fdr``
    Fairness Discrepancy Rate (de Freitas Pereira & Marcel 2021, *Fairness in
    biometrics: a figure of merit to assess biometric verification systems*):
    ``FDR = 1 - (alpha * A + (1 - alpha) * B)``, ``A = max |FMR_i - FMR_j|``,
    ``B = max |FNMR_i - FNMR_j|``, ``alpha = 0.5``; 1 is parity. Rates are absolute, so
    FDR is dominated by FNMR differences at the thresholds one operates at (FMRs are
    around 1e-3).

Which groups: those with pairs and enough data (not ``low_count``), or every group with
pairs when fewer than two have enough (the rule of :mod:`audit.evaluation.disparity`);
``groups``, ``excluded_low_count`` and ``zero_groups`` (pooled groups whose rate is 0,
which make a ratio infinite: ``null`` in JSON) say what went in. ``garbe`` and ``fdr``
use the groups with both rates. Intervals are percentile intervals over the same
subject-bootstrap resamples as the rates, the measure recomputed in every resample
(groups whose rate is undefined in a resample are left out of it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from audit.evaluation.bootstrap import percentile_interval
from audit.evaluation.config import EvaluationConfig, ThresholdSpec
from audit.evaluation.disparity import RateArrays
from audit.evaluation.groups import PairCell, grouping_name

__all__ = [
    "ALPHA",
    "MEASURES",
    "MEASURE_EXPLANATIONS",
    "gini",
    "inequity_rows",
    "max_difference",
    "max_geomean_ratio",
    "max_min_ratio",
]

#: Weight of the FMR term in GARBE and FDR (both papers' choice).
ALPHA = 0.5

#: Every measure, with the metrics it is reported for.
MEASURES: dict[str, tuple[str, ...]] = {
    "max_min_ratio": ("false_match_rate", "false_non_match_rate"),
    "max_geomean_ratio": ("false_match_rate", "false_non_match_rate"),
    "gini": ("false_match_rate", "false_non_match_rate"),
    "garbe": ("combined",),
    "max_difference": ("false_match_rate", "false_non_match_rate"),
    "fdr": ("combined",),
}


def _rows_2d(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[None, :] if a.ndim == 1 else a


def _defined(a: np.ndarray, least: int) -> np.ndarray:
    return np.asarray(np.count_nonzero(~np.isnan(a), axis=1) >= least)


def max_min_ratio(x: np.ndarray) -> np.ndarray:
    """``max / min`` per row (groups along the last axis, NaN ignored): inf when only the min is 0, NaN when all are."""
    a = _rows_2d(x)
    out = np.full(a.shape[0], np.nan)
    ok = _defined(a, 1)
    if ok.any():
        hi, lo = np.nanmax(a[ok], axis=1), np.nanmin(a[ok], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[ok] = np.where(hi > 0, np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), np.inf), np.nan)
    return out


def max_geomean_ratio(x: np.ndarray) -> np.ndarray:
    """``max / geometric mean`` per row (NaN ignored): inf when some rate is 0 and the max is not, NaN when all are 0."""
    a = _rows_2d(x)
    out = np.full(a.shape[0], np.nan)
    ok = _defined(a, 1)
    if ok.any():
        b = a[ok]
        hi = np.nanmax(b, axis=1)
        has_zero = np.any(b == 0, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(np.isnan(b) | (b <= 0), 0.0, np.log(np.where(b > 0, b, 1.0)))
            geo = np.exp(logs.sum(axis=1) / np.count_nonzero(~np.isnan(b), axis=1))
            ratio = np.where(has_zero, np.inf, hi / geo)
        out[ok] = np.where(hi > 0, ratio, np.nan)
    return out


def gini(x: np.ndarray) -> np.ndarray:
    """Howard et al.'s corrected Gini coefficient per row (NaN ignored; at least two groups; 0 when all are equal)."""
    a = _rows_2d(x)
    out = np.full(a.shape[0], np.nan)
    ok = _defined(a, 2)
    if ok.any():
        b = a[ok]
        present = ~np.isnan(b)
        n = present.sum(axis=1).astype(np.float64)
        z = np.where(present, b, 0.0)
        both = present[:, :, None] & present[:, None, :]
        diffs = np.where(both, np.abs(z[:, :, None] - z[:, None, :]), 0.0).sum(axis=(1, 2))
        mean = z.sum(axis=1) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            g = n / (n - 1.0) * diffs / (2.0 * n * n * np.where(mean > 0, mean, 1.0))
        out[ok] = np.where(diffs == 0, 0.0, g)
    return out


def max_difference(x: np.ndarray) -> np.ndarray:
    """``max - min`` per row (NaN ignored; NaN when no group has a rate)."""
    a = _rows_2d(x)
    out = np.full(a.shape[0], np.nan)
    ok = _defined(a, 1)
    if ok.any():
        out[ok] = np.nanmax(a[ok], axis=1) - np.nanmin(a[ok], axis=1)
    return out


#: One sentence per measure, for readers of a report (the dashboard shows them).
MEASURE_EXPLANATIONS: dict[str, str] = {
    "max_min_ratio": "Max/min: the worst group's rate over the best group's (1 is parity); one group with a "
                     "near-zero rate makes it explode.",
    "max_geomean_ratio": "Max/geometric mean (NIST FRTE's demographic summary): the worst group's rate over the "
                         "geometric mean of every group's rate (1 is parity), less swayed by one lucky group.",
    "gini": "Gini coefficient of the groups' rates with Howard et al.'s small-sample correction: 0 when every group "
            "has the same rate, 1 at the largest inequality; GARBE's A (FMR) and B (FNMR).",
    "garbe": "GARBE (Howard et al. 2022): half the FMR Gini plus half the FNMR Gini; 0 is parity.",
    "max_difference": "Max difference: the largest gap between two groups' rates in absolute terms; FDR's A (FMR) "
                      "and B (FNMR).",
    "fdr": "FDR (de Freitas Pereira & Marcel 2021): 1 minus half the largest FMR gap minus half the largest FNMR "
           "gap; 1 is parity, and at everyday thresholds it mostly reflects FNMR gaps.",
}


_SINGLE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_min_ratio": max_min_ratio,
    "max_geomean_ratio": max_geomean_ratio,
    "gini": gini,
    "max_difference": max_difference,
}


def _pool(cells: Sequence[PairCell], idx: list[int], low: dict[int, bool]) -> tuple[list[int], int]:
    """Return the groups to compare: those with enough data, else all (and how many were left out)."""
    enough = [i for i in idx if not low[i]]
    if len(enough) >= 2:
        return enough, len(idx) - len(enough)
    return idx, 0


def _row(grouping: str, spec: ThresholdSpec, measure: str, metric: str, point: float, draws: np.ndarray,
         groups: int, zeros: int, excluded: int, confidence: float, alpha: float | None) -> dict[str, Any]:
    lo, hi = percentile_interval(draws[:, None], confidence) if draws.size else (np.array([np.nan]),) * 2
    return {
        "grouping": grouping,
        "threshold_name": spec.name,
        "threshold": spec.value,
        "measure": measure,
        "metric": metric,
        "value": float(point),
        "lo": float(lo[0]),
        "hi": float(hi[0]),
        "groups": groups,
        "zero_groups": zeros,
        "excluded_low_count": excluded,
        "alpha": alpha,
    }


def inequity_rows(
    cells: Sequence[PairCell],
    thresholds: Sequence[ThresholdSpec],
    rates: RateArrays,
    cfg: EvaluationConfig,
    alpha: float = ALPHA,
) -> list[dict[str, Any]]:
    """Every measure of :data:`MEASURES` per grouping of ``cfg.by`` and threshold (see the module docstring).

    Parameters
    ----------
    cells
        The reported cells (their order indexes ``rates``).
    thresholds
        The run's thresholds, in the order of the rate arrays' last axis.
    rates
        Point rates and bootstrap draws per cell and threshold.
    cfg
        The groupings, the ``low_count`` rule and the interval coverage.
    alpha
        Weight of the FMR term in GARBE and FDR.
    """
    out: list[dict[str, Any]] = []
    for spec in cfg.by:
        idx = [i for i, c in enumerate(cells) if c.pairing == "within" and c.columns == tuple(spec)]
        low = {
            i: bool(cells[i].subjects < cfg.min_subjects or rates.genuine[i] < cfg.min_genuine_pairs
                    or rates.impostor[i] < cfg.min_impostor_pairs)
            for i in idx
        }
        name = grouping_name(spec)
        for k, t in enumerate(thresholds):
            have = {
                "false_match_rate": [i for i in idx if rates.impostor[i] > 0 and not math.isnan(rates.fmr[i, k])],
                "false_non_match_rate": [i for i in idx if rates.genuine[i] > 0 and not math.isnan(rates.fnmr[i, k])],
            }
            arrays = {"false_match_rate": (rates.fmr, rates.boot_fmr), "false_non_match_rate": (rates.fnmr,
                                                                                              rates.boot_fnmr)}
            for metric in ("false_match_rate", "false_non_match_rate"):
                if not have[metric]:
                    continue
                pool, excluded = _pool(cells, have[metric], low)
                point, draws = arrays[metric][0][pool, k], arrays[metric][1][:, pool, k]
                zeros = int(np.count_nonzero(point == 0))
                for measure, fn in _SINGLE.items():
                    out.append(_row(name, t, measure, metric, fn(point)[0], fn(draws) if draws.size else draws,
                                    len(pool), zeros, excluded, cfg.confidence, None))
            both = [i for i in have["false_match_rate"] if i in set(have["false_non_match_rate"])]
            if len(both) < 2:
                continue
            pool, excluded = _pool(cells, both, low)
            fm, fn_ = rates.fmr[pool, k], rates.fnmr[pool, k]
            bfm, bfn = rates.boot_fmr[:, pool, k], rates.boot_fnmr[:, pool, k]
            zeros = int(np.count_nonzero((fm == 0) | (fn_ == 0)))
            garbe_point = alpha * gini(fm)[0] + (1 - alpha) * gini(fn_)[0]
            fdr_point = 1.0 - (alpha * max_difference(fm)[0] + (1 - alpha) * max_difference(fn_)[0])
            garbe_draws = alpha * gini(bfm) + (1 - alpha) * gini(bfn) if bfm.size else np.zeros(0)
            fdr_draws = 1.0 - (alpha * max_difference(bfm) + (1 - alpha) * max_difference(bfn)) if bfm.size else np.zeros(0)
            out.append(_row(name, t, "garbe", "combined", garbe_point, garbe_draws, len(pool), zeros, excluded,
                            cfg.confidence, alpha))
            out.append(_row(name, t, "fdr", "combined", fdr_point, fdr_draws, len(pool), zeros, excluded,
                            cfg.confidence, alpha))
    return out
