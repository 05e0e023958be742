"""Identification (1:N) error rates per probe group.

Mated searches
    A probe whose subject has images in the gallery. ``rank1_rate``: the top-scoring
    gallery image is a mate (strictly above every non-mate). ``fnir`` at a threshold:
    the search does *not* return a mate at rank 1 within the threshold.
Non-mated searches
    Each probe searched against the gallery *without* that person's images (the ACLU
    design: members of Congress against a gallery of other people). ``fpir`` at a
    threshold: the fraction of searches returning any candidate within the threshold.

Scores are the same exact quantised cosine similarities as :mod:`audit.evaluation.metrics`;
a candidate is returned iff ``1 - similarity <= threshold``. Intervals are Wilson
score intervals over searches (one search per probe image).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.errors import EvaluationError
from audit.evaluation.groups import MultiLabel, fine_cells, grouping_name, groups_for
from audit.evaluation.metrics import distance_to_q, quantize

__all__ = ["identification_rates", "wilson_interval"]


def identification_counts(
    n_mated: int, hits: int, misses: int, n_non: int, false_pos: int, confidence: float
) -> dict[str, Any]:
    """Return the rank-1, FNIR and FPIR fields of one group at one threshold, with Wilson intervals.

    ``misses`` are mated searches whose mate is not the top candidate within the threshold;
    ``false_pos`` are searches whose best non-mate is within it. Rates of no searches are NaN.
    """
    fnir_lo, fnir_hi = wilson_interval(misses, n_mated, confidence)
    fpir_lo, fpir_hi = wilson_interval(false_pos, n_non, confidence)
    return {
        "mated_searches": n_mated,
        "rank1_hits": hits,
        "rank1_rate": hits / n_mated if n_mated else math.nan,
        "fnir": misses / n_mated if n_mated else math.nan,
        "fnir_lo": fnir_lo,
        "fnir_hi": fnir_hi,
        "nonmated_searches": n_non,
        "false_positive_searches": false_pos,
        "fpir": false_pos / n_non if n_non else math.nan,
        "fpir_lo": fpir_lo,
        "fpir_hi": fpir_hi,
    }


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (NaN when ``n == 0``)."""
    if n == 0:
        return math.nan, math.nan
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def _best_scores(
    pq: np.ndarray, gq: np.ndarray, p_codes: np.ndarray, g_codes: np.ndarray, block_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per probe, the best integer score of a mate and of a non-mate (``-inf`` when there is none)."""
    n_p = pq.shape[0]
    best_mate = np.full(n_p, -np.inf)
    best_non = np.full(n_p, -np.inf)
    for r0 in range(0, n_p, block_rows):
        s = pq[r0 : r0 + block_rows] @ gq.T
        mate = p_codes[r0 : r0 + block_rows, None] == g_codes[None, :]
        best_mate[r0 : r0 + block_rows] = np.where(mate, s, -np.inf).max(axis=1)
        best_non[r0 : r0 + block_rows] = np.where(mate, -np.inf, s).max(axis=1)
    return best_mate, best_non


def _probe_groups(
    n_p: int, probe_labels: pd.DataFrame | None, by: Sequence[Sequence[str]], multi_label: MultiLabel
) -> list[tuple[str, dict[str, str], str, np.ndarray]]:
    """Return ``(grouping, group, group name, probe mask)`` for everyone and every group of ``by``."""
    members: list[tuple[str, dict[str, str], str, np.ndarray]] = [("all", {}, "all", np.ones(n_p, dtype=bool))]
    columns = list(dict.fromkeys(c for spec in by for c in spec))
    if not columns:
        return members
    if probe_labels is None or len(probe_labels) != n_p:
        raise ValueError("probe_labels (one row per probe) are needed to group by " + ", ".join(columns))
    fine = fine_cells(probe_labels.reset_index(drop=True), columns)
    for spec in by:
        for g in groups_for(fine, spec, multi_label):
            members.append((grouping_name(spec), g.as_dict(), g.name, np.isin(fine.codes, list(g.cells))))
    return members


def identification_rates(
    probe_embeddings: np.ndarray,
    probe_subjects: Sequence[Any],
    gallery_embeddings: np.ndarray,
    gallery_subjects: Sequence[Any],
    thresholds: Mapping[str, float] | Sequence[float],
    *,
    probe_labels: pd.DataFrame | None = None,
    by: Sequence[Sequence[str]] = (),
    multi_label: MultiLabel = "combined",
    confidence: float = 0.95,
    block_rows: int = 2048,
) -> list[dict[str, Any]]:
    """Rank-1 rate, FNIR and FPIR overall and per probe group.

    Parameters
    ----------
    probe_embeddings, gallery_embeddings
        L2-normalised ``(n, d)`` arrays of the same dimension.
    probe_subjects, gallery_subjects
        Subject identifiers; a probe is mated when its subject appears in the gallery.
    thresholds
        Distance thresholds, as ``{name: distance}`` or a list.
    probe_labels
        Label rows of the probes, for ``by``.
    by
        Groupings of probes (``[("sex",), ("race",)]``).
    multi_label
        Label policy.
    confidence
        Interval coverage.
    block_rows
        Probes per matrix product.

    Returns
    -------
    list of dict
        One row per (group, threshold).

    Raises
    ------
    EvaluationError
        If the gallery is empty.
    ValueError
        On inconsistent shapes.
    """
    pq, scale = quantize(probe_embeddings)
    gq, gscale = quantize(gallery_embeddings)
    if gq.shape[0] == 0:
        raise EvaluationError("the gallery is empty: none of its images yielded a face")
    if pq.shape[1] != gq.shape[1] or scale != gscale:
        raise ValueError(f"probe and gallery dimensions differ: {pq.shape[1]} vs {gq.shape[1]}")
    n_p = pq.shape[0]
    if len(probe_subjects) != n_p or len(gallery_subjects) != gq.shape[0]:
        raise ValueError("need one subject per probe and per gallery embedding")
    named = dict(thresholds) if isinstance(thresholds, Mapping) else {f"{t:g}": float(t) for t in thresholds}
    codes, _ = pd.factorize(pd.Series([str(s) for s in gallery_subjects] + [str(s) for s in probe_subjects]))
    g_codes = np.asarray(codes[: gq.shape[0]])
    p_codes = np.asarray(codes[gq.shape[0] :])
    in_gallery = np.isin(p_codes, g_codes)
    best_mate, best_non = _best_scores(pq, gq, p_codes, g_codes, block_rows)
    rank1 = in_gallery & (best_mate > best_non)
    gallery = {"gallery_size": int(gq.shape[0]), "gallery_subjects": int(len(set(g_codes.tolist())))}
    rows: list[dict[str, Any]] = []
    for grouping, group, name, m in _probe_groups(n_p, probe_labels, by, multi_label):
        mated = m & in_gallery
        n_mated, n_non = int(mated.sum()), int(m.sum())
        hits = int((rank1 & mated).sum())
        for tname, t in named.items():
            tq = distance_to_q(t, scale)
            misses = n_mated - int((mated & rank1 & (best_mate >= tq)).sum())
            false_pos = int((m & (best_non >= tq)).sum())
            rows.append(
                {
                    "grouping": grouping,
                    "group": group,
                    "group_name": name,
                    "threshold_name": tname,
                    "threshold": float(t),
                    "similarity_threshold": 1.0 - float(t),
                    **gallery,
                    **identification_counts(n_mated, hits, misses, n_non, false_pos, confidence),
                }
            )
    return rows
