"""Exactness of the pairwise counts against brute-force double loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.evaluation.cutoffs import Precision
from audit.evaluation.errors import EvaluationError
from audit.evaluation.metrics import (
    CellCounter,
    calibrate_threshold,
    cell_counts,
    cell_pair_index,
    distance_to_q,
    quantize,
    score_pairs,
)


def synthetic(n: int, n_subjects: int, dim: int, seed: int, noise: float = 0.8):
    rng = np.random.default_rng(seed)
    subj = rng.integers(0, n_subjects, n)
    centres = rng.standard_normal((n_subjects, dim))
    x = centres[subj] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, subj


def brute(x, subj, cells, n_cells, thresholds, weights=None):
    """Double loop with Python integers: the reference for every count."""
    xq, scale = quantize(x)
    ints = [[int(v) for v in row] for row in xq]
    pidx = cell_pair_index(n_cells)
    n_p = n_cells * (n_cells + 1) // 2
    k = len(thresholds)
    w = np.ones(int(subj.max()) + 1) if weights is None else weights
    gen = np.zeros(n_p)
    fnm = np.zeros((n_p, k))
    imp = np.zeros(n_p)
    fm = np.zeros((n_p, k))
    n = len(subj)
    for i in range(n):
        for j in range(i + 1, n):
            q = sum(a * b for a, b in zip(ints[i], ints[j], strict=True))
            d = 1.0 - q * scale
            p = pidx[cells[i], cells[j]]
            match = np.array([d <= t for t in thresholds])
            if subj[i] == subj[j]:
                gen[p] += w[subj[i]]
                fnm[p] += w[subj[i]] * ~match
            else:
                ww = w[subj[i]] * w[subj[j]]
                imp[p] += ww
                fm[p] += ww * match
    return (
        gen,
        fnm,
        imp,
        fm,
        sorted(
            1.0 - sum(a * b for a, b in zip(ints[i], ints[j], strict=True)) * scale
            for i in range(n)
            for j in range(i + 1, n)
            if subj[i] != subj[j]
        ),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 45),
    n_subjects=st.integers(1, 15),
    n_cells=st.integers(1, 4),
    dim=st.integers(2, 8),
    seed=st.integers(0, 10_000),
    block=st.integers(1, 50),
    thresholds=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=4),
)
def test_counts_equal_brute_force(n, n_subjects, n_cells, dim, seed, block, thresholds):
    x, subj = synthetic(n, n_subjects, dim, seed)
    rng = np.random.default_rng(seed + 1)
    cells = rng.integers(0, n_cells, n)
    cells[0] = n_cells - 1  # make sure every code up to n_cells-1 may occur
    ps = score_pairs(x, subj, cells, keep_thresholds=thresholds, keep_top=3, block_rows=block)
    got = cell_counts(ps, thresholds)
    gen, fnm, imp, fm, imp_d = brute(x, subj, cells, ps.n_cells, thresholds)
    np.testing.assert_array_equal(got.genuine[0], gen)
    np.testing.assert_array_equal(got.false_non_matches[0], fnm)
    np.testing.assert_array_equal(got.impostor[0], imp)
    np.testing.assert_array_equal(got.false_matches[0], fm)
    assert ps.n_impostor == len(imp_d)
    assert ps.impostor_hist.sum() == len(imp_d)
    assert ps.genuine_hist.sum() == gen.sum()


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(3, 40),
    n_subjects=st.integers(2, 12),
    seed=st.integers(0, 10_000),
    target=st.sampled_from([0.5, 0.2, 0.1, 0.05, 0.01]),
)
def test_calibrated_threshold_lies_in_the_loosest_wide_enough_gap(n, n_subjects, seed, target):
    x, subj = synthetic(n, n_subjects, 4, seed)
    if len(set(subj.tolist())) < 2:
        subj[0] = subj[-1] + 1 if subj[-1] + 1 < n_subjects else 0
        if len(set(subj.tolist())) < 2:
            return
    nimp = sum(1 for i in range(n) for j in range(i + 1, n) if subj[i] != subj[j])
    k = math.floor(target * nimp)
    if k >= nimp:
        return
    ps = score_pairs(x, subj, keep_top=k + 1, block_rows=7)
    cal = calibrate_threshold(ps, target)
    gen_flat, *_ = brute(x, subj, np.zeros(n, dtype=int), 1, [cal.threshold])
    *_, imp_d = brute(x, subj, np.zeros(n, dtype=int), 1, [cal.threshold])
    xq, scale = quantize(x)
    ints = [[int(v) for v in row] for row in xq]
    gen_d = [1.0 - sum(a * b for a, b in zip(ints[i], ints[j], strict=True)) * scale
             for i in range(n) for j in range(i + 1, n) if subj[i] == subj[j]]
    matched = sum(d <= cal.threshold for d in imp_d)
    assert matched == cal.false_matches and cal.achieved_fmr <= target
    assert sum(d > cal.threshold for d in gen_d) == cal.false_non_matches
    # strictly between the two observed distances around it, with nothing in between
    observed = sorted(set(imp_d) | set(gen_d))
    below = [d for d in observed if d <= cal.threshold]
    above = [d for d in observed if d > cal.threshold]
    assert cal.threshold not in observed
    assert (below[-1] if below else math.nan) == cal.nearest_match or (not below and math.isnan(cal.nearest_match))
    assert (above[0] if above else math.nan) == cal.nearest_non_match or (not above and math.isnan(cal.nearest_non_match))
    # every looser gap admits too many impostor pairs or is narrower than a reproduction can move a score
    precision = Precision(ps.score_error)
    for lo, hi in zip(observed, observed[1:], strict=False):
        if lo <= cal.threshold:
            continue
        mid = lo / 2 + hi / 2
        wide = bool(precision.holds(np.array([lo, hi]), np.array([mid, mid]), -1).all())
        assert sum(d <= lo for d in imp_d) > k or not wide


def test_weighted_counts_equal_weighted_brute_force():
    x, subj = synthetic(40, 9, 5, 3)
    cells = np.arange(40) % 3
    thresholds = [0.4, 0.9, 1.3]
    ps = score_pairs(x, subj, cells, keep_thresholds=thresholds)
    counter = CellCounter(ps, thresholds)
    rng = np.random.default_rng(0)
    w = rng.multinomial(ps.n_subjects, np.full(ps.n_subjects, 1 / ps.n_subjects), size=3).astype(float)
    got = counter.counts(w)
    for r in range(3):
        gen, fnm, imp, fm, _ = brute(x, subj, cells, ps.n_cells, thresholds, weights=w[r])
        np.testing.assert_allclose(got.genuine[r], gen)
        np.testing.assert_allclose(got.false_non_matches[r], fnm)
        np.testing.assert_allclose(got.impostor[r], imp)
        np.testing.assert_allclose(got.false_matches[r], fm)


def test_block_size_and_keep_top_do_not_change_results():
    x, subj = synthetic(300, 90, 16, 5)
    cells = subj % 5
    ths = [0.5, 0.7]
    a = score_pairs(x, subj, cells, keep_thresholds=ths, keep_top=40, block_rows=17)
    b = score_pairs(x, subj, cells, keep_thresholds=ths, keep_top=40)
    c = score_pairs(x, subj, cells, keep_top=200, block_rows=64)
    np.testing.assert_array_equal(a.impostor_q, b.impostor_q)
    np.testing.assert_array_equal(a.impostor_hist, b.impostor_hist)
    assert calibrate_threshold(a, 1e-3) == calibrate_threshold(c, 1e-3)
    for field in ("genuine", "false_non_matches", "impostor", "false_matches"):
        np.testing.assert_array_equal(getattr(cell_counts(a, ths), field), getattr(cell_counts(b, ths), field))


def test_threshold_looser_than_kept_pairs_is_refused():
    x, subj = synthetic(60, 20, 8, 1)
    ps = score_pairs(x, subj, keep_thresholds=[0.3])
    with pytest.raises(ValueError, match="looser"):
        CellCounter(ps, [0.9])


def test_distance_to_q_is_exact_boundary():
    _, scale = quantize(np.eye(4))
    for t in (0.0, 0.07, 0.3, 1e-9, 1.0, 1.9999):
        q = distance_to_q(t, scale)
        assert 1.0 - q * scale <= t
        assert not (1.0 - (q - 1) * scale <= t)


def test_unnormalised_embeddings_are_refused():
    with pytest.raises(ValueError, match="L2-normalised"):
        quantize(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.full((2, 2), np.nan))


def test_too_many_stored_pairs_is_a_clear_error():
    x, subj = synthetic(200, 100, 4, 2)
    with pytest.raises(EvaluationError, match="max_stored"):
        score_pairs(x, subj, keep_thresholds=[2.0], max_stored=100)
