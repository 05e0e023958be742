"""The LFW protocol: 10-fold accuracy on ``pairs.txt`` and per-group rates on the protocol pairs.

:func:`ten_fold_accuracy` follows the protocol: for each fold, the threshold that
maximises accuracy on the other nine folds decides the pairs of that fold.
:func:`lfw_results` scores the protocol pairs of an embedded LFW dataset with the
same exact quantised similarities as :mod:`audit.evaluation.metrics` (a pair with
an image that failed to acquire is decided "no match"), runs the 10 folds (over
all pairs, and again over the pairs whose two images were both acquired, so that
failure to acquire and recognition error are reported apart), and
counts FMR/FNMR at the median fold threshold for everyone and for each label
column's groups (pairs of two people of the same group), with Wilson intervals
over protocol pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.datasets import LfwPair
from audit.evaluation.groups import UNKNOWN, grouping_name
from audit.evaluation.identification import wilson_interval
from audit.evaluation.metrics import quantize
from audit.evaluation.report import json_safe

__all__ = ["lfw_results", "ten_fold_accuracy", "ten_fold_accuracy_both_found"]


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """LFW protocol accuracy: per fold, the threshold maximising accuracy on the other folds.

    Parameters
    ----------
    distances
        Cosine distance per pair (``inf`` for a pair with an image that failed to
        acquire: it is decided "no match").
    same
        Whether each pair is matched.
    folds
        Fold number per pair.

    Returns
    -------
    dict
        ``accuracy`` (mean over folds), ``accuracy_std``, ``fold_accuracies``, ``thresholds``.
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    f = np.asarray(folds)
    accs: list[float] = []
    ths: list[float] = []
    for fold in np.unique(f):
        train = f != fold
        dt, yt = d[train], y[train]
        finite = np.unique(dt[np.isfinite(dt)])
        cands = np.concatenate(
            [
                [-np.inf],
                (finite[:-1] + finite[1:]) / 2.0 if finite.size > 1 else finite,
                finite[-1:] if finite.size else [],
            ]
        )
        order = np.argsort(dt, kind="stable")
        ds_, ys_ = dt[order], yt[order]
        pos_cum = np.concatenate([[0], np.cumsum(ys_)])
        k = np.searchsorted(ds_, cands, side="right")  # pairs called "match" at each candidate
        correct = pos_cum[k] + ((~ys_).sum() - (k - pos_cum[k]))
        best = cands[int(np.argmax(correct))]
        test = ~train
        accs.append(float(np.mean((d[test] <= best) == y[test])))
        ths.append(float(best))
    return {
        "accuracy": float(np.mean(accs)) if accs else math.nan,
        "accuracy_std": float(np.std(accs)) if accs else math.nan,
        "fold_accuracies": accs,
        "thresholds": ths,
    }


def ten_fold_accuracy_both_found(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """LFW protocol accuracy over the pairs whose two images were both acquired.

    The companion of :func:`ten_fold_accuracy`, which scores a pair with an image
    that failed to acquire as "no match": reporting both separates failure to
    acquire from recognition error. Same folds and threshold rule, on the pairs
    with a finite distance only.

    Parameters
    ----------
    distances
        Cosine distance per pair, ``inf`` where an image failed to acquire.
    same
        Whether each pair is matched.
    folds
        Fold number per pair.

    Returns
    -------
    dict
        What :func:`ten_fold_accuracy` returns, computed on the both-found pairs, plus
        ``pairs`` (both-found pairs counted) and ``pairs_excluded`` (pairs left out).
    """
    d = np.asarray(distances, dtype=np.float64)
    found = np.isfinite(d)
    out = ten_fold_accuracy(d[found], np.asarray(same, dtype=bool)[found], np.asarray(folds)[found])
    out["pairs"] = int(found.sum())
    out["pairs_excluded"] = int((~found).sum())
    return out


def _pair_distances(pairs: Sequence[LfwPair], images: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """Exact distance per protocol pair (``inf`` when an image has no embedding)."""
    dist = np.full(len(pairs), np.inf)
    if not len(images):
        return dist
    xq, scale = quantize(embeddings)
    index = {img: i for i, img in enumerate(images)}
    for k, p in enumerate(pairs):
        a, b = index.get(p.image_a), index.get(p.image_b)
        if a is not None and b is not None:
            dist[k] = 1.0 - float(np.dot(xq[a], xq[b])) * scale
    return dist


def _group_rows(
    pairs: Sequence[LfwPair], match: np.ndarray, labels: pd.DataFrame, spec: tuple[str, ...], threshold: float
) -> list[dict[str, Any]]:
    """Protocol-pair counts per group of ``spec`` (pairs whose two images are in the same group)."""

    def group_of(image: str) -> tuple[str, ...]:
        return tuple(str(labels.at[image, c]) if image in labels.index else UNKNOWN for c in spec)

    keyed: dict[tuple[str, ...], list[int]] = {}
    for k, p in enumerate(pairs):
        ga, gb = group_of(p.image_a), group_of(p.image_b)
        if ga != gb:
            continue
        cell = keyed.setdefault(ga, [0, 0, 0, 0])  # genuine, false non-matches, impostor, false matches
        if p.same:
            cell[0] += 1
            cell[1] += not match[k]
        else:
            cell[2] += 1
            cell[3] += bool(match[k])
    rows = []
    for values, (gen, fnm, imp, fm) in sorted(keyed.items()):
        fnmr_lo, fnmr_hi = wilson_interval(fnm, gen)
        fmr_lo, fmr_hi = wilson_interval(fm, imp)
        group = dict(zip(spec, values, strict=True))
        rows.append(
            {
                "grouping": grouping_name(spec),
                "group": group,
                "group_name": ", ".join(f"{c}={v}" for c, v in group.items()) or "all",
                "threshold": threshold,
                "similarity_threshold": 1.0 - threshold,
                "genuine_pairs": gen,
                "false_non_matches": fnm,
                "fnmr": fnm / gen if gen else None,
                "fnmr_lo": fnmr_lo,
                "fnmr_hi": fnmr_hi,
                "impostor_pairs": imp,
                "false_matches": fm,
                "fmr": fm / imp if imp else None,
                "fmr_lo": fmr_lo,
                "fmr_hi": fmr_hi,
                "interval": "Wilson over protocol pairs",
            }
        )
    return rows


def lfw_results(
    pairs: Sequence[LfwPair],
    images: Sequence[str],
    embeddings: np.ndarray,
    labels: pd.DataFrame,
    label_columns: Sequence[str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the LFW protocol on embedded images.

    Parameters
    ----------
    pairs
        The protocol pairs (``Dataset.pairs``).
    images
        The ``image`` of each embedding, in the same order.
    embeddings
        ``(len(images), d)`` L2-normalised embeddings of the acquired images.
    labels
        Label table indexed by ``image`` (every image of the dataset, acquired or not).
    label_columns
        Columns to report per-group rows for (one grouping per column).

    Returns
    -------
    tuple
        The 10-fold result (``accuracy``, ``accuracy_std``, ``fold_accuracies``,
        ``thresholds``, the median fold ``threshold``, ``pairs``,
        ``pairs_with_failed_image``, and ``accuracy_both_found`` / ``accuracy_both_found_std``
        over the ``pairs_both_found``) and per-group rows at that threshold (everyone
        first), JSON-safe.
    """
    dist = _pair_distances(pairs, images, embeddings)
    same = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold for p in pairs])
    acc = ten_fold_accuracy(dist, same, folds)
    both = ten_fold_accuracy_both_found(dist, same, folds)
    threshold = float(np.median(acc["thresholds"])) if acc["thresholds"] else math.nan
    ten_fold = {
        "threshold": threshold,
        **acc,
        "pairs": len(pairs),
        "pairs_with_failed_image": int(np.isinf(dist).sum()),
        "accuracy_both_found": both["accuracy"],
        "accuracy_both_found_std": both["accuracy_std"],
        "pairs_both_found": both["pairs"],
    }
    match = dist <= threshold
    rows: list[dict[str, Any]] = []
    for spec in [(), *((c,) for c in label_columns)]:
        rows += _group_rows(pairs, match, labels, spec, threshold)
    return json_safe(ten_fold), [json_safe(r) for r in rows]
