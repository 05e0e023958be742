"""Counts anyone can reproduce: apply the reported threshold with the documented rule, count, get the same number.

Every count of every row is checked against a brute-force loop over all pairs that
applies the row's *reported* threshold ("match iff distance <= threshold") to
distances computed three ways: the exact quantised integers the evaluation counts,
float32 as the engine computes them (``np.dot`` of float32 vectors), and float64.
The data has exact ties (the same vector for two people) and near-ties (vectors a
hair apart), so thresholds that sit on or next to a score are exercised.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.cutoffs import Precision, place_cutoff, threshold_margin
from audit.evaluation.metrics import quantize
from audit.evaluation.verification import evaluate_embeddings


def tied_data(n_subjects: int = 24, per: int = 3, dim: int = 16, seed: int = 0):
    """Embeddings with genuine and impostor ties and near-ties, float32 like the engine's."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), per)
    centres = rng.standard_normal((n_subjects, dim))
    x = centres[subj] + 0.8 * rng.standard_normal((len(subj), dim))
    x[3] = x[0]  # subject 1's first image is subject 0's: an impostor pair at distance 0
    x[10] = x[7] + 1e-7  # near-duplicates across subjects
    x[13] = x[1]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    sex = np.where(subj % 3 == 0, "F", "M")
    return x, subj, pd.DataFrame({"sex": sex})


def distances(x: np.ndarray, how: str) -> np.ndarray:
    """All pair distances (upper triangle, i < j) computed one way."""
    n = len(x)
    i, j = np.triu_indices(n, 1)
    if how == "exact":
        xq, scale = quantize(x)
        ints = [[int(v) for v in row] for row in xq]
        return np.array([1.0 - sum(a * b for a, b in zip(ints[p], ints[q], strict=True)) * scale
                         for p, q in zip(i, j, strict=True)])
    if how == "float32":  # the engine: np.dot of float32 vectors, 1 - float(similarity)
        return np.array([1.0 - float(np.dot(x[p], x[q])) for p, q in zip(i, j, strict=True)])
    x64 = x.astype(np.float64)
    return np.array([1.0 - float(np.dot(x64[p], x64[q])) for p, q in zip(i, j, strict=True)])


def brute_row(row, d, subj, sex) -> dict[str, int]:
    """Counts of one reported row by a loop over every pair at the row's reported threshold."""
    n = len(subj)
    i, j = np.triu_indices(n, 1)
    t = row["threshold"]
    if row["pairing"] == "all":
        member = np.ones(i.size, dtype=bool)
    elif row["pairing"] == "within":
        g = row["group"]["sex"]
        member = (sex[i] == g) & (sex[j] == g)
    else:
        a, b = row["group"]["sex"], row["other_group"]["sex"]
        member = ((sex[i] == a) & (sex[j] == b)) | ((sex[i] == b) & (sex[j] == a))
    out = {"genuine_pairs": 0, "false_non_matches": 0, "impostor_pairs": 0, "false_matches": 0}
    for k in np.flatnonzero(member):
        match = d[k] <= t
        if subj[i[k]] == subj[j[k]]:
            out["genuine_pairs"] += 1
            out["false_non_matches"] += int(not match)
        else:
            out["impostor_pairs"] += 1
            out["false_matches"] += int(match)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_count_equals_a_brute_force_loop_at_the_reported_threshold(seed):
    x, subj, labels = tied_data(seed=seed)
    cfg = EvaluationConfig(
        by=(("sex",),),
        thresholds=tuple(parse_threshold(t) for t in ("fmr=0.05", "fmr=0.01", "fmr=0.002", "0.3")),
        include_default=False,
        bootstrap=0,
    )
    report = evaluate_embeddings(x, subj, labels, cfg)
    sex = labels["sex"].to_numpy()
    ways = {how: distances(x, how) for how in ("exact", "float32", "float64")}
    calibrated = {r["threshold_name"] for r in report.rates if r["threshold_source"] == "calibrated"}
    assert calibrated == {"fmr=0.05", "fmr=0.01", "fmr=0.002"}
    checked = 0
    for row in report.rates:
        counts = {k: row[k] for k in ("genuine_pairs", "false_non_matches", "impostor_pairs", "false_matches")}
        assert brute_row(row, ways["exact"], subj, sex) == counts, row["threshold_name"]
        if row["threshold_name"] in calibrated:
            assert row["reproducible"] is True
        if row["reproducible"]:
            for how in ("float32", "float64"):
                assert brute_row(row, ways[how], subj, sex) == counts, (how, row["threshold_name"])
                checked += 1
    assert checked >= 2 * 3 * len(calibrated)
    assert all(c["false_matches"] > 0 for c in report.calibration_rows)
    # a calibrated threshold is never an observed distance, and it has room on both sides
    observed = set(ways["exact"].tolist())
    for cal in report.calibration_rows:
        assert cal["threshold"] not in observed
        assert cal["nearest_match"] < cal["threshold"] < cal["nearest_non_match"]
        assert cal["false_matches"] <= math.floor(cal["target_fmr"] * cal["impostor_pairs"])


def test_a_fixed_threshold_on_a_score_is_counted_by_the_rule_and_flagged_not_reproducible():
    x, subj, labels = tied_data()
    exact = distances(x, "exact")
    i, j = np.triu_indices(len(x), 1)
    impostor = subj[i] != subj[j]
    on_a_point = float(np.sort(exact[impostor])[5])  # the sixth closest impostor pair's own distance
    cfg = EvaluationConfig(thresholds=(parse_threshold(repr(on_a_point)),), include_default=False, bootstrap=0)
    report = evaluate_embeddings(x, subj, labels, cfg)
    row = report.rates[0]
    assert row["threshold"] == on_a_point
    assert row["false_matches"] == int(np.count_nonzero(impostor & (exact <= on_a_point)))
    assert row["threshold_margin"] == 0.0 and row["reproducible"] is False


def test_the_cutoff_moves_past_a_gap_too_narrow_for_a_reproduction():
    impostors = np.array([0.10, 0.20, 0.2000001, 0.30, 0.40])  # distances; two allowed
    genuine = np.array([0.05])
    wide = place_cutoff(impostors, genuine, 2, -1, Precision(0.0))
    assert wide.admitted == 2 and 0.20 < wide.threshold < 0.2000001  # 1e-7 is wide enough for float32 here
    # with scores that may be off by 1e-6, the gap 0.2..0.2000001 is too narrow: one fewer false match
    cut = place_cutoff(impostors, genuine, 2, -1, Precision(1e-6))
    assert cut.admitted == 1 and cut.threshold == pytest.approx(0.15) and cut.nearest_non_match == 0.20
    # similarity scores with ties: the tied top pair cannot be split, so nothing is admitted
    tied = place_cutoff(np.array([90.0, 90.0, 80.0]), np.array([95.0]), 1, 1, Precision(0.0))
    assert tied.admitted == 0 and 90.0 < tied.threshold < 95.0


def test_a_score_read_from_a_file_survives_float32_only_when_far_enough():
    p = Precision(0.0)
    # 79.999999 and 80 are one float32: a threshold of 80 cannot separate them in float32
    assert not threshold_margin(np.array([79.999999, 85.0]), 80.0, 1, p).reproducible
    assert threshold_margin(np.array([79.99, 80.0, 85.0]), 80.0, 1, p).reproducible  # a tie matches in any precision
    np.testing.assert_equal(np.float32(79.999999) >= np.float32(80.0), True)


def test_two_impostor_pairs_a_hair_apart_are_not_split_by_a_calibrated_threshold():
    """The natural cut (admit one of two near-equal impostor pairs) is closer than float32 can tell: admit neither."""
    rng = np.random.default_rng(7)
    dim = 32
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    c = u + 0.05 * rng.standard_normal(dim)
    c /= np.linalg.norm(c)
    perm = rng.permutation(dim)  # a permutation keeps every dot product: (u, c) and (u[perm], c[perm]) tie exactly
    d = c[perm] + 3e-8 * rng.standard_normal(dim)
    d /= np.linalg.norm(d)
    others = rng.standard_normal((8, dim))
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    x = np.vstack([u, c, u[perm], d, others]).astype(np.float32)
    subj = np.array([0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7])
    labels = pd.DataFrame({"sex": np.where(subj % 2, "F", "M")})
    exact = distances(x, "exact")
    i, j = np.triu_indices(len(x), 1)
    impostor = subj[i] != subj[j]
    top = np.sort(exact[impostor])[:2]
    assert top[1] - top[0] < 1e-6  # the two pairs are a hair apart
    n_imp = int(impostor.sum())
    cfg = EvaluationConfig(by=(("sex",),), thresholds=(parse_threshold(f"fmr={1.5 / n_imp}"),), include_default=False,
                           bootstrap=0)
    report = evaluate_embeddings(x, subj, labels, cfg)
    cal = report.calibration_rows[0]
    assert cal["false_matches"] == 0 and cal["threshold"] < top[0]
    sex = labels["sex"].to_numpy()
    for row in report.rates:
        counts = {k: row[k] for k in ("genuine_pairs", "false_non_matches", "impostor_pairs", "false_matches")}
        for how in ("exact", "float32", "float64"):
            assert brute_row(row, distances(x, how), subj, sex) == counts
