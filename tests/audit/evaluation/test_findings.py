"""One-line findings, the disparity table in words and the 1:N chance by gallery size, from a hand-made report."""

from __future__ import annotations

import math
from typing import Any

import pytest

from audit import (
    EvaluationReport,
    disparity_view,
    false_candidate_curves,
    false_match_words,
    group_cells,
    rate_finding,
)


def cell(group: str, fmr: float, fnmr: float, *, impostor: int = 10_000, genuine: int = 400, low: bool = False,
         threshold: float = 0.3, name: str = "default") -> dict[str, Any]:
    return {"pairing": "within", "grouping": "sex", "group": {"sex": group}, "group_name": f"sex={group}",
            "threshold_name": name, "threshold": threshold, "fmr": fmr, "fmr_lo": fmr / 2, "fmr_hi": fmr * 2 + 1e-4,
            "fnmr": fnmr, "fnmr_lo": fnmr / 2, "fnmr_hi": min(1.0, fnmr * 2), "impostor_pairs": impostor,
            "genuine_pairs": genuine, "false_matches": round(fmr * impostor),
            "false_non_matches": round(fnmr * genuine), "subjects": 40, "images": 120, "low_count": low}


def disparity(group: str, metric: str, rate: float, best: str | None, rel: float, lo: float, hi: float,
              low: bool = False) -> dict[str, Any]:
    return {"grouping": "sex", "group": {"sex": group}, "group_name": f"sex={group}",
            "best_group_name": None if best is None else f"sex={best}", "threshold_name": "default",
            "threshold": 0.3, "metric": metric, "rate": rate, "relative_to_best": rel, "relative_lo": lo,
            "relative_hi": hi, "max_min_ratio": rel, "max_min_ratio_lo": lo, "max_min_ratio_hi": hi,
            "flag": not (0.8 <= rel <= 1.25), "max_min_flag": None, "low_count": low}


@pytest.fixture
def report() -> EvaluationReport:
    overall = {**cell("all", 2e-3, 0.1), "pairing": "all", "grouping": "all", "group": {}, "group_name": "all"}
    rates = (overall, cell("F", 2.8e-3, 0.0), cell("M", 1e-3, 0.05), cell("X", 0.5, 0.5, impostor=30, genuine=3,
                                                                         low=True))
    rows = (
        disparity("F", "false_match_rate", 2.8e-3, "M", 2.8, 1.1, 7.0),
        disparity("M", "false_match_rate", 1e-3, "M", 1.0, 1.0, 1.0),
        disparity("X", "false_match_rate", 0.5, "M", 500.0, 10.0, math.inf, low=True),
        # the missed-match rate: F at zero, so the reference is M, the lowest *non-zero* rate
        disparity("F", "false_non_match_rate", 0.0, "M", 0.0, 0.0, 0.0),
        disparity("M", "false_non_match_rate", 0.05, "M", 1.0, 1.0, 1.0),
    )
    return EvaluationReport(run={"run_id": "r"}, rates=rates, disparity_rows=rows)


def test_the_finding_names_the_ratio_with_its_interval_and_leaves_small_groups_out(report: EvaluationReport) -> None:
    f = rate_finding(report, "sex", "default", "fmr")
    assert f.text.startswith("F's false-match rate is 2.8x M's [1.1-7.0] (1 in 357 against 1 in 1,000)")
    assert (f.higher, f.lower, f.ratio_lo, f.ratio_hi) == ("F", "M", 1.1, 7.0)
    assert f.ratio == pytest.approx(2.8)
    assert f.insufficient == ("X",) and "insufficient data left out: X" in f.text  # X's 50% is not the headline


def test_a_zero_group_makes_the_ratio_unbounded_and_is_never_called_best(report: EvaluationReport) -> None:
    f = rate_finding(report, "sex", "default", "fnmr")
    assert f.higher == "M" and f.lower == "F" and f.ratio == math.inf
    assert "F had none in 400 pairs (fewer than 1 in 400), so no ratio can be given" in f.text
    assert "best" not in f.text.lower()


def test_an_interval_that_includes_parity_is_said_to_be_possibly_chance() -> None:
    overall = {**cell("all", 2e-3, 0.1), "pairing": "all", "grouping": "all", "group": {}, "group_name": "all"}
    rep = EvaluationReport(run={}, rates=(overall, cell("F", 1.5e-3, 0.1), cell("M", 1e-3, 0.1)),
                           disparity_rows=(disparity("F", "false_match_rate", 1.5e-3, "M", 1.5, 0.7, 3.1),))
    assert "may be chance" in rate_finding(rep, "sex", "default", "fmr").text


def test_too_few_groups_with_enough_data_gives_no_comparison() -> None:
    overall = {**cell("all", 2e-3, 0.1), "pairing": "all", "grouping": "all", "group": {}, "group_name": "all"}
    rep = EvaluationReport(run={}, rates=(overall, cell("F", 1e-3, 0.1), cell("M", 1e-2, 0.1, low=True)))
    f = rate_finding(rep, "sex", "default", "fmr")
    assert f.text.startswith("Too few groups with enough data") and f.ratio is None


def test_unknown_grouping_threshold_or_metric_is_a_named_error(report: EvaluationReport) -> None:
    with pytest.raises(KeyError, match="race"):
        rate_finding(report, "race", "default", "fmr")
    with pytest.raises(ValueError, match="metric must be"):
        rate_finding(report, "sex", "default", "eer")  # type: ignore[arg-type]


def test_the_disparity_table_names_the_reference_for_what_it_is(report: EvaluationReport) -> None:
    view = disparity_view(report, "sex", "default")
    missed = view[view["metric"] == "missed-match rate"].set_index("group")
    assert missed.loc["F", "rate"] == "fewer than 1 in 400" and missed.loc["F", "ratio"] == "none observed"
    assert missed.loc["M", "compared with"] == "M (lowest non-zero rate); F at zero"
    assert missed.loc["M", "ratio"] == "reference"
    assert not view["compared with"].str.contains("best").any()
    false_match = view[view["metric"] == "false-match rate"].set_index("group")
    assert false_match.loc["F", "ratio"] == "2.8x [1.1-7.0]" and false_match.loc["F", "outside 0.8-1.25"] == "yes"
    assert false_match.loc["X", "insufficient data"] == "yes"


def test_the_chance_of_a_false_candidate_grows_with_gallery_size_and_uses_measured_fpir(
        report: EvaluationReport) -> None:
    ident = ({"grouping": "sex", "group": {"sex": "F"}, "group_name": "sex=F", "threshold_name": "default",
              "threshold": 0.3, "gallery_size": 500, "fpir": 0.6, "fpir_lo": 0.5, "fpir_hi": 0.7,
              "nonmated_searches": 90, "false_positive_searches": 54},)
    rep = EvaluationReport(run=report.run, rates=report.rates, identification_rows=ident)
    curves = false_candidate_curves(rep, "sex", "default", sizes=(10, 1000))
    est = curves[(curves["label"] == "M") & (curves["method"] == "estimate")].set_index("gallery_size")
    assert est.loc[10, "chance"] == pytest.approx(1 - (1 - 1e-3) ** 10)
    assert est.loc[1000, "chance"] > est.loc[10, "chance"]
    assert est.loc[10, "lo"] <= est.loc[10, "chance"] <= est.loc[10, "hi"]
    measured = curves[curves["method"] == "measured"]
    assert measured[["label", "gallery_size", "chance", "searches"]].values.tolist() == [["F", 500, 0.6, 90.0]]
    assert 500 in set(curves.loc[curves["method"] == "estimate", "gallery_size"])  # estimated there too, to compare
    assert curves.loc[curves["label"] == "X", "low_count"].all()


def test_the_false_match_rate_at_a_score_reads_in_words_and_zero_of_n_is_fewer_than_one_in_n() -> None:
    hist = ({"group": {}, "bin_lo": 0.0, "bin_hi": 0.5, "impostor": 9_990, "genuine": 0},
            {"group": {}, "bin_lo": 0.5, "bin_hi": 0.9, "impostor": 10, "genuine": 50},
            {"group": {}, "bin_lo": 0.9, "bin_hi": 1.0, "impostor": 0, "genuine": 350},
            {"group": {"sex": "F"}, "bin_lo": 0.0, "bin_hi": 1.0, "impostor": 100, "genuine": 0})
    rep = EvaluationReport(run={}, rates=(), histogram_rows=hist)
    assert false_match_words(rep, 0.6) == "1 in 1,000"  # 10 of 10,000 impostor pairs score at least 0.6
    assert false_match_words(rep, 0.95) == "fewer than 1 in 10,000"  # none did: never "0.00e+0"
    assert false_match_words(rep, 0.95, {"sex": "F"}) == "100%"  # one bin 0-1: the bin holding the score counts
    assert false_match_words(rep, 0.95, {"sex": "M"}) == "no data"


def test_frames_are_built_once_per_report_and_each_caller_gets_its_own_copy(report: EvaluationReport) -> None:
    """A page reads one run's frames many times: built once, but a caller's change never reaches the next caller."""
    first = report.rates_frame()
    assert report.rates_frame() is not first and report.rates_frame().equals(first)
    first["fmr"] = 1.0  # a caller changes its copy
    assert report.rates_frame()["fmr"].tolist() == [r["fmr"] for r in report.rates]
    cells = group_cells(report, "sex", "default")
    cells.loc[0, "label"] = "changed"
    assert group_cells(report, "sex", "default")["label"].tolist() == ["F", "M", "X"]
    curves = false_candidate_curves(report, "sex", "default")
    curves["chance"] = 0.0
    assert false_candidate_curves(report, "sex", "default")["chance"].max() > 0
    with pytest.raises(KeyError, match="no per-group rates for grouping 'race'"):
        group_cells(report, "race", "default")  # an unknown grouping is still an error, never a cached empty frame
    with pytest.raises(KeyError, match="no per-group rates for grouping 'race'"):
        group_cells(report, "race", "default")
