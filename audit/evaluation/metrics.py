"""Exact pairwise verification counts: every genuine pair and every impostor pair.

Scores
------
The score of two embeddings is their cosine similarity; a pair *matches* at a
decision threshold ``t`` (a cosine **distance**) iff ``1 - similarity <= t``.

To make every count reproducible to the pair, whatever the BLAS, the chunking or
the order of the two images, embeddings are first quantised to integers
(``round(x * 2**b)``, :data:`QUANT_BITS` ``b = 26``) and scores are the exact
integer dot products ``q``, computed with float64 matrix products. Rows are unit
vectors (checked to 1e-3), so by Cauchy-Schwarz every product and every partial sum
is an integer of magnitude below ``1.01 * 2**52 < 2**53``: exact in float64, whatever
the summation order. The similarity is ``q * 2**(-2b)`` and ``1 - similarity`` is
exact in float64, so a brute-force double loop evaluating ``1 - q_ij * scale <= t``
gives exactly our counts. The quantisation moves a similarity by at most
``2**-b * (|x|_1 + |y|_1) / 2 + d * 2**(-2b) / 4`` (about ``1.3e-7`` for 128-d unit
vectors): :func:`quantisation_error` bounds it for a set of embeddings, and
:mod:`audit.evaluation.cutoffs` keeps every reported threshold further than that
(plus float32's own error) from every observed score, so the same counts come out
of the engine's float32 arithmetic and of float64.

One pass
--------
:func:`score_pairs` walks the upper triangle of the score matrix in row blocks and
keeps, exactly:

* every genuine pair (same subject), with its score;
* every impostor pair whose score is at or above a cut: the loosest decision
  threshold asked for, lowered if needed so that the top ``keep_top`` impostor
  scores are kept (these are the order statistics that calibrated thresholds need);
* the total number of impostor pairs per pair of *fine cells* (joint label values),
  which follows from the image counts without scoring;
* histograms of impostor and genuine scores per pair of fine cells (DET curves,
  EER and score distributions, at the histogram's resolution).

Everything else (counts per group at any threshold above the cut, calibration,
bootstrap resamples of subjects) is computed from those lists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audit.evaluation.cutoffs import NoReproducibleCutoff, Precision, float32_dot_error, place_cutoff
from audit.evaluation.errors import EvaluationError

__all__ = [
    "PairScores",
    "CellCounts",
    "ThresholdCalibration",
    "QUANT_BITS",
    "quantisation_error",
    "quantize",
    "score_pairs",
    "distance_to_q",
    "q_to_distance",
    "cell_pair_index",
    "cell_counts",
    "calibrate_threshold",
]

#: Default number of histogram bins over similarity [-1, 1].
DEFAULT_HIST_BINS = 2000
#: Largest histogram (cells x cells x bins) kept, in counters.
MAX_HIST_COUNTERS = 1 << 24
#: Default cap on stored impostor pairs (about 16 bytes each).
DEFAULT_MAX_STORED = 40_000_000
#: Bits of the integer quantisation: every product and partial sum of unit vectors stays below 2**53.
QUANT_BITS = 26


def quantize(embeddings: np.ndarray, *, check_norm: bool = True) -> tuple[np.ndarray, float]:
    """Quantise embeddings to integer-valued float64 so that dot products are exact.

    Parameters
    ----------
    embeddings
        ``(n, d)`` array of L2-normalised vectors.
    check_norm
        Refuse vectors whose norm is not 1 (within 1e-3); without it, only norms above
        1 (+1e-3) are refused (the exactness bound needs them).

    Returns
    -------
    tuple
        ``(xq, scale)``: integer-valued float64 array and the factor turning an
        integer dot product into a similarity.

    Raises
    ------
    ValueError
        If the array is not 2-D, has non-finite values or un-normalised rows.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or infinite values")
    if len(x):
        norms = np.linalg.norm(x, axis=1)
        off = np.abs(norms - 1.0) > 1e-3 if check_norm else norms > 1.0 + 1e-3
        bad = np.flatnonzero(off)
        if bad.size:  # exactness needs norms of at most 1 (+1e-3): see the module docstring
            raise ValueError(f"embeddings must be L2-normalised; row {int(bad[0])} has norm {norms[bad[0]]:.4f}")
    return np.rint(x * float(2**QUANT_BITS)), 2.0 ** (-2 * QUANT_BITS)


def quantisation_error(embeddings: np.ndarray) -> float:
    """Largest possible difference between a quantised similarity and the exact one, for these embeddings.

    With ``x = (xq + e) * 2**-b`` and ``|e_i| <= 1/2``: ``|x.y - xq.yq * 2**(-2b)| <=
    2**-b * (|x|_1 + |y|_1) / 2 + d * 2**(-2b) / 4``, taken at the largest L1 norm.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or not len(x):
        return 0.0
    l1 = float(np.abs(x).sum(axis=1).max())
    b = float(2**-QUANT_BITS)
    return float((b * l1 + x.shape[1] * b * b / 4.0) * (1.0 + 1e-9))


def distance_to_q(threshold: float, scale: float) -> int:
    """Smallest integer score ``q`` with ``1 - q * scale <= threshold`` (exact)."""
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    q = math.ceil((1.0 - threshold) / scale)
    while 1.0 - (q - 1) * scale <= threshold:
        q -= 1
    while not (1.0 - q * scale <= threshold):
        q += 1
    return int(q)


def q_to_distance(q: int, scale: float) -> float:
    """Return the distance ``1 - q * scale`` of integer score ``q`` (exact in float64)."""
    return 1.0 - float(q) * scale


def cell_pair_index(n_cells: int) -> np.ndarray:
    """``(F, F)`` symmetric matrix of the index of the unordered cell pair ``{a, b}``."""
    f = n_cells
    out = np.empty((f, f), dtype=np.int64)
    k = 0
    for a in range(f):
        for b in range(a, f):
            out[a, b] = out[b, a] = k
            k += 1
    return out


@dataclass(frozen=True, eq=False)
class PairScores:
    """What one pass over all pairs keeps (see the module docstring).

    Arrays are indexed by image (``0..n_images-1``, the order of the embeddings).
    """

    n_images: int
    """Number of images (acquired embeddings)."""
    scale: float
    """Similarity of integer score ``q`` is ``q * scale``."""
    subject_codes: np.ndarray
    """``(n,)`` int: subject of each image, an index into :attr:`subjects`."""
    subjects: tuple[str, ...]
    """Subject identifiers."""
    cell_codes: np.ndarray
    """``(n,)`` int: fine cell (joint label values) of each image."""
    n_cells: int
    """Number of fine cells."""
    genuine_i: np.ndarray
    """First image of each genuine pair (``i < j``)."""
    genuine_j: np.ndarray
    """Second image of each genuine pair."""
    genuine_q: np.ndarray
    """Integer score of each genuine pair."""
    impostor_i: np.ndarray
    """First image of each stored impostor pair (``i < j``), by decreasing score."""
    impostor_j: np.ndarray
    """Second image of each stored impostor pair."""
    impostor_q: np.ndarray
    """Integer score of each stored impostor pair, decreasing."""
    impostor_cutoff_q: int
    """Every impostor pair with ``q >= impostor_cutoff_q`` is stored."""
    n_impostor: int
    """Total number of impostor pairs."""
    hist_bins: int
    """Histogram bins over similarity [-1, 1] (0 when there were too many cells to keep them)."""
    impostor_hist: np.ndarray
    """``(P, hist_bins)`` impostor score counts per unordered fine-cell pair."""
    genuine_hist: np.ndarray
    """``(P, hist_bins)`` genuine score counts per unordered fine-cell pair."""
    score_error: float = 0.0
    """How far a similarity recomputed from the embeddings (in float32 or float64, any order) may be
    from the exact quantised one: :func:`quantisation_error` plus float32's dot-product bound."""

    @property
    def n_genuine(self) -> int:
        """Total number of genuine pairs."""
        return int(self.genuine_q.size)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subjects)

    @property
    def min_distance_threshold(self) -> float:
        """Loosest distance threshold at which impostor counts are exact."""
        return q_to_distance(self.impostor_cutoff_q, self.scale) if self.impostor_q.size else -math.inf

    def hist_edges(self) -> np.ndarray:
        """Similarity edges of the histogram bins."""
        return np.linspace(-1.0, 1.0, self.hist_bins + 1)


def _bins(qf: np.ndarray, scale: float, nb: int) -> np.ndarray:
    """Histogram bin of float64 integer scores (same operations everywhere: deterministic)."""
    b = (qf * (scale * nb / 2.0) + nb / 2.0).astype(np.int64)
    np.clip(b, 0, nb - 1, out=b)
    return b


def _add_counts(hist: np.ndarray, idx: np.ndarray, sign: int = 1) -> None:
    c = np.bincount(idx.ravel())
    if sign > 0:
        hist[: c.size] += c
    else:
        hist[: c.size] -= c


def _codes(
    n: int, subject_codes: np.ndarray, cell_codes: np.ndarray | None, subjects: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, int, tuple[str, ...]]:
    """Check the per-image codes; return subject codes, cell codes, number of cells and subject names."""
    subj = np.asarray(subject_codes, dtype=np.int64)
    if subj.shape != (n,):
        raise ValueError(f"subject_codes must have shape ({n},), got {subj.shape}")
    if n and subj.min() < 0:
        raise ValueError("subject codes must be non-negative")
    n_subj = int(subj.max()) + 1 if n else 0
    cells = np.zeros(n, dtype=np.int64) if cell_codes is None else np.asarray(cell_codes, dtype=np.int64)
    if cells.shape != (n,):
        raise ValueError(f"cell_codes must have shape ({n},), got {cells.shape}")
    f = int(cells.max()) + 1 if n else 1
    names = tuple(str(s) for s in (subjects if subjects is not None else range(n_subj)))
    if len(names) < n_subj:
        raise ValueError("fewer subject names than subject codes")
    return subj, cells, f, names


def _genuine_pairs(xq: np.ndarray, subj: np.ndarray, n_subjects: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-subject pair ``(i < j)`` and its exact integer score."""
    order = np.argsort(subj, kind="stable")
    sizes = np.bincount(subj, minlength=n_subjects)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    gi_parts: list[np.ndarray] = []
    gj_parts: list[np.ndarray] = []
    for s in np.flatnonzero(sizes >= 2):
        idx = order[starts[s] : starts[s + 1]]
        a, b = np.triu_indices(idx.size, 1)
        gi_parts.append(idx[a])
        gj_parts.append(idx[b])
    gi = np.concatenate(gi_parts) if gi_parts else np.zeros(0, dtype=np.int64)
    gj = np.concatenate(gj_parts) if gj_parts else np.zeros(0, dtype=np.int64)
    gq = np.einsum("ij,ij->i", xq[gi], xq[gj]) if gi.size else np.zeros(0)
    return gi.astype(np.int64), gj.astype(np.int64), gq


class _Histograms:
    """Score histograms per ordered fine-cell pair, filled block by block, folded at the end."""

    def __init__(self, cells: np.ndarray, n_cells: int, hist_bins: int, scale: float) -> None:
        f = n_cells
        nb = int(hist_bins)
        if f * f * nb > MAX_HIST_COUNTERS:
            nb = MAX_HIST_COUNTERS // (f * f)
        if nb < 16:
            nb = 0
        self.nb, self.f, self.cells, self.scale = nb, f, cells, scale
        self.flat = np.zeros(f * f * nb, dtype=np.int64)
        self._rowoff = cells * (f * nb)
        self._coloff = cells * nb

    def add_block(self, block: np.ndarray, r0: int, tri: tuple[np.ndarray, np.ndarray]) -> None:
        """Count the scores of rows ``r0..`` against columns ``r0..`` (the square part's lower triangle removed)."""
        if not self.nb:
            return
        r1 = r0 + block.shape[0]
        idx = _bins(block, self.scale, self.nb)
        idx += self._rowoff[r0:r1, None] + self._coloff[None, r0:]
        _add_counts(self.flat, idx)
        _add_counts(self.flat, idx[tri], sign=-1)

    def fold(self, gi: np.ndarray, gj: np.ndarray, gq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Impostor and genuine histograms per unordered fine-cell pair, ``(P, nb)`` each."""
        f, nb = self.f, self.nb
        n_pairs = f * (f + 1) // 2
        if not nb:
            return np.zeros((n_pairs, 0), dtype=np.int64), np.zeros((n_pairs, 0), dtype=np.int64)
        pidx = cell_pair_index(f)
        gen_flat = np.zeros_like(self.flat)
        if gi.size:
            _add_counts(gen_flat, self.cells[gi] * (f * nb) + self.cells[gj] * nb + _bins(gq, self.scale, nb))
        imp3 = (self.flat - gen_flat).reshape(f, f, nb)
        gen3 = gen_flat.reshape(f, f, nb)
        imp_h = np.zeros((n_pairs, nb), dtype=np.int64)
        gen_h = np.zeros((n_pairs, nb), dtype=np.int64)
        for ca in range(f):
            for cb in range(f):
                imp_h[pidx[ca, cb]] += imp3[ca, cb]
                gen_h[pidx[ca, cb]] += gen3[ca, cb]
        return imp_h, gen_h


class _ImpostorKeeper:
    """Keeps every impostor pair at or above the cut, block by block (see :func:`score_pairs`).

    The cut is the tighter of the loosest fixed threshold and the running ``keep_top``-th
    highest impostor score seen so far; until ``keep_top`` scores are buffered, a block
    contributes its own top ``keep_top`` valid impostor scores.
    """

    def __init__(
        self, subj: np.ndarray, scale: float, keep_thresholds: Sequence[float], keep_top: int, max_stored: int
    ) -> None:
        self.subj = subj
        self.keep_thresholds = tuple(keep_thresholds)
        self.fixed_cut = float(min(distance_to_q(t, scale) for t in keep_thresholds)) if keep_thresholds else math.inf
        self.keep_top = keep_top
        self.running = -math.inf if keep_top > 0 else math.inf
        self.max_stored = max_stored
        self.ci: list[np.ndarray] = []
        self.cj: list[np.ndarray] = []
        self.cq: list[np.ndarray] = []
        self.buffered = 0

    @property
    def cut(self) -> float:
        """Scores below this are not kept."""
        return min(self.fixed_cut, self.running)

    def _first_top(self, block: np.ndarray, r0: int, tri: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Return the block's own top ``keep_top`` valid impostor scores (before any running cut exists)."""
        valid = block.copy()
        valid[tri] = -math.inf
        valid[self.subj[r0 : r0 + block.shape[0], None] == self.subj[None, r0:]] = -math.inf
        flat = valid.ravel()
        local_cut = -math.inf
        if int(np.count_nonzero(flat > -math.inf)) > self.keep_top:
            local_cut = float(np.partition(flat, flat.size - self.keep_top)[flat.size - self.keep_top])
        local_cut = min(local_cut, self.fixed_cut)
        found = np.nonzero(valid >= local_cut) if local_cut > -math.inf else np.nonzero(valid > -math.inf)
        return found[0], found[1]

    def add_block(self, block: np.ndarray, r0: int, tri: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep the block's impostor pairs at or above the cut, then tighten the cut.

        Raises
        ------
        EvaluationError
            When more than ``max_stored`` pairs would have to be kept.
        """
        cut = self.cut
        if cut == math.inf:
            return
        if cut == -math.inf:
            rr, cc = self._first_top(block, r0, tri)
        else:
            rr, cc = np.nonzero(block >= cut)
            keep = cc > rr  # drop the lower triangle and diagonal of the square part
            keep &= self.subj[rr + r0] != self.subj[cc + r0]
            rr, cc = rr[keep], cc[keep]
        if rr.size:
            self.ci.append((rr + r0).astype(np.int64))
            self.cj.append((cc + r0).astype(np.int64))
            self.cq.append(block[rr, cc])
            self.buffered += rr.size
        if self.keep_top and self.buffered >= self.keep_top:
            self._tighten()
        if self.buffered > self.max_stored:
            loosest = max(self.keep_thresholds) if self.keep_thresholds else "n/a"
            raise EvaluationError(
                f"more than {self.max_stored:,} impostor pairs match the loosest threshold (distance {loosest}); "
                "use a tighter threshold or raise max_stored"
            )

    def _tighten(self) -> None:
        allq = np.concatenate(self.cq)
        top = float(np.partition(allq, allq.size - self.keep_top)[allq.size - self.keep_top])
        self.running = max(self.running, top)
        if self.buffered > 2 * self.keep_top:
            sel = allq >= self.cut
            self.ci, self.cj = [np.concatenate(self.ci)[sel]], [np.concatenate(self.cj)[sel]]
            self.cq = [allq[sel]]
            self.buffered = int(sel.sum())

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Kept pairs by decreasing score (ties by ``i``, ``j``) and the cut they are exact above."""
        final_cut = self.cut
        if not self.ci:
            cutoff = int(final_cut) if math.isfinite(final_cut) else _NO_CUT
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), cutoff
        ii, jj, qq = np.concatenate(self.ci), np.concatenate(self.cj), np.concatenate(self.cq)
        if final_cut > -math.inf:
            sel = qq >= final_cut
            ii, jj, qq = ii[sel], jj[sel], qq[sel]
        else:
            final_cut = float(qq.min()) if qq.size else math.inf
        o = np.lexsort((jj, ii, -qq))
        return ii[o], jj[o], qq[o], int(final_cut) if math.isfinite(final_cut) else _NO_CUT


#: Cut of a pass that kept no impostor pair: above every possible score.
_NO_CUT = 1 << 62


def score_pairs(
    embeddings: np.ndarray,
    subject_codes: np.ndarray,
    cell_codes: np.ndarray | None = None,
    *,
    subjects: Sequence[str] | None = None,
    keep_thresholds: Sequence[float] = (),
    keep_top: int = 0,
    hist_bins: int = DEFAULT_HIST_BINS,
    block_rows: int | None = None,
    max_stored: int = DEFAULT_MAX_STORED,
) -> PairScores:
    """Score all pairs once and keep what exact rates need.

    Parameters
    ----------
    embeddings
        ``(n, d)`` L2-normalised embeddings.
    subject_codes
        ``(n,)`` integer subject code per image (``0..S-1``).
    cell_codes
        ``(n,)`` integer fine cell per image (default: all in cell 0).
    subjects
        Subject identifiers for the codes (default ``"0", "1", ...``).
    keep_thresholds
        Distance thresholds at which impostor counts must be exact: every impostor
        pair matching the loosest of them is stored.
    keep_top
        Keep at least the ``keep_top`` highest impostor scores (for calibration).
    hist_bins
        Histogram resolution over similarity [-1, 1]; reduced when there are many cells.
    block_rows
        Rows per matrix product (default: about 8 million scores per block).
    max_stored
        Refuse to store more impostor pairs than this (a threshold far too loose).

    Raises
    ------
    ValueError
        On inconsistent shapes.
    EvaluationError
        When more than ``max_stored`` impostor pairs would have to be stored.
    """
    xq, scale = quantize(embeddings)
    n = xq.shape[0]
    error = quantisation_error(embeddings) + float32_dot_error(xq.shape[1]) if n else 0.0
    subj, cells, f, names = _codes(n, subject_codes, cell_codes, subjects)
    gi, gj, gq = _genuine_pairs(xq, subj, len(names))
    n_impostor = n * (n - 1) // 2 - int(gi.size)
    histograms = _Histograms(cells, f, hist_bins, scale)
    keeper = _ImpostorKeeper(subj, scale, keep_thresholds, int(max(0, min(keep_top, n_impostor))), max_stored)
    rows = block_rows or max(32, min(4096, (1 << 23) // max(n, 1)))
    for r0 in range(0, n, rows):
        block = xq[r0 : min(n, r0 + rows)] @ xq[r0:].T  # (b, n - r0), exact integers
        tri = np.tril_indices(block.shape[0])
        histograms.add_block(block, r0, tri)
        keeper.add_block(block, r0, tri)
        del block
    ii, jj, qq, cutoff_q = keeper.result()
    imp_h, gen_h = histograms.fold(gi, gj, gq)
    return PairScores(
        n_images=n,
        scale=scale,
        subject_codes=subj,
        subjects=names,
        cell_codes=cells,
        n_cells=f,
        genuine_i=gi,
        genuine_j=gj,
        genuine_q=gq.astype(np.int64),
        impostor_i=ii,
        impostor_j=jj,
        impostor_q=qq.astype(np.int64),
        impostor_cutoff_q=cutoff_q,
        n_impostor=n_impostor,
        hist_bins=histograms.nb,
        impostor_hist=imp_h,
        genuine_hist=gen_h,
        score_error=error,
    )


@dataclass(frozen=True, eq=False)
class CellCounts:
    """Pair counts per unordered fine-cell pair, possibly for many subject-weight resamples.

    Shapes: ``(R, P)`` for totals and ``(R, P, K)`` per threshold, where ``R`` is the
    number of weight vectors (1 for the point estimate), ``P`` the number of fine-cell
    pairs and ``K`` the number of thresholds (in the order given).
    """

    genuine: np.ndarray
    """Genuine pairs per cell pair."""
    false_non_matches: np.ndarray
    """Genuine pairs that do not match, per threshold."""
    impostor: np.ndarray
    """Impostor pairs per cell pair."""
    false_matches: np.ndarray
    """Impostor pairs that match, per threshold."""


def _threshold_levels(tq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(tq, kind="stable")
    return order, tq[order]


def _aggregate_entries(keys: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Return the unique rows of stacked integer columns with their multiplicity (sorted, first column leading)."""
    if keys[0].size == 0:
        return [k[:0] for k in keys], np.zeros(0)
    sizes = [int(k.max()) + 1 for k in keys]
    if all(int(k.min()) >= 0 for k in keys) and math.prod(sizes) < (1 << 62):
        # one int64 key per row: a single sort (np.unique) instead of a lexsort of every column
        combined = np.zeros(keys[0].size, dtype=np.int64)
        for k, size in zip(keys, sizes, strict=True):
            combined = combined * size + k.astype(np.int64)
        uniq, counts = np.unique(combined, return_counts=True)
        out: list[np.ndarray] = []
        for size in reversed(sizes):
            uniq, rest = np.divmod(uniq, size)
            out.append(rest)
        return out[::-1], counts.astype(np.float64)
    o = np.lexsort(tuple(reversed(keys)))
    sk = [k[o] for k in keys]
    change = np.zeros(sk[0].size, dtype=bool)
    change[0] = True
    for k in sk:
        change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    counts = np.diff(np.append(starts, sk[0].size)).astype(np.float64)
    return [k[starts] for k in sk], counts


def _exact_float32(weights: np.ndarray, values: np.ndarray, *, squared: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weights and values as float32 when every product of them is an integer float32 holds exactly.

    Bootstrap weights are small integers, so ``w_u * value * w_v`` is exact in float32
    (below ``2**24``) and the sums, accumulated in float64, are the same numbers as in
    float64 throughout, at half the memory traffic of the gathers. Otherwise float64.
    """
    w = np.asarray(weights, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if not w.size or not v.size:
        return w, v
    w_max, v_max = float(np.abs(w).max()), float(np.abs(v).max())
    bound = (w_max * w_max if squared else w_max) * v_max
    if bound < 2.0**24 and np.array_equal(w, np.rint(w)) and np.array_equal(v, np.rint(v)):
        return w.astype(np.float32), v.astype(np.float32)
    return w, v


class _WeightedPairs:
    """Pairs aggregated by (subject u, subject v, cell pair, level), ready for weighted sums."""

    def __init__(
        self, u: np.ndarray, v: np.ndarray | None, p: np.ndarray, level: np.ndarray, n_keys_p: int, n_levels: int
    ) -> None:
        cols = [p, level, u] + ([v] if v is not None else [])
        agg, self.count = _aggregate_entries(cols)
        self.p, self.level, self.u = agg[0], agg[1], agg[2]
        self.v = agg[3] if v is not None else None
        self.key = self.p * n_levels + self.level  # sorted already (p, level leading)
        if self.key.size:
            change = np.concatenate([[True], self.key[1:] != self.key[:-1]])
            self.starts = np.flatnonzero(change)
            self.ukeys = self.key[self.starts]
        else:
            self.starts = np.zeros(0, dtype=np.int64)
            self.ukeys = np.zeros(0, dtype=np.int64)
        self.n_out = n_keys_p * n_levels

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """``(R, P * n_levels)`` weighted counts."""
        r = weights.shape[0]
        out = np.zeros((r, self.n_out))
        e = self.count.size
        if e == 0:
            return out
        w_all, count = _exact_float32(weights, self.count, squared=self.v is not None)
        step = max(1, (1 << 24) // e)
        for s in range(0, r, step):
            w = w_all[s : s + step]
            vals = np.take(w, self.u, axis=1)
            vals *= count
            if self.v is not None:
                vals *= np.take(w, self.v, axis=1)
            out[s : s + step, self.ukeys] = np.add.reduceat(vals, self.starts, axis=1, dtype=np.float64)
        return out


class _SparseSum:
    """``out[r, k] = sum of w[r, row] * value`` over the entries ``(row, k, value)``: a sparse product."""

    def __init__(self, rows: np.ndarray, targets: np.ndarray, values: np.ndarray, n_out: int) -> None:
        order = np.argsort(targets, kind="stable")
        self.rows, self.values = rows[order], values[order].astype(np.float64)
        sorted_targets = targets[order]
        if sorted_targets.size:
            self.starts = np.flatnonzero(np.concatenate([[True], sorted_targets[1:] != sorted_targets[:-1]]))
        else:
            self.starts = np.zeros(0, dtype=np.int64)
        self.targets = sorted_targets[self.starts]
        self.n_out = n_out

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """``(R, n_out)`` weighted sums for weights ``(R, n_rows)``."""
        out = np.zeros((weights.shape[0], self.n_out))
        e = self.rows.size
        if e == 0:
            return out
        w_all, values = _exact_float32(weights, self.values, squared=False)
        step = max(1, (1 << 24) // e)
        for s in range(0, weights.shape[0], step):
            vals = np.take(w_all[s : s + step], self.rows, axis=1)
            vals *= values
            out[s : s + step, self.targets] = np.add.reduceat(vals, self.starts, axis=1, dtype=np.float64)
        return out


def _self_products(
    subjects: np.ndarray, cells: np.ndarray, counts: np.ndarray, pidx: np.ndarray, n_pairs: int
) -> _SparseSum:
    """Per subject and unordered cell pair, the product of its image counts in the two cells.

    ``subjects``/``cells``/``counts`` are the (subject, cell, images) entries sorted by subject.
    """
    rows: list[int] = []
    targets: list[int] = []
    values: list[float] = []
    bounds: list[int] = []
    if subjects.size:
        bounds = np.flatnonzero(np.concatenate([[True], subjects[1:] != subjects[:-1], [True]])).tolist()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        s, cs, vs = int(subjects[a]), cells[a:b].tolist(), counts[a:b].tolist()
        for x in range(len(cs)):
            for y in range(x, len(cs)):
                rows.append(s)
                targets.append(int(pidx[cs[x], cs[y]]))
                values.append(vs[x] * vs[y])
    return _SparseSum(np.asarray(rows, dtype=np.int64), np.asarray(targets, dtype=np.int64),
                      np.asarray(values, dtype=np.float64), n_pairs)


class CellCounter:
    """Counts per fine-cell pair at fixed thresholds, for any subject weights.

    Parameters
    ----------
    scores
        The result of :func:`score_pairs`.
    thresholds
        Distance thresholds (any order). Impostor counts need every threshold to be at
        most the loosest stored one (:attr:`PairScores.min_distance_threshold`).

    Raises
    ------
    ValueError
        If a threshold is looser than the impostor pairs that were stored.
    """

    def __init__(self, scores: PairScores, thresholds: Sequence[float]) -> None:
        self.scores = scores
        self.thresholds = tuple(float(t) for t in thresholds)
        tq = np.array([distance_to_q(t, scores.scale) for t in self.thresholds], dtype=np.int64)
        loose = [t for t, q in zip(self.thresholds, tq, strict=True) if q < scores.impostor_cutoff_q]
        if loose:
            raise ValueError(
                f"threshold(s) {loose} are looser than the impostor pairs kept in the scoring pass "
                f"(loosest exact distance: {scores.min_distance_threshold:.6g}); rescore with these "
                "thresholds in keep_thresholds"
            )
        self.k = len(tq)
        self.order, self.tq_sorted = _threshold_levels(tq)
        f = scores.n_cells
        self.n_p = f * (f + 1) // 2
        pidx = cell_pair_index(f)
        cells = scores.cell_codes
        subj = scores.subject_codes
        lv = self.k + 1
        g_level = np.searchsorted(self.tq_sorted, scores.genuine_q, side="right")
        g_p = pidx[cells[scores.genuine_i], cells[scores.genuine_j]]
        self._gen = _WeightedPairs(subj[scores.genuine_i], None, g_p, g_level, self.n_p, lv)
        i_level = np.searchsorted(self.tq_sorted, scores.impostor_q, side="right")
        keep = i_level > 0
        ii, jj = scores.impostor_i[keep], scores.impostor_j[keep]
        i_p = pidx[cells[ii], cells[jj]]
        su, sv = subj[ii], subj[jj]
        lo, hi = np.minimum(su, sv), np.maximum(su, sv)
        self._imp = _WeightedPairs(lo, hi, i_p, i_level[keep], self.n_p, lv)
        # subject x cell image counts, and the same-subject products per cell pair
        n_s = max(scores.n_subjects, int(subj.max()) + 1 if subj.size else 0)
        self.n_subjects = n_s
        (s_of, c_of), per = _aggregate_entries([subj, cells])
        self._subject_cells = _SparseSum(s_of, c_of, per, f)
        self._self_products = _self_products(s_of, c_of, per, pidx, self.n_p)
        self._pa = np.array([a for a in range(f) for b in range(a, f)], dtype=np.int64)
        self._pb = np.array([b for a in range(f) for b in range(a, f)], dtype=np.int64)

    def counts(self, weights: np.ndarray | None = None) -> CellCounts:
        """Return counts for subject weights ``(R, n_subjects)`` (``None``: every subject once).

        Parameters
        ----------
        weights
            Non-negative subject weights, e.g. multinomial bootstrap counts.
        """
        if weights is None:
            weights = np.ones((1, self.n_subjects))
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.n_subjects:
            raise ValueError(f"weights must have shape (R, {self.n_subjects}), got {w.shape}")
        r, lv = w.shape[0], self.k + 1
        gen_l = self._gen.sums(w).reshape(r, self.n_p, lv)
        imp_l = self._imp.sums(w).reshape(r, self.n_p, lv)
        genuine = gen_l.sum(axis=2)
        # a pair with level L matches the L loosest thresholds
        gen_match_sorted = np.flip(np.cumsum(np.flip(gen_l, axis=2), axis=2), axis=2)[:, :, 1:]
        imp_match_sorted = np.flip(np.cumsum(np.flip(imp_l, axis=2), axis=2), axis=2)[:, :, 1:]
        inv = np.empty(self.k, dtype=np.int64)
        inv[self.order] = np.arange(self.k)
        gen_match = gen_match_sorted[:, :, inv]
        imp_match = imp_match_sorted[:, :, inv]
        t = self._subject_cells.sums(w)  # (R, F): weighted images per cell
        self_terms = self._self_products.sums(w * w)  # (R, P)
        prod = t[:, self._pa] * t[:, self._pb]
        diag = self._pa == self._pb
        impostor = prod - self_terms
        impostor[:, diag] /= 2.0
        return CellCounts(
            genuine=genuine,
            false_non_matches=genuine[:, :, None] - gen_match,
            impostor=impostor,
            false_matches=imp_match,
        )


def cell_counts(scores: PairScores, thresholds: Sequence[float]) -> CellCounts:
    """Exact counts per fine-cell pair at ``thresholds`` (every subject weighted once)."""
    return CellCounter(scores, thresholds).counts()


@dataclass(frozen=True)
class ThresholdCalibration:
    """A distance threshold calibrated to a target false-match rate on one set of pairs."""

    target_fmr: float
    """The false-match rate asked for."""
    threshold: float
    """The threshold (a cosine distance for facetrail's engine; a system's own score for a score
    file): the midpoint of the loosest gap between observed scores whose FMR does not exceed
    the target and that every reproduction decides the same way (:mod:`audit.evaluation.cutoffs`)."""
    similarity_threshold: float
    """The same threshold as a similarity (``1 - threshold``; a score file's similarity threshold
    itself, NaN for distance scores)."""
    false_matches: int
    """Impostor pairs matching at the threshold."""
    impostor_pairs: int
    """All impostor pairs."""
    achieved_fmr: float
    """``false_matches / impostor_pairs`` (at most ``target_fmr``)."""
    false_non_matches: int
    """Genuine pairs not matching at the threshold."""
    genuine_pairs: int
    """All genuine pairs."""
    achieved_fnmr: float
    """``false_non_matches / genuine_pairs`` (NaN without genuine pairs)."""
    nearest_match: float = math.nan
    """The observed score closest to the threshold that matches (the last pair that must)."""
    nearest_non_match: float = math.nan
    """The observed score closest to the threshold that does not match (the next one)."""
    threshold_margin: float = math.nan
    """Distance from the threshold to the nearer of the two."""


def calibrate_threshold(scores: PairScores, target_fmr: float) -> ThresholdCalibration:
    """Calibrate a distance threshold to ``target_fmr``, strictly between two observed scores.

    With ``N`` impostor pairs and ``k = floor(target_fmr * N)`` allowed false matches,
    the threshold is the midpoint of the loosest gap between observed distances
    (impostor and genuine) that admits at most ``k`` impostor pairs and is wider than a
    reproduction can move a score (:attr:`PairScores.score_error`, float32 rounding):
    applying it with "match iff distance <= threshold" to distances recomputed from the
    embeddings, in float32 or float64, gives exactly the counts reported
    (:func:`audit.evaluation.cutoffs.place_cutoff`).

    Parameters
    ----------
    scores
        Pairs scored with ``keep_top >= floor(target_fmr * N) + 1``.
    target_fmr
        Target false-match rate in (0, 1).

    Raises
    ------
    EvaluationError
        If there are no impostor pairs, the target admits all of them, or no gap is wide enough.
    ValueError
        If the target is out of range or the pass did not keep enough top impostor scores.
    """
    if not 0.0 < target_fmr < 1.0:
        raise ValueError(f"target_fmr must be in (0, 1), got {target_fmr}")
    n = scores.n_impostor
    if n == 0:
        raise EvaluationError("no impostor pairs: cannot calibrate (need at least two subjects)")
    k = int(math.floor(target_fmr * n * (1 + 1e-12)))
    q = scores.impostor_q
    if k >= n:
        raise EvaluationError(f"target FMR {target_fmr:g} admits every one of the {n} impostor pairs; nothing to calibrate")
    if q.size <= k:
        raise ValueError(
            f"only {q.size} top impostor scores were kept, calibration to {target_fmr} needs {k + 1}; "
            "score with a larger keep_top"
        )
    scale = scores.scale
    try:
        cut = place_cutoff(1.0 - q.astype(np.float64) * scale, 1.0 - scores.genuine_q.astype(np.float64) * scale,
                           k, -1, Precision(scores.score_error), bounds=(0.0, 2.0))
    except NoReproducibleCutoff as err:
        raise EvaluationError(f"cannot calibrate to FMR {target_fmr:g}: {err}") from err
    thr = cut.threshold
    tq = distance_to_q(thr, scale)
    fm = int(np.count_nonzero(q >= tq))
    gq = scores.genuine_q
    fnm = int(np.count_nonzero(gq < tq))
    return ThresholdCalibration(
        target_fmr=float(target_fmr),
        threshold=thr,
        similarity_threshold=1.0 - thr,
        false_matches=fm,
        impostor_pairs=n,
        achieved_fmr=fm / n,
        false_non_matches=fnm,
        genuine_pairs=int(gq.size),
        achieved_fnmr=fnm / gq.size if gq.size else math.nan,
        nearest_match=cut.nearest_match,
        nearest_non_match=cut.nearest_non_match,
        threshold_margin=cut.margin,
    )
