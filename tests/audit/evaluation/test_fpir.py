"""Search thresholds calibrated to a target FPIR: the stored threshold reproduces its FPIR as the engine searches."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.evaluation.errors import EvaluationError
from audit.evaluation.fpir import calibrate_fpir, nonmated_distances
from core.thresholds import extrapolate_fpir


def data(n_probes: int = 300, n_gallery: int = 900, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    g_subj = np.repeat(np.arange(n_gallery // 3), 3)
    gallery = rng.standard_normal((n_gallery // 3, dim))[g_subj] + 0.9 * rng.standard_normal((n_gallery, dim))
    probes = rng.standard_normal((n_probes, dim))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    probes[:30] = gallery[:30] + 0.3 * rng.standard_normal((30, dim)) / math.sqrt(dim)  # look-alikes: other people
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    probes[30:40] = probes[:10] + 1e-8  # ten searches a hair from ten others: near-tied nearest distances
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    p_subj = [f"p{k}" for k in range(n_probes)]
    p_subj[40] = "g5"  # one probe is enrolled: its own faces are left out of its non-mated search
    labels = pd.DataFrame({"race": np.where(np.arange(n_probes) % 4 == 0, "b", "a")})
    return probes.astype(np.float32), p_subj, gallery.astype(np.float32), [f"g{s}" for s in g_subj], labels


def engine_search_fpir(probes, p_subj, gallery, g_subj, threshold, dtype):
    """A search as the engine runs it: scores = gallery @ probe, a candidate iff 1 - score <= threshold."""
    g = gallery.astype(dtype)
    hits = 0
    for k in range(len(probes)):
        scores = g @ probes[k].astype(dtype)
        others = [float(s) for s, who in zip(scores, g_subj, strict=True) if who != p_subj[k]]
        hits += any(1.0 - s <= threshold for s in others)
    return hits


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_the_stored_threshold_reproduces_its_fpir_as_the_engine_searches(target):
    probes, p_subj, gallery, g_subj, labels = data()
    cal = calibrate_fpir(probes, p_subj, gallery, g_subj, target, probe_labels=labels, by=[("race",)])
    assert cal.method == "measured" and cal.achieved_fpir <= target and cal.searches == len(probes)
    assert cal.false_positive_searches == math.floor(target * len(probes)) or cal.false_positive_searches < target * 300
    for dtype in (np.float32, np.float64):
        assert engine_search_fpir(probes, p_subj, gallery, g_subj, cal.threshold, dtype) == cal.false_positive_searches
    assert cal.nearest_match < cal.threshold < cal.nearest_non_match
    # the stored distances give the FPIR at any threshold, as measured
    d = np.array(cal.distances)
    assert int(np.count_nonzero(d <= cal.threshold)) == cal.false_positive_searches
    groups = {r["group_name"]: r for r in cal.per_group}
    race = labels["race"].to_numpy()
    for g in ("a", "b"):
        mask = race == g
        hand = sum(engine_search_fpir(probes[mask], [p for p, m in zip(p_subj, mask, strict=True) if m], gallery,
                                      g_subj, cal.threshold, np.float32) for _ in [0])
        assert groups[f"race={g}"]["false_positive_searches"] == hand
    assert sum(groups[f"race={g}"]["false_positive_searches"] for g in ("a", "b")) == cal.false_positive_searches


def test_near_tie_look_alikes_are_not_split_and_an_enrolled_probe_is_searched_without_its_own_faces():
    probes, p_subj, gallery, g_subj, _ = data()
    d = nonmated_distances(probes, p_subj, gallery, g_subj)
    assert np.all(np.abs(d[30:40] - d[:10]) < 1e-6)  # ten pairs of searches whose nearest faces are as far
    g5 = [k for k, s in enumerate(g_subj) if s == "g5"]
    assert d[40] > 1e-3 and d[40] == pytest.approx(
        min(1 - float(np.dot(probes[40].astype(np.float64), gallery[k])) for k in range(len(g_subj)) if k not in g5),
        abs=1e-6)
    # every cut between two near-tied searches is too narrow: the threshold never separates a pair of them
    for target in np.linspace(0.01, 0.2, 12):
        cal = calibrate_fpir(probes, p_subj, gallery, g_subj, float(target))
        for k in range(10):
            assert (d[k] <= cal.threshold) == (d[30 + k] <= cal.threshold)


def test_a_target_for_another_gallery_size_is_extrapolated_and_labelled():
    probes, p_subj, gallery, g_subj, _ = data()
    cal = calibrate_fpir(probes, p_subj, gallery, g_subj, 0.05, for_gallery_size=9000)
    assert cal.method == "extrapolated" and cal.for_gallery_size == 9000 and cal.gallery_size == 900
    assert cal.measured_target == pytest.approx(extrapolate_fpir(0.05, 9000, 900))
    assert cal.achieved_fpir <= cal.measured_target
    assert "extrapolated from 900 faces" in cal.threshold_source("probes", "mugshots", "2026-01-01").description
    with pytest.raises(EvaluationError, match="needs probes and a gallery"):
        calibrate_fpir(probes, p_subj, gallery[:0], [], 0.05)
