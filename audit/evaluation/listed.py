"""Verification rates from a system's own scores: the pairs a score file lists, counted as facetrail counts its own.

:func:`listed_pairs` turns a :class:`~audit.evaluation.scorefiles.PairScoreFile` and
its manifest into :class:`ListedPairs` (per pair: both subjects, both fine cells,
genuine or not, the score); :func:`evaluate_listed` evaluates them through the same
steps as facetrail's engine (:func:`audit.evaluation.verification.assemble_report`):
the same cells, counts, subject-bootstrap intervals, disparity and inequity rows,
``low_count`` flags and calibrations, so a vendor's run reads like facetrail's own.

The differences are what a score file is. Only the listed pairs count (a file need
not list every pair). A threshold is in the system's units and direction
(:class:`~audit.evaluation.config.ScoreConvention`): ``score=80`` on similarity scores
means "match iff score >= 80". Calibrated thresholds are midpoints of gaps between
the file's scores (:mod:`audit.evaluation.cutoffs`), so applying the stored threshold
to the file's numbers, read in float64 or float32, reproduces every count; a caller
who knows the scores are less precise than their digits says so (``tolerance``).
Histograms (DET, EER) span the scores' range, or the cosine range when the scores
are cosine similarities (in [-1, 1]) or distances (in [0, 2]), binned as facetrail bins
its own. A 4-column file's enrolled identity takes its subject's labels, which must then
be the same on every image of that subject.

Bootstrap resamples weigh a genuine pair by its subject's weight and an impostor pair
by the product of its two subjects' weights, as for the engine; here the impostor
totals are sums over the listed pairs, aggregated by (cell pair, subject pair) once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.config import EvaluationConfig, ScoreConvention, ThresholdSpec
from audit.evaluation.cutoffs import NoReproducibleCutoff, Precision, margin_window, place_cutoff, threshold_margin
from audit.evaluation.datasets import Dataset
from audit.evaluation.errors import EvaluationError
from audit.evaluation.groups import FineCells, PairCell, fine_cells, normalise_labels, pair_cells
from audit.evaluation.metrics import (
    MAX_HIST_COUNTERS,
    CellCounts,
    ThresholdCalibration,
    _WeightedPairs,
    cell_pair_index,
)
from audit.evaluation.report import EvaluationReport
from audit.evaluation.scorefiles import PairScoreFile, ScoreFileError
from audit.evaluation.verification import Scored, assemble_report

__all__ = ["ListedCounter", "ListedPairs", "evaluate_listed", "listed_pairs"]


@dataclass(frozen=True, eq=False)
class ListedPairs:
    """The pairs of a score file, ready to count (one entry per pair)."""

    subject_a: np.ndarray
    """Subject code of each pair's first side."""
    subject_b: np.ndarray
    """Subject code of its second side."""
    cell_pair: np.ndarray
    """Index of the unordered fine-cell pair of its two sides."""
    genuine: np.ndarray
    """Whether both sides are one person."""
    value: np.ndarray
    """The score, float64, in the system's units."""
    convention: ScoreConvention
    """What the scores are."""
    subjects: tuple[str, ...]
    """Subject names (sorted; the codes index them)."""
    fine: FineCells
    """Fine cells of the sides (images, and a 4-column file's identities)."""
    side_subjects: np.ndarray
    """Subject code per side."""
    side_is_image: np.ndarray
    """Whether each side is an image (not an enrolled identity)."""
    hist_bins: int
    """Histogram bins."""
    impostor_hist: np.ndarray
    """``(P, hist_bins)`` impostor counts per fine-cell pair."""
    genuine_hist: np.ndarray
    """``(P, hist_bins)`` genuine counts per fine-cell pair."""
    edges: np.ndarray
    """Bin edges in "more alike is higher" units (the score; minus a distance)."""

    @property
    def n_subjects(self) -> int:
        """Subjects."""
        return len(self.subjects)

    @property
    def n_genuine(self) -> int:
        """Genuine pairs listed."""
        return int(self.genuine.sum())

    @property
    def n_impostor(self) -> int:
        """Impostor pairs listed."""
        return int(self.genuine.size - self.genuine.sum())

    @property
    def n_images(self) -> int:
        """Images with a score."""
        return int(self.side_is_image.sum())

    def hist_edges(self) -> np.ndarray:
        """Bin edges (see :attr:`edges`)."""
        return self.edges

    @property
    def key(self) -> np.ndarray:
        """Scores in "more alike is higher" units: a pair matches iff ``key >= direction * threshold``."""
        return self.value if self.convention.direction == 1 else -self.value


def _side_labels(dataset: Dataset, sides: np.ndarray, n_images: int, subjects: Sequence[str],
                 columns: Sequence[str]) -> pd.DataFrame:
    """Return the labels of each side: an image's row, or an enrolled identity's subject's (the same on every image)."""
    table = dataset.table.reset_index(drop=True)
    images = sides[sides < n_images]
    out = table.loc[images, list(columns)].reset_index(drop=True) if columns else pd.DataFrame(index=range(images.size))
    models = sides[sides >= n_images] - n_images
    if not models.size:
        return out
    norm = normalise_labels(table, list(columns)) if columns else pd.DataFrame(index=table.index)
    norm[dataset.subject_column] = table[dataset.subject_column]
    rows = []
    for m in models.tolist():
        subject = subjects[m]
        own = norm[norm[dataset.subject_column] == subject]
        row = {}
        for c in columns:
            values = sorted(set(own[c].tolist()))
            if len(values) != 1:
                raise ScoreFileError(
                    f"a 4-column score file compares enrolled identities: identity {subject!r} has several values "
                    f"of {c!r} in the manifest ({values}); group by per-identity labels or use the 5-column format"
                )
            row[c] = values[0]
        rows.append(row)
    return pd.concat([out, pd.DataFrame(rows, columns=list(columns))], ignore_index=True)


def _histograms(key: np.ndarray, genuine: np.ndarray, cell_pair: np.ndarray, n_p: int, bins: int,
                convention: ScoreConvention) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Return score histograms per cell pair; the cosine range for cosine-like scores (binned as the engine bins)."""
    nb = int(bins)
    if n_p * nb > MAX_HIST_COUNTERS:
        nb = MAX_HIST_COUNTERS // max(n_p, 1)
    if nb < 16 or key.size == 0:
        return 0, np.zeros((n_p, 0), dtype=np.int64), np.zeros((n_p, 0), dtype=np.int64), np.zeros(1)
    value = key if convention.direction == 1 else -key
    if convention.kind == "similarity" and value.min() >= -1.0 and value.max() <= 1.0:
        sim, offset = value, 0.0
    elif convention.kind == "distance" and value.min() >= 0.0 and value.max() <= 2.0:
        sim, offset = 1.0 - value, -1.0  # key = -distance = similarity - 1
    else:
        sim, offset = None, 0.0
    if sim is not None:
        b = (sim * (nb / 2.0) + nb / 2.0).astype(np.int64)  # the engine's bins over similarity [-1, 1]
        edges = np.linspace(-1.0, 1.0, nb + 1) + offset
    else:
        lo, hi = float(key.min()), float(key.max())
        span = hi - lo if hi > lo else 1.0
        b = ((key - lo) / span * nb).astype(np.int64)
        edges = lo + span * np.linspace(0.0, 1.0, nb + 1)
    np.clip(b, 0, nb - 1, out=b)
    flat = cell_pair * nb + b
    imp = np.bincount(flat[~genuine], minlength=n_p * nb).reshape(n_p, nb)
    gen = np.bincount(flat[genuine], minlength=n_p * nb).reshape(n_p, nb)
    return nb, imp.astype(np.int64), gen.astype(np.int64), edges


def listed_pairs(
    scores: PairScoreFile,
    dataset: Dataset,
    columns: Sequence[str],
    convention: ScoreConvention,
    hist_bins: int = 2000,
) -> ListedPairs:
    """Map a score file's pairs onto subjects and fine cells over ``columns`` (see the module docstring).

    Raises
    ------
    ScoreFileError
        A 4-column identity whose subject's labels differ between images.
    """
    n_images = len(dataset.table)
    seen = np.zeros(n_images + len(scores.subjects), dtype=bool)
    seen[scores.side_a] = True
    seen[scores.side_b] = True
    used = np.flatnonzero(seen)  # sorted: images, then 4-column identities
    renumber = (np.cumsum(seen, dtype=np.int64) - 1).astype(np.int32)
    side_a, side_b = renumber[scores.side_a], renumber[scores.side_b]
    table = dataset.table.reset_index(drop=True)
    names = table[dataset.subject_column].astype(str).to_numpy()
    side_subject_names = np.array(
        [names[s] if s < n_images else scores.subjects[s - n_images] for s in used.tolist()], dtype=object)
    subjects = tuple(sorted(set(side_subject_names.tolist())))
    code = {s: k for k, s in enumerate(subjects)}
    side_subjects = np.array([code[s] for s in side_subject_names], dtype=np.int32)
    labels = _side_labels(dataset, used, n_images, scores.subjects, columns)  # sorted: images, then identities
    fine = fine_cells(labels, columns)
    pidx = cell_pair_index(fine.n_cells).astype(np.int32)
    cells = fine.codes.astype(np.int32)
    su, sv = side_subjects[side_a], side_subjects[side_b]
    cp = pidx[cells[side_a], cells[side_b]]
    del side_a, side_b
    genuine = su == sv
    key = scores.score if convention.direction == 1 else -scores.score
    n_p = fine.n_cells * (fine.n_cells + 1) // 2
    nb, imp_h, gen_h, edges = _histograms(key, genuine, cp, n_p, hist_bins, convention)
    return ListedPairs(su, sv, cp, genuine, scores.score, convention, subjects, fine, side_subjects,
                       used < n_images, nb, imp_h, gen_h, edges)


class ListedCounter:
    """Counts per fine-cell pair at fixed thresholds for any subject weights (listed pairs only).

    Parameters
    ----------
    pairs
        The listed pairs.
    thresholds
        Thresholds in the system's units.
    """

    def __init__(self, pairs: ListedPairs, thresholds: Sequence[float]) -> None:
        direction = pairs.convention.direction
        tk = np.array([direction * float(t) for t in thresholds], dtype=np.float64)  # match iff key >= tk
        self.k = tk.size
        self.order = np.argsort(tk, kind="stable")
        levels = np.searchsorted(tk[self.order], pairs.key, side="right")
        f = pairs.fine.n_cells
        self.n_p = f * (f + 1) // 2
        self.n_subjects = pairs.n_subjects
        lv = self.k + 1
        g = pairs.genuine
        self._gen = _WeightedPairs(pairs.subject_a[g], None, pairs.cell_pair[g], levels[g], self.n_p, lv)
        imp = ~g
        lo = np.minimum(pairs.subject_a[imp], pairs.subject_b[imp])
        hi = np.maximum(pairs.subject_a[imp], pairs.subject_b[imp])
        p_imp, l_imp = pairs.cell_pair[imp], levels[imp]
        matched = l_imp > 0
        self._imp = _WeightedPairs(lo[matched], hi[matched], p_imp[matched], l_imp[matched], self.n_p, lv)
        self._total = _WeightedPairs(lo, hi, p_imp, np.zeros(lo.size, dtype=np.int64), self.n_p, 1)

    def counts(self, weights: np.ndarray | None = None) -> CellCounts:
        """Return counts for subject weights ``(R, n_subjects)`` (``None``: every subject once)."""
        w = np.ones((1, self.n_subjects)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.n_subjects:
            raise ValueError(f"weights must have shape (R, {self.n_subjects}), got {w.shape}")
        r, lv = w.shape[0], self.k + 1
        gen_l = self._gen.sums(w).reshape(r, self.n_p, lv)
        imp_l = self._imp.sums(w).reshape(r, self.n_p, lv)
        genuine = gen_l.sum(axis=2)
        inv = np.empty(self.k, dtype=np.int64)
        inv[self.order] = np.arange(self.k)
        gen_match = np.flip(np.cumsum(np.flip(gen_l, axis=2), axis=2), axis=2)[:, :, 1:][:, :, inv]
        imp_match = np.flip(np.cumsum(np.flip(imp_l, axis=2), axis=2), axis=2)[:, :, 1:][:, :, inv]
        return CellCounts(
            genuine=genuine,
            false_non_matches=genuine[:, :, None] - gen_match,
            impostor=self._total.sums(w),
            false_matches=imp_match,
        )


def _calibrate(pairs: ListedPairs, target: float, precision: Precision) -> ThresholdCalibration:
    """Return the loosest reproducible threshold on the file's scores with FMR at most ``target``."""
    n = pairs.n_impostor
    if n == 0:
        raise EvaluationError("no impostor pairs in the score file: cannot calibrate")
    k = int(math.floor(target * n * (1 + 1e-12)))
    if k >= n:
        raise EvaluationError(f"target FMR {target:g} admits every one of the {n} impostor pairs; nothing to calibrate")
    direction = pairs.convention.direction
    imp_values = pairs.value[~pairs.genuine]
    top = np.partition(-direction * imp_values, k)[: k + 1] * -direction  # the k + 1 most alike, any order
    try:
        cut = place_cutoff(top, pairs.value[pairs.genuine], k, direction, precision)
    except NoReproducibleCutoff as err:
        raise EvaluationError(f"cannot calibrate to FMR {target:g} on the score file: {err}") from err
    t = cut.threshold
    fnm = int(np.count_nonzero(direction * (pairs.value[pairs.genuine] - t) < 0))
    g = pairs.n_genuine
    return ThresholdCalibration(
        target_fmr=float(target),
        threshold=t,
        similarity_threshold=pairs.convention.similarity_threshold(t),
        false_matches=cut.admitted,
        impostor_pairs=n,
        achieved_fmr=cut.admitted / n,
        false_non_matches=fnm,
        genuine_pairs=g,
        achieved_fnmr=fnm / g if g else math.nan,
        nearest_match=cut.nearest_match,
        nearest_non_match=cut.nearest_non_match,
        threshold_margin=cut.margin,
    )


def evaluate_listed(
    pairs: ListedPairs,
    config: EvaluationConfig,
    *,
    precision: Precision | None = None,
    dataset_fingerprint: str | None = None,
    run: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate a system's listed pairs per group, as facetrail evaluates its own (see the module docstring).

    Parameters
    ----------
    pairs
        The listed pairs (:func:`listed_pairs`).
    config
        What to evaluate: ``score=`` and ``fmr=`` thresholds (no model default: the
        system's is not known to facetrail; name it as ``score=V``).
    precision
        How far a reproduction may move a score (default: the file's numbers are exact).
    dataset_fingerprint
        The manifest's fingerprint.
    run
        More run metadata (the system, the score file).

    Raises
    ------
    EvaluationError
        No impostor pairs, or a calibration target the scores cannot meet.
    ValueError
        A threshold that is a cosine distance (not a ``score=``).
    """
    precision = precision or Precision(0.0)
    specs = config.resolved_thresholds()
    if not specs:
        raise ValueError("no thresholds to evaluate")
    if any(t.distance is not None for t in specs):
        raise ValueError("a system's scores take score=... or fmr=... thresholds, not cosine distances")
    if pairs.n_impostor == 0:
        raise EvaluationError("no impostor pairs in the score file: an evaluation needs pairs of two people")
    resolved: list[ThresholdSpec] = []
    calibrations: list[ThresholdCalibration] = []
    for t in specs:
        if t.source == "calibrated" and t.target_fmr is not None and t.score is None:
            cal = _calibrate(pairs, t.target_fmr, precision)
            calibrations.append(cal)
            resolved.append(t.resolved(cal.threshold, system_score=True))
        else:
            resolved.append(t)
    margins = {t.name: threshold_margin(pairs.value, float(t.score), pairs.convention.direction, precision,
                                        cap=margin_window(precision, float(t.score)))
               for t in resolved if t.score is not None}
    values = [float(t.score) for t in resolved if t.score is not None]
    scored = Scored(ListedCounter(pairs, values), tuple(resolved), tuple(calibrations), margins, pairs.n_subjects,
                    pairs, pairs.convention)
    cells = pair_cells(pairs.fine, pairs.side_subjects, config.by, config.multi_label, config.cross_group)
    image_cells = pairs.fine.codes[pairs.side_is_image]
    cells = [_with_images(c, image_cells) for c in cells]
    counts = {"images": pairs.n_images, "subjects": pairs.n_subjects, "genuine_pairs": pairs.n_genuine,
              "impostor_pairs": pairs.n_impostor}
    report = assemble_report(scored, cells, config, counts, dataset_fingerprint=dataset_fingerprint)
    return report.with_run(dict(run or {})) if run else report


def _with_images(cell: PairCell, image_cells: np.ndarray) -> PairCell:
    """Return the cell with its image count over images only (a 4-column file's identities are not images)."""
    members = cell.group.cells | (cell.other.cells if cell.other is not None else frozenset())
    return replace(cell, images=int(np.isin(image_cells, list(members)).sum()))
