"""The LFW protocol against brute force: 10-fold thresholds and per-group counts on protocol pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.evaluation.datasets import LfwPair
from audit.evaluation.lfw import lfw_results, ten_fold_accuracy
from audit.evaluation.metrics import quantize


def accuracy(d, y, t):
    return float(np.mean((d <= t) == y)) if len(d) else float("nan")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 60), folds=st.integers(2, 5), fail=st.floats(0, 0.3))
def test_each_fold_uses_a_best_threshold_of_the_other_folds(seed, n, folds, fail):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    d = np.where(same, rng.normal(0.3, 0.15, n), rng.normal(0.7, 0.15, n)).round(2)  # ties on purpose
    d[rng.random(n) < fail] = np.inf  # pairs with an image that failed: never a match
    fold = rng.integers(0, folds, n)
    got = ten_fold_accuracy(d, same, fold)
    for k, f in enumerate(np.unique(fold)):
        train, test = fold != f, fold == f
        if not train.any():  # a single fold: nothing to learn from, nothing is called a match
            assert got["thresholds"][k] == -np.inf
            continue
        candidates = [-np.inf, *np.unique(d[train][np.isfinite(d[train])])]
        best = max(accuracy(d[train], same[train], t) for t in candidates)
        t = got["thresholds"][k]
        assert accuracy(d[train], same[train], t) == best
        assert got["fold_accuracies"][k] == accuracy(d[test], same[test], t)
    assert got["accuracy"] == np.mean(got["fold_accuracies"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), people=st.integers(3, 8))
def test_per_group_rows_equal_brute_force(seed, people):
    rng = np.random.default_rng(seed)
    images = [f"images/P{p}/P{p}_{k:04d}.jpg" for p in range(people) for k in (1, 2, 3)]
    sex = {p: rng.choice(["F", "M"]) for p in range(people)}
    acquired = [i for i in images if rng.random() > 0.15]
    x = rng.standard_normal((len(acquired), 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pairs = []
    for fold in range(2):
        for _ in range(6):
            p = int(rng.integers(people))
            a, b = rng.choice([1, 2, 3], 2, replace=False)
            pairs.append(LfwPair(fold, f"images/P{p}/P{p}_{a:04d}.jpg", f"images/P{p}/P{p}_{b:04d}.jpg", True))
            p, q = rng.choice(people, 2, replace=False)
            pairs.append(LfwPair(fold, f"images/P{p}/P{p}_0001.jpg", f"images/P{q}/P{q}_0002.jpg", False))
    labels = pd.DataFrame({"image": images, "sex": [sex[int(i.split("/")[1][1:])] for i in images]}).set_index("image")
    ten_fold, rows = lfw_results(pairs, acquired, x, labels, ["sex"])
    xq, scale = quantize(x)
    at = {img: i for i, img in enumerate(acquired)}

    def dist(p):
        if p.image_a in at and p.image_b in at:
            return 1.0 - float(np.dot(xq[at[p.image_a]], xq[at[p.image_b]])) * scale
        return np.inf

    t = ten_fold["threshold"]
    assert ten_fold["pairs_with_failed_image"] == sum(np.isinf(dist(p)) for p in pairs)
    expected = {}
    for p in pairs:
        for key in ((), (labels.at[p.image_a, "sex"],) if labels.at[p.image_a, "sex"] == labels.at[
                p.image_b, "sex"] else None):
            if key is None:
                continue
            cell = expected.setdefault(key, [0, 0, 0, 0])
            match = t is not None and dist(p) <= t
            if p.same:
                cell[0] += 1
                cell[1] += not match
            else:
                cell[2] += 1
                cell[3] += match
    got = {tuple(r["group"].values()): [r["genuine_pairs"], r["false_non_matches"], r["impostor_pairs"],
                                        r["false_matches"]] for r in rows}
    assert got == expected
