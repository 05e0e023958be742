"""DET curves, score histograms and equal error rates per group, from the pass's histograms.

The scoring pass (:func:`audit.evaluation.metrics.score_pairs`) keeps, per pair of
fine cells, histograms of genuine and impostor scores over similarity [-1, 1].
Summed over a :class:`~audit.evaluation.groups.PairCell`'s mask they give the
group's score distributions (``histogram_rows``), its DET curve (FMR and FNMR
with the threshold at each bin's lower edge, thinned to the points where the
curve moves) and its EER (where the curve crosses FMR = FNMR). All of it is at the
histogram's resolution (``2 / hist_bins`` in similarity); exact rates at named
thresholds come from :mod:`audit.evaluation.verification`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from audit.evaluation.config import ScoreConvention
from audit.evaluation.groups import PairCell

__all__ = ["eer_from_det", "det_and_histograms"]


def eer_from_det(fmr: np.ndarray | Sequence[float], fnmr: np.ndarray | Sequence[float]) -> float:
    """Equal error rate from DET points ordered by increasing threshold strictness.

    FMR decreases and FNMR increases along the points; the EER is where they cross,
    linearly interpolated between the two points that bracket the crossing.
    """
    fm = np.asarray(fmr, dtype=np.float64)
    fn = np.asarray(fnmr, dtype=np.float64)
    ok = ~(np.isnan(fm) | np.isnan(fn))
    fm, fn = fm[ok], fn[ok]
    if fm.size == 0:
        return math.nan
    diff = fm - fn
    idx = np.flatnonzero(diff <= 0)
    if idx.size == 0:
        return float(fm[-1] + fn[-1]) / 2.0
    k = int(idx[0])
    if k == 0:
        return float(fm[0] + fn[0]) / 2.0
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    e0 = fm[k - 1] + t * (fm[k] - fm[k - 1])
    e1 = fn[k - 1] + t * (fn[k] - fn[k - 1])
    return float((e0 + e1) / 2.0)


def _histogram_rows(cell: PairCell, edges: np.ndarray, ih: np.ndarray, gh: np.ndarray,
                    convention: ScoreConvention) -> list[dict[str, Any]]:
    flip = convention.kind == "distance"  # edges are in "more alike is higher" units: -distance
    return [
        {
            "grouping": cell.grouping,
            "group": cell.group.as_dict(),
            "group_name": cell.group.name,
            "bin_lo": float(-edges[b + 1] if flip else edges[b]),
            "bin_hi": float(-edges[b] if flip else edges[b + 1]),
            "genuine": int(gh[b]),
            "impostor": int(ih[b]),
        }
        for b in np.flatnonzero((ih > 0) | (gh > 0))
    ]


def _threshold_at(edge: float, convention: ScoreConvention) -> tuple[float, float]:
    """Return the (similarity, threshold) of a bin edge in "more alike is higher" units."""
    if convention.kind == "cosine":
        return edge, 1.0 - edge
    if convention.kind == "similarity":
        return edge, edge
    return math.nan, -edge


def _det_points(ih: np.ndarray, gh: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bins and (FMR, FNMR) with the threshold at each bin's lower edge, over the occupied range."""
    ni, ng = int(ih.sum()), int(gh.sum())
    # threshold at the lower edge of bin b: impostors in bins >= b match, genuines below b do not
    imp_at = np.cumsum(ih[::-1])[::-1] / ni
    gen_miss = np.concatenate([[0], np.cumsum(gh)[:-1]]) / ng
    nz = np.flatnonzero((ih > 0) | (gh > 0))
    bins = np.arange(int(nz.min()), min(int(nz.max()) + 2, nb))
    return bins, imp_at[bins], gen_miss[bins]


def det_and_histograms(
    scores: Any, cells: Sequence[PairCell], max_det_points: int = 400, *, convention: ScoreConvention | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], float]]:
    """DET rows, histogram rows and EER per ``(grouping, group name)`` for every non-cross cell.

    Parameters
    ----------
    scores
        The scoring pass's histograms: ``hist_bins``, ``impostor_hist``, ``genuine_hist``
        (``(P, bins)``) and ``hist_edges()`` in "more alike is higher" units (similarity;
        minus the distance for a system's distance scores).
    cells
        The reported cells; ``cross`` cells have no curve (no genuine pairs).
    max_det_points
        At most this many DET points per group (evenly thinned).
    convention
        What the scores are (default: facetrail's cosine similarity): a DET point's
        ``threshold`` is in the run's threshold units, histogram bins in its score units.
    """
    convention = convention or ScoreConvention("cosine")
    det: list[dict[str, Any]] = []
    hist: list[dict[str, Any]] = []
    eers: dict[tuple[str, str], float] = {}
    nb = scores.hist_bins
    if not nb:
        return det, hist, eers
    edges = scores.hist_edges()
    for cell in cells:
        if cell.pairing == "cross":
            continue
        ih = scores.impostor_hist[cell.mask].sum(axis=0)
        gh = scores.genuine_hist[cell.mask].sum(axis=0)
        hist += _histogram_rows(cell, edges, ih, gh, convention)
        key = (cell.grouping, cell.group.name)
        if int(ih.sum()) == 0 or int(gh.sum()) == 0:
            eers[key] = math.nan
            continue
        bins, fm_pts, fn_pts = _det_points(ih, gh, nb)
        eers[key] = eer_from_det(fm_pts, fn_pts)
        # keep the points where the curve moves, thinned to at most max_det_points per group
        moved = np.concatenate([[True], (np.diff(fm_pts) != 0) | (np.diff(fn_pts) != 0)])
        sel = np.flatnonzero(moved)
        if sel.size > max_det_points:
            sel = sel[np.unique(np.linspace(0, sel.size - 1, max_det_points).round().astype(int))]
        for b, a, c in zip(bins[sel], fm_pts[sel], fn_pts[sel], strict=True):
            similarity, threshold = _threshold_at(float(edges[b]), convention)
            det.append(
                {
                    "grouping": cell.grouping,
                    "group": cell.group.as_dict(),
                    "group_name": cell.group.name,
                    "similarity": similarity,
                    "threshold": threshold,
                    "fmr": float(a),
                    "fnmr": float(c),
                }
            )
    return det, hist, eers
