"""Per-group rates, label policies, bootstrap intervals, disparity and the report round trip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.evaluation.calibration import calibrate
from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.curves import eer_from_det
from audit.evaluation.errors import EvaluationError
from audit.evaluation.groups import UNKNOWN, add_bands, fine_cells, groups_for, split_multi
from audit.evaluation.metrics import quantize
from audit.evaluation.report import EvaluationReport
from audit.evaluation.verification import evaluate_embeddings
from core.errors import BadInput


def synthetic(n, n_subjects, dim, seed, noise=0.8):
    rng = np.random.default_rng(seed)
    subj = np.concatenate([np.arange(min(n, n_subjects)), rng.integers(0, n_subjects, max(0, n - n_subjects))])
    centres = rng.standard_normal((n_subjects, dim))
    x = centres[subj] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, subj


def brute_rows(x, subj, groups_of, thresholds):
    """Reference: per (pairing, group, other) cell, counts by an explicit double loop over labels."""
    xq, scale = quantize(x)
    n = len(subj)
    out: dict = {}
    for i in range(n):
        for j in range(i + 1, n):
            d = 1.0 - float(np.dot(xq[i], xq[j])) * scale
            keys = [("all", "all", None)]
            gi, gj = groups_of(i), groups_of(j)
            keys += [("within", g, None) for g in gi & gj]
            for a in gi:
                for b in gj:
                    if a != b:
                        keys.append(("cross", min(a, b), max(a, b)))
            for key in keys:
                row = out.setdefault(
                    key, {"gen": 0, "imp": 0, "fnm": [0] * len(thresholds), "fm": [0] * len(thresholds)}
                )
                for k, t in enumerate(thresholds):
                    if subj[i] == subj[j]:
                        row["fnm"][k] += not d <= t
                    else:
                        row["fm"][k] += d <= t
                if subj[i] == subj[j]:
                    row["gen"] += 1
                else:
                    row["imp"] += 1
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(4, 40),
    n_subjects=st.integers(2, 12),
    seed=st.integers(0, 5000),
    policy=st.sampled_from(["combined", "explode"]),
)
def test_group_rows_equal_brute_force(n, n_subjects, seed, policy):
    x, subj = synthetic(n, n_subjects, 5, seed)
    rng = np.random.default_rng(seed)
    race = rng.choice(["A", "B", "A; B", "", None], size=n)
    labels = pd.DataFrame({"race": race})
    thresholds = (parse_threshold("0.4"), parse_threshold("0.9"))
    cfg = EvaluationConfig(by=(("race",),), thresholds=thresholds, multi_label=policy, bootstrap=0)
    report = evaluate_embeddings(x, subj, labels, cfg)

    def value(v):
        return UNKNOWN if v is None or str(v).strip() == "" else str(v)

    def groups_of(i):
        v = value(race[i])
        return set(split_multi(v)) if policy == "explode" else {v}

    ref = brute_rows(x, subj, groups_of, [0.4, 0.9])
    rows = report.rates_frame()
    seen = set()
    for r in rows.itertuples():
        if r.pairing == "all":
            key = ("all", "all", None)
        elif r.pairing == "within":
            key = ("within", r.group["race"], None)
        else:
            a, b = r.group["race"], r.other_group["race"]
            key = ("cross", min(a, b), max(a, b))
        k = 0 if r.threshold_name == "0.4" else 1
        exp = ref.get(key, {"gen": 0, "imp": 0, "fnm": [0, 0], "fm": [0, 0]})
        assert (r.genuine_pairs, r.impostor_pairs) == (exp["gen"], exp["imp"]), key
        assert r.false_non_matches == exp["fnm"][k], key
        assert r.false_matches == exp["fm"][k], key
        seen.add(key)
    if policy == "explode":
        assert not (rows["pairing"] == "cross").any()
    # every within-group cell of the reference is reported
    assert {k for k in ref if k[0] == "within"} <= seen


def test_monotone_in_threshold_and_calibration_hits_target():
    x, subj = synthetic(600, 200, 16, 7)
    ths = tuple(parse_threshold(str(t)) for t in (0.3, 0.45, 0.6, 0.75)) + (
        parse_threshold("fmr=1e-2"),
        parse_threshold("fmr=1e-3"),
    )
    report = evaluate_embeddings(x, subj, None, EvaluationConfig(thresholds=ths, bootstrap=0))
    df = report.rates_frame().sort_values("threshold")
    # tighter threshold (smaller distance): FMR falls, FNMR rises
    assert (np.diff(df["fmr"].to_numpy()) >= 0).all()
    assert (np.diff(df["fnmr"].to_numpy()) <= 0).all()
    for target in (1e-2, 1e-3):
        row = df[df["threshold_name"] == f"fmr={target:g}"].iloc[0]
        assert row["fmr"] <= target
        assert row["false_matches"] == math.floor(target * row["impostor_pairs"]) or row["fmr"] <= target
    cal = calibrate(x, subj, 1e-3)
    assert cal.result.achieved_fmr <= 1e-3
    assert cal.result.threshold == report.thresholds()["fmr=0.001"]


def test_bootstrap_intervals_contain_point_estimates():
    x, subj = synthetic(1500, 500, 24, 11)
    rng = np.random.default_rng(3)
    labels = pd.DataFrame({"sex": rng.choice(["F", "M"], 500)[subj]})
    cfg = EvaluationConfig(
        by=(("sex",),), thresholds=(parse_threshold("0.5"), parse_threshold("fmr=1e-2")), bootstrap=300, seed=1
    )
    report = evaluate_embeddings(x, subj, labels, cfg)
    df = report.rates_frame()
    df = df[df["pairing"] != "cross"]
    assert (df["fmr_lo"] <= df["fmr"]).all() and (df["fmr"] <= df["fmr_hi"]).all()
    assert (df["fnmr_lo"] <= df["fnmr"]).all() and (df["fnmr"] <= df["fnmr_hi"]).all()
    assert (df["fmr_hi"] > df["fmr_lo"]).all()
    dis = report.disparity()
    assert set(dis["metric"]) == {"false_match_rate", "false_non_match_rate"}
    best = dis[dis["relative_to_best"] == 1.0]
    assert len(best) >= 4
    assert (dis["max_min_ratio"] >= 1.0).all()
    assert (dis["relative_lo"] <= dis["relative_hi"]).all()


def test_report_round_trip_and_json_rows():
    x, subj = synthetic(120, 40, 8, 2)
    labels = pd.DataFrame({"sex": np.where(subj % 2, "F", "M"), "race": np.where(subj % 3, "x", "y")})
    cfg = EvaluationConfig(by=(("sex",), ("sex", "race")), default_threshold=0.5, bootstrap=20)
    report = evaluate_embeddings(x, subj, labels, cfg, dataset_fingerprint="abc", model_config={"model": "m"})
    again = EvaluationReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    rows = report.json_rows()
    for key in (
        "group",
        "threshold",
        "genuine_pairs",
        "impostor_pairs",
        "fnmr",
        "fmr",
        "fnmr_lo",
        "fnmr_hi",
        "fmr_lo",
        "fmr_hi",
    ):
        assert key in rows[0]
    assert {r["threshold_name"] for r in rows} == {"default", "fmr=0.001", "fmr=0.0001"}
    assert any(r["group"] == {"sex": "F", "race": "x"} for r in rows)
    json.dumps(rows, allow_nan=False)
    assert report.run["dataset_fingerprint"] == "abc"
    frame = report.frame(("sex",), "default")
    assert list(frame.by_group.index) == ["sex=F", "sex=M"]
    assert 0 <= frame.ratio()["false_match_rate"] <= 1
    with pytest.raises(KeyError):
        report.frame("race", "default")


def test_low_count_cells_are_flagged_not_hidden():
    x, subj = synthetic(60, 20, 8, 4)
    labels = pd.DataFrame({"g": np.where(subj == 0, "rare", "common")})
    cfg = EvaluationConfig(by=(("g",),), bootstrap=0, thresholds=(parse_threshold("0.5"),))
    df = evaluate_embeddings(x, subj, labels, cfg).rates_frame()
    rare = df[(df["pairing"] == "within") & (df["group_name"] == "g=rare")]
    assert len(rare) == 1 and bool(rare["low_count"].iloc[0])


def test_label_policies_and_unknown():
    labels = pd.DataFrame({"race": ["Black; Hispanic", "Black", None, "  ", "african,caucasian"]})
    fine = fine_cells(labels, ["race"])
    combined = {g.values[0] for g in groups_for(fine, ["race"], "combined")}
    exploded = {g.values[0] for g in groups_for(fine, ["race"], "explode")}
    assert combined == {"Black; Hispanic", "Black", UNKNOWN, "african,caucasian"}
    assert exploded == {"Black", "Hispanic", UNKNOWN, "african", "caucasian"}
    black = next(g for g in groups_for(fine, ["race"], "explode") if g.values == ("Black",))
    assert len(black.cells) == 2
    with pytest.raises(ValueError):
        groups_for(fine, ["race"], "first")  # type: ignore[arg-type]
    banded = add_bands(pd.DataFrame({"age": [30, 45, 70, None]}), "age", [40, 60])
    assert banded["age_band"].tolist() == ["<40", "40-60", ">=60", UNKNOWN]


def test_eer_interpolates_crossing():
    assert eer_from_det([1.0, 0.5, 0.0], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert eer_from_det([0.4, 0.1], [0.0, 0.2]) == pytest.approx(0.16)


def test_threshold_range_is_the_one_its_message_names():
    assert parse_threshold("0").distance == 0.0 and parse_threshold("2").distance == 2.0
    assert parse_threshold(" fmr=1e-3 ").target_fmr == 1e-3
    for text in ("-0.5", "-1", "2.0001", "nan", "inf", "1e309", "fmr=0", "fmr=1", "fmr=inf", "fmr=x"):
        with pytest.raises(BadInput):
            parse_threshold(text)
    with pytest.raises(BadInput, match=r"in \[0, 2\]"):
        parse_threshold("-0.5")


def test_bad_arguments():
    with pytest.raises(BadInput):
        parse_threshold("fmr=2")
    with pytest.raises(BadInput):
        parse_threshold("abc")
    x, subj = synthetic(10, 1, 4, 0)
    with pytest.raises(EvaluationError, match="at least two subjects"):
        evaluate_embeddings(x, np.zeros(10, dtype=int), None)
    with pytest.raises(ValueError, match="labels"):
        evaluate_embeddings(x, subj, None, EvaluationConfig(by=(("sex",),)))


@pytest.mark.slow  # starts a subprocess
def test_audit_does_not_import_streamlit():
    code = (
        "import sys, audit.evaluation.datasets, audit.evaluation.store, audit.evaluation.verification, "
        "audit.evaluation.runner, audit.evaluation.identification; "
        "assert 'streamlit' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_disparity_reference_skips_zero_and_low_count_groups():
    x, subj = synthetic(900, 300, 16, 21)
    g = np.where(subj < 3, "tiny", np.where(subj % 2, "a", "b"))
    labels = pd.DataFrame({"g": g})
    cfg = EvaluationConfig(by=(("g",),), thresholds=(parse_threshold("fmr=1e-2"),), bootstrap=100)
    dis = evaluate_embeddings(x, subj, labels, cfg).disparity()
    fm = dis[dis["metric"] == "false_match_rate"].set_index("group_name")
    assert fm.loc["g=tiny", "low_count"]
    assert fm["best_group_name"].iloc[0] in {"g=a", "g=b"}
    best = fm.loc[fm["best_group_name"].iloc[0]]
    assert best["relative_to_best"] == 1.0
    other = "g=b" if fm["best_group_name"].iloc[0] == "g=a" else "g=a"
    assert fm.loc[other, "relative_to_best"] >= 1.0
    assert fm.loc[other, "relative_lo"] <= fm.loc[other, "relative_to_best"] <= fm.loc[other, "relative_hi"]
    # max/min over the groups with enough data (tiny excluded)
    rates = fm.loc[["g=a", "g=b"], "rate"]
    assert fm["max_min_ratio"].iloc[0] == pytest.approx(rates.max() / rates.min())


def test_what_a_score_means():
    x, subj = synthetic(800, 250, 16, 5)
    cfg = EvaluationConfig(thresholds=(parse_threshold("fmr=1e-2"), parse_threshold("0.45")), bootstrap=0)
    report = evaluate_embeddings(x, subj, None, cfg)
    rates = report.rates_frame().set_index("threshold_name")
    t = rates.loc["fmr=0.01", "threshold"]
    exact = rates.loc["fmr=0.01", "fmr"]
    width = report.run["hist_bin_width"]
    # histogram estimate brackets the exact FMR within one bin
    assert report.false_match_rate_at(1.0 - t + width) <= exact <= report.false_match_rate_at(1.0 - t - width)
    est = report.chance_of_false_candidate(100, t)
    assert est.method == "estimate"
    assert est.value == pytest.approx(1 - (1 - exact) ** 100)
    ident = [{"group": {}, "gallery_size": 100, "threshold": t, "fpir": 0.25}]
    measured = report.with_identification(ident).chance_of_false_candidate(100, t)
    assert (measured.method, measured.value) == ("measured", 0.25)
    with pytest.raises(KeyError):
        report.false_match_rate_at(0.5, {"sex": "F"})


def test_config_and_calibration_round_trip():
    cfg = EvaluationConfig(
        by=(("sex",), ("sex", "race")),
        thresholds=(parse_threshold("fmr=1e-3"), parse_threshold("0.07")),
        default_threshold=0.1,
        multi_label="explode",
        bootstrap=5,
    )
    assert EvaluationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    x, subj = synthetic(200, 60, 8, 9)
    labels = pd.DataFrame({"sex": np.where(subj % 2, "F", "M")})
    cal = calibrate(x, subj, 0.01, labels, by=[("sex",)])
    d = json.loads(json.dumps(cal.to_dict()))
    assert d["achieved_fmr"] <= 0.01 and d["threshold"] == cal.result.threshold
    assert {r["group_name"] for r in d["per_group"]} == {"all", "sex=F", "sex=M"}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(4, 35), seed=st.integers(0, 5000))
def test_intersection_rows_equal_brute_force(n, seed):
    x, subj = synthetic(n, 10, 5, seed)
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)  # per image, so a subject's images may differ
    race = rng.choice(["A", "B", ""], n)
    labels = pd.DataFrame({"sex": sex, "race": race})
    cfg = EvaluationConfig(by=(("sex", "race"),), thresholds=(parse_threshold("0.6"),), bootstrap=0)
    rows = evaluate_embeddings(x, subj, labels, cfg).rates_frame()

    def groups_of(i):
        return {(str(sex[i]), str(race[i]) or UNKNOWN)}

    ref = brute_rows(x, subj, groups_of, [0.6])
    for r in rows.itertuples():
        if r.pairing == "all":
            continue
        g = (r.group["sex"], r.group["race"])
        if r.pairing == "within":
            key = ("within", g, None)
        else:
            o = (r.other_group["sex"], r.other_group["race"])
            key = ("cross", min(g, o), max(g, o))
        exp = ref.get(key, {"gen": 0, "imp": 0, "fnm": [0], "fm": [0]})
        assert (r.genuine_pairs, r.impostor_pairs, r.false_non_matches, r.false_matches) == (
            exp["gen"],
            exp["imp"],
            exp["fnm"][0],
            exp["fm"][0],
        ), key
