"""Demographic performance plots that convince: log axes with readable ticks, small groups set apart, the operating
threshold marked, a finding per chart, the 1:N chance by gallery size, the explorer following the threshold selector,
and every chart's numbers as a table."""

from __future__ import annotations

import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP, as_user

PAGE = "app_pages/demographics.py"


def page(grouping: str = "sex") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.switch_page(PAGE).run()
    at.selectbox(key="demographics_grouping").set_value(grouping).run()
    assert not at.exception
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(data: object) -> list:
    """A trace's values, as plotly stores them (a list, or base64 ``bdata`` with its dtype)."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)  # type: ignore[call-overload]


def explorer(at: AppTest):  # noqa: ANN201 (streamlit's Slider)
    return next(s for s in at.slider if s.key.startswith("demographics_explorer"))


def findings(at: AppTest) -> list[str]:
    """The findings as read on screen (the page escapes every markdown character of them)."""
    return [m.value.replace("\\", "") for m in at.markdown if "Finding" in m.value]


def test_rates_are_on_log_axes_with_percent_ticks_never_si_prefixes(app_env: str) -> None:
    at = page()
    specs = figures(at)
    rate_axes = [s["layout"]["xaxis"] for s in specs[:2]]
    assert all(a["type"] == "log" for a in rate_axes)
    det = specs[2]["layout"]
    assert det["xaxis"]["type"] == "log" and det["yaxis"]["type"] == "log"
    for axis in (*rate_axes, det["xaxis"], det["yaxis"]):
        assert axis["ticktext"] and all(t.endswith("%") for t in axis["ticktext"])
        assert not any("μ" in t or "e-" in t for t in axis["ticktext"])


def test_each_rate_chart_has_intervals_counts_a_finding_and_a_table(app_env: str) -> None:
    at = page()
    fmr_chart = figures(at)[0]
    dots = [t for t in fmr_chart["data"] if t["name"] == "rate (95% interval)"]
    assert dots and values(dots[0]["error_x"]["array"])  # interval bars
    assert all("pairs" in text for t in fmr_chart["data"] for text in t["text"])  # counts on the chart
    zero = [t for t in fmr_chart["data"] if t["name"] == "no error observed (upper bound)"]
    assert zero and values(zero[0]["y"]) == ["M"]  # M has no false match: drawn at its upper bound, not at "0" on a log axis
    text = findings(at)
    # the fake scene: F has false matches, M none in 1,710 impostor pairs; M misses more than F
    assert any("F's false-match rate is 1 in" in t and "M had none in 1,710 pairs" in t for t in text)
    assert any("M's missed-match rate is 1.4x F's [" in t for t in text)
    assert not any("best" in t.lower() for t in text)
    tables = [d.value for d in at.dataframe]
    fmr_table = next(t for t in tables if "false-match rate" in t.columns and "95% interval" in t.columns)
    assert fmr_table.set_index("group").loc["M", "false-match rate"] == "fewer than 1 in 1,710"
    assert "e-" not in " ".join(fmr_table["false-match rate"])
    charts = at.get("plotly_chart")
    assert "M: fewer than 1 in 1,710" in charts[0].proto.alt  # the chart's text alternative


def test_groups_with_insufficient_data_are_set_apart_and_shown_only_on_request(app_env: str) -> None:
    at = page("race")  # race=b: 819 impostor pairs, below the minimum of 1,000
    groups = [t for t in (d.value for d in at.dataframe) if "95% interval" in t.columns]
    assert all("b" not in g["group"].tolist() for g in groups)
    assert any("Insufficient data" in c.value and "b (819 impostor" in c.value for c in at.caption)
    assert any("Too few groups with enough data" in t and "insufficient data left out: b" in t for t in findings(at))
    at.toggle(key="demographics_show_small").set_value(True).run()
    assert not at.exception
    groups = [t for t in (d.value for d in at.dataframe) if "95% interval" in t.columns]
    assert all("b (insufficient data)" in g["group"].tolist() for g in groups)


def test_the_operating_threshold_is_marked_on_the_det_curves(app_env: str) -> None:
    at = page()
    det = figures(at)[2]
    marks = [t for t in det["data"] if t["name"].startswith("operating threshold")]
    assert len(marks) == 1 and marks[0]["name"] == "operating threshold (default)"
    assert len(values(marks[0]["x"])) == 1  # F only: M's zero false-match rate cannot sit on a log axis ...
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["group", "false-match rate",
                                                                              "missed-match rate"])
    assert table.set_index("group").loc["M", "false-match rate"] == "fewer than 1 in 1,710"  # ... its row says so


def test_the_one_to_n_chart_shows_the_chance_against_gallery_size_per_group(app_env: str) -> None:
    at = page()
    one_n = figures(at)[3]
    assert one_n["layout"]["xaxis"]["type"] == "log"
    names = {t["name"] for t in one_n["data"]}
    assert {"F (estimate)", "M (estimate)"} <= names
    f_line = next(t for t in one_n["data"] if t["name"] == "F (estimate)")
    assert values(f_line["y"]) == sorted(values(f_line["y"]))  # a bigger gallery, a bigger chance
    table = next(d.value for d in at.dataframe if "faces in the gallery" in d.value.columns)
    assert set(table["group"]) == {"F", "M"} and table["chance"].str.endswith("%").all()
    assert any("In a gallery of 1,000 faces" in t for t in findings(at))


def test_the_explorer_follows_the_threshold_selector(app_env: str) -> None:
    at = page()
    assert abs(explorer(at).value - 0.3) < 1e-9
    at.selectbox(key="demographics_threshold").set_value("fmr=0.0001").run()
    assert not at.exception
    wanted = float(next(m.value for m in at.metric if m.label.startswith("Threshold")))
    assert abs(explorer(at).value - wanted) < 1e-6
    explorer(at).set_value(0.25).run()  # the user's own choice then stays
    assert abs(explorer(at).value - 0.25) < 1e-9
    assert any(t["name"] == "false-match rate" for t in figures(at)[4]["data"])


def test_the_disparity_table_never_calls_a_group_best_when_another_is_at_zero(app_env: str) -> None:
    at = page()
    view = next(d.value for d in at.dataframe if "compared with" in d.value.columns)
    assert not view["compared with"].str.contains("best").any()
    fm = view[view["metric"] == "false-match rate"].set_index("group")
    assert fm.loc["F", "compared with"] == "F (lowest non-zero rate); M at zero"
    assert fm.loc["M", "ratio"] == "none observed"
