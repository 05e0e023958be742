"""Inequity measures against hand computations on small tables, and their place in a report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.disparity import RateArrays
from audit.evaluation.groups import Group, PairCell
from audit.evaluation.inequity import gini, inequity_rows, max_difference, max_geomean_ratio, max_min_ratio
from audit.evaluation.verification import evaluate_embeddings

FMR = [0.01, 0.02, 0.04]
FNMR = [0.1, 0.1, 0.2]


def test_single_measures_by_hand():
    assert max_min_ratio(np.array(FMR))[0] == pytest.approx(4.0)
    # geometric mean of 0.01, 0.02, 0.04 is 0.02
    assert max_geomean_ratio(np.array(FMR))[0] == pytest.approx(2.0)
    # |differences| over ordered pairs: 2 * (0.01 + 0.03 + 0.02) = 0.12; 2 n^2 mean = 18 * 0.07 / 3 = 0.42
    assert gini(np.array(FMR))[0] == pytest.approx(3 / 2 * 0.12 / 0.42)
    assert gini(np.array(FNMR))[0] == pytest.approx(3 / 2 * 0.4 / 2.4)
    assert max_difference(np.array(FMR))[0] == pytest.approx(0.03)
    # parity, a zero rate, two groups
    assert gini(np.array([0.3, 0.3]))[0] == 0.0 and gini(np.array([0.0, 0.0]))[0] == 0.0
    assert gini(np.array([0.0, 0.5]))[0] == pytest.approx(1.0)  # the largest inequality two groups can have
    assert max_min_ratio(np.array([0.0, 0.5]))[0] == math.inf
    assert max_geomean_ratio(np.array([0.0, 0.5]))[0] == math.inf
    assert math.isnan(max_min_ratio(np.array([0.0, 0.0]))[0])
    # rows of draws, NaN groups left out of their draw
    draws = np.array([[0.01, 0.02, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(max_min_ratio(draws), [2.0, np.nan])
    assert math.isnan(gini(draws)[1]) and gini(draws)[0] == pytest.approx(2 / 1 * 0.02 / (2 * 4 * 0.015))


def _cells(n: int, subjects: list[int]) -> list[PairCell]:
    everyone = Group((), (), frozenset(range(n)))
    out = [PairCell("all", (), everyone, None, np.ones(1, dtype=bool), 0, sum(subjects))]
    for g in range(n):
        group = Group(("race",), (f"g{g}",), frozenset({g}))
        out.append(PairCell("within", ("race",), group, None, np.ones(1, dtype=bool), 0, subjects[g]))
    return out


def test_garbe_and_fdr_on_a_small_table_with_a_low_count_group_left_out():
    # groups g0..g2 as above; g3 has too few subjects and is left out of every measure
    fmr = np.array([[0.015], *([r] for r in FMR), [0.9]])
    fnmr = np.array([[0.12], *([r] for r in FNMR), [0.9]])
    rates = RateArrays(fmr=fmr, fnmr=fnmr, boot_fmr=np.zeros((0, 5, 1)), boot_fnmr=np.zeros((0, 5, 1)),
                       genuine=np.full(5, 100.0), impostor=np.full(5, 10_000.0))
    cells = _cells(4, [50, 50, 50, 3])
    cfg = EvaluationConfig(by=(("race",),), thresholds=(parse_threshold("0.1"),), include_default=False, bootstrap=0)
    rows = {(r["measure"], r["metric"]): r for r in inequity_rows(cells, cfg.thresholds, rates, cfg)}
    assert rows[("garbe", "combined")]["value"] == pytest.approx(0.5 * (3 / 2 * 0.12 / 0.42) + 0.5 * (3 / 2 * 0.4 / 2.4))
    assert rows[("fdr", "combined")]["value"] == pytest.approx(1 - (0.5 * 0.03 + 0.5 * 0.1))
    assert rows[("max_geomean_ratio", "false_match_rate")]["value"] == pytest.approx(2.0)
    assert rows[("max_min_ratio", "false_non_match_rate")]["value"] == pytest.approx(2.0)
    for r in rows.values():
        assert r["groups"] == 3 and r["excluded_low_count"] == 1 and r["zero_groups"] == 0
        assert math.isnan(r["lo"]) and r["threshold"] == 0.1
    assert len(rows) == 4 * 2 + 2


def synthetic(n_subjects: int = 60, per: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), per)
    race = np.array(["a", "b", "c"])[subj % 3]
    spread = np.where(race == "c", 1.1, 0.8)
    centres = rng.standard_normal((n_subjects, 12))
    x = centres[subj] + spread[:, None] * rng.standard_normal((len(subj), 12))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), subj, pd.DataFrame({"race": race})


def test_a_report_carries_the_measures_of_its_own_rates_with_bootstrap_intervals():
    x, subj, labels = synthetic()
    cfg = EvaluationConfig(by=(("race",),), thresholds=(parse_threshold("fmr=0.05"),), include_default=False,
                           bootstrap=200, min_impostor_pairs=10, min_subjects=5, min_genuine_pairs=5)
    report = evaluate_embeddings(x, subj, labels, cfg)
    rates = report.rates_frame()
    within = rates[rates["pairing"] == "within"].set_index("group_name")
    fm, fn = within["fmr"].to_numpy(), within["fnmr"].to_numpy()
    rows = {(r["measure"], r["metric"]): r for r in report.inequity_rows}
    assert rows[("max_min_ratio", "false_match_rate")]["value"] == pytest.approx(fm.max() / fm.min())
    assert rows[("max_geomean_ratio", "false_match_rate")]["value"] == pytest.approx(
        fm.max() / math.exp(np.log(fm).mean()))

    def hand_gini(v):
        return len(v) / (len(v) - 1) * np.abs(v[:, None] - v[None, :]).sum() / (2 * len(v) ** 2 * v.mean())

    assert rows[("garbe", "combined")]["value"] == pytest.approx(0.5 * hand_gini(fm) + 0.5 * hand_gini(fn))
    assert rows[("fdr", "combined")]["value"] == pytest.approx(1 - 0.5 * (fm.max() - fm.min()) - 0.5 * (fn.max() - fn.min()))
    for r in report.inequity_rows:
        assert r["lo"] is not None and r["hi"] is not None and r["lo"] <= r["hi"]
        assert r["threshold_name"] == "fmr=0.05" and r["groups"] == 3
    # the max/min matches the disparity table's
    disp = report.disparity()
    mm = disp[disp["metric"] == "false_match_rate"]["max_min_ratio"].iloc[0]
    assert rows[("max_min_ratio", "false_match_rate")]["value"] == pytest.approx(mm)
