"""LFW 10-fold accuracy over all pairs and over the pairs where both faces were found."""

from __future__ import annotations

import numpy as np
import pytest

from audit.evaluation.lfw import lfw_results, ten_fold_accuracy, ten_fold_accuracy_both_found


def _protocol(lost_per_fold: list[int], per_fold: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable pairs (matched at 0.1, mismatched at 0.9); ``lost`` matched pairs per fold lost an image."""
    distances, same, folds = [], [], []
    for fold, lost in enumerate(lost_per_fold):
        for i in range(per_fold):
            matched = i < per_fold // 2
            distances.append(np.inf if matched and i < lost else (0.1 if matched else 0.9))
            same.append(matched)
            folds.append(fold)
    return np.array(distances), np.array(same), np.array(folds)


def test_failed_acquisitions_count_as_errors_over_all_pairs_but_not_over_both_found() -> None:
    lost = [0, 2, 0, 1, 0, 0, 3, 0, 0, 0]
    d, y, f = _protocol(lost)
    everything = ten_fold_accuracy(d, y, f)
    # over all pairs a lost matched pair is decided "no match": fold accuracy is 1 - lost / 20
    assert everything["fold_accuracies"] == pytest.approx([1 - k / 20 for k in lost])
    found = ten_fold_accuracy_both_found(d, y, f)
    assert found["accuracy"] == 1.0 and found["fold_accuracies"] == [1.0] * 10
    assert found["pairs"] == 200 - sum(lost) and found["pairs_excluded"] == sum(lost)
    assert 0.1 <= min(found["thresholds"]) and max(found["thresholds"]) < 0.9


def test_both_found_equals_all_pairs_when_nothing_failed() -> None:
    rng = np.random.default_rng(3)
    y = np.tile(np.repeat([True, False], 15), 10)
    d = np.where(y, rng.normal(0.3, 0.1, y.size), rng.normal(0.6, 0.1, y.size))
    f = np.repeat(np.arange(10), 30)
    both = ten_fold_accuracy_both_found(d, y, f)
    assert both["pairs_excluded"] == 0
    assert both["fold_accuracies"] == ten_fold_accuracy(d, y, f)["fold_accuracies"]


def test_lfw_results_report_both_figures_when_an_image_failed_to_acquire() -> None:
    import pandas as pd  # noqa: PLC0415

    from audit.evaluation.datasets import LfwPair  # noqa: PLC0415

    people = [f"P{p}" for p in range(6)]
    rng = np.random.default_rng(0)
    base = {p: rng.standard_normal(128) for p in people}
    images = [f"images/{p}/{p}_{k:04d}.jpg" for p in people for k in (1, 2)]
    vectors = np.stack([base[i.split("/")[1]] + 0.01 * rng.standard_normal(128) for i in images])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = []
    for fold in range(2):
        for p, q in zip(people[fold * 3 : fold * 3 + 3], people[fold * 3 + 1 :] + people[:1], strict=False):
            pairs.append(LfwPair(fold, f"images/{p}/{p}_0001.jpg", f"images/{p}/{p}_0002.jpg", True))
            pairs.append(LfwPair(fold, f"images/{p}/{p}_0001.jpg", f"images/{q}/{q}_0001.jpg", False))
    lost = "images/P0/P0_0002.jpg"  # one matched pair loses an image
    acquired = [i for i in images if i != lost]
    keep = np.array([i != lost for i in images])
    labels = pd.DataFrame({"image": images}).set_index("image")
    ten_fold, _ = lfw_results(pairs, acquired, vectors[keep], labels, [])
    assert ten_fold["pairs"] == 12 and ten_fold["pairs_with_failed_image"] == 1
    assert ten_fold["pairs_both_found"] == 11
    assert ten_fold["accuracy_both_found"] == 1.0  # the people are separable once the lost pair is left out
    assert ten_fold["accuracy"] < 1.0  # over all pairs the lost matched pair is a "no match"
