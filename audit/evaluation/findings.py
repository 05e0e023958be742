"""What a stored evaluation says, in one line a board can read, and the tables behind its charts.

:func:`rate_finding`
    Per grouping, threshold and metric: the group with the highest rate against the
    group with the lowest, among groups with enough data (``low_count`` false), as
    ``"F's false-match rate is 2.8x M's [1.1-7.0]"``. The ratio and its interval are the
    disparity rows' (:mod:`audit.evaluation.disparity`: the same subject-bootstrap
    resamples as the rates), so the sentence and the table agree. When the lowest group
    had no errors the ratio is unbounded and the sentence says so ("M had none in 1,710
    pairs, fewer than 1 in 1,710"), never naming the other group "best".
:func:`disparity_view`
    The disparity rows of one grouping and threshold in words, with the reference group
    named for what it is: the lowest *non-zero* rate, and the groups at zero named beside it.
:func:`false_candidate_curves`
    The chance that a 1:N search of someone not in the gallery returns a candidate,
    against gallery size, per group: measured FPIR (Wilson interval) where the evaluation
    searched a gallery of that size, else ``1 - (1 - FMR)^N`` from the group's pairwise
    FMR and its interval (labelled an estimate: it assumes independent comparisons).

Groups are named by their label values (``F``, not ``sex=F``). Nothing here renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from audit.evaluation.report import EvaluationReport
from audit.numbers import percent_text, rate_text, ratio_text

__all__ = [
    "METRIC_WORDS", "Finding", "chance_finding", "disparity_view", "false_candidate_curves", "false_match_words",
    "group_cells", "rate_finding",
]

Metric = Literal["fmr", "fnmr"]

#: How each metric reads in a sentence.
METRIC_WORDS = {"fmr": "false-match rate", "fnmr": "missed-match rate"}
_DISPARITY_METRIC = {"fmr": "false_match_rate", "fnmr": "false_non_match_rate"}
_TRIALS = {"fmr": "impostor_pairs", "fnmr": "genuine_pairs"}
_ERRORS = {"fmr": "false_matches", "fnmr": "false_non_matches"}


@dataclass(frozen=True)
class Finding:
    """One plain-language finding about one metric of one grouping at one threshold."""

    metric: str
    """``fmr`` or ``fnmr``."""
    grouping: str
    threshold_name: str
    text: str
    """The sentence shown under the chart."""
    higher: str | None
    """The group with the highest rate (among groups with enough data)."""
    lower: str | None
    """The group with the lowest rate (among groups with enough data)."""
    ratio: float | None
    """``higher``'s rate over ``lower``'s (``inf`` when ``lower``'s is zero and ``higher``'s is not)."""
    ratio_lo: float | None
    ratio_hi: float | None
    insufficient: tuple[str, ...]
    """Groups left out for too few pairs or subjects (``low_count``)."""


def _label(group: Any, name: str) -> str:
    if isinstance(group, dict) and group:
        return ", ".join(str(v) for v in group.values())
    return name.split("=", 1)[-1] if "=" in name else name


def group_cells(report: EvaluationReport, grouping: str, threshold_name: str) -> pd.DataFrame:
    """Return the ``within`` rate rows of one grouping at one named threshold, with a ``label`` column (``F``).

    Raises
    ------
    KeyError
        If the report has no such grouping or threshold.
    """
    if not report.rates:
        raise KeyError("the evaluation has no rates")

    def build() -> pd.DataFrame:
        rates = report.rates_frame()
        cells = rates[(rates["pairing"] == "within") & (rates["grouping"] == grouping)
                      & (rates["threshold_name"] == threshold_name)].copy()
        if cells.empty:
            raise KeyError(f"no per-group rates for grouping {grouping!r} at threshold {threshold_name!r}")
        cells["label"] = [_label(g, n) for g, n in zip(cells["group"], cells["group_name"], strict=True)]
        cells["low_count"] = cells["low_count"].fillna(False).astype(bool)
        return cells.reset_index(drop=True)

    return report.built(("group_cells", grouping, threshold_name), build)  # a page asks for it several times


def _disparity_interval(
    report: EvaluationReport, grouping: str, threshold_name: str, metric: Metric, higher: str, lower: str
) -> tuple[float | None, float | None]:
    d = report.disparity()
    if d.empty:
        return None, None
    row = d[(d["grouping"] == grouping) & (d["threshold_name"] == threshold_name)
            & (d["metric"] == _DISPARITY_METRIC[metric]) & (d["group_name"] == higher)
            & (d["best_group_name"] == lower)]
    if row.empty:
        return None, None
    lo, hi = row.iloc[0]["relative_lo"], row.iloc[0]["relative_hi"]
    return (None if pd.isna(lo) else float(lo)), (None if pd.isna(hi) else float(hi))


def rate_finding(report: EvaluationReport, grouping: str, threshold_name: str, metric: Metric) -> Finding:
    """Return the one-line finding for ``metric`` of ``grouping`` at ``threshold_name`` (see the module docstring).

    Raises
    ------
    KeyError
        If the report has no such grouping or threshold.
    ValueError
        For a metric other than ``fmr`` or ``fnmr``.
    """
    if metric not in METRIC_WORDS:
        raise ValueError(f"metric must be 'fmr' or 'fnmr', got {metric!r}")
    cells = group_cells(report, grouping, threshold_name)
    words = METRIC_WORDS[metric]
    insufficient = tuple(cells.loc[cells["low_count"], "label"])
    ok = cells[~cells["low_count"] & cells[metric].notna() & (cells[_TRIALS[metric]] > 0)]
    left_out = (f" ({len(insufficient)} group(s) with insufficient data left out: {', '.join(insufficient)})"
                if insufficient else "")
    trials = _TRIALS[metric]

    def finding(text: str, hi: pd.Series | None = None, lo: pd.Series | None = None, ratio: float | None = None,
                r_lo: float | None = None, r_hi: float | None = None) -> Finding:
        return Finding(metric, grouping, threshold_name, text + left_out + ".", None if hi is None else str(hi["label"]),
                       None if lo is None else str(lo["label"]), ratio, r_lo, r_hi, insufficient)

    if len(ok) < 2:
        return finding(f"Too few groups with enough data to compare the {words} by {grouping}")
    ordered = ok.sort_values([metric, _TRIALS[metric]], ascending=[False, False])
    hi, lo = ordered.iloc[0], ordered.iloc[-1]
    hi_rate, lo_rate = float(hi[metric]), float(lo[metric])
    lo_words = rate_text(lo_rate, int(lo[_TRIALS[metric]]))
    if hi_rate == 0.0:
        event = "false match" if metric == "fmr" else "missed match"
        return finding(f"No group with enough data had a {event} at this threshold (for example "
                       f"{lo['label']}: {lo_words})", hi, lo, math.nan)
    if lo_rate == 0.0:
        return finding(f"{hi['label']}'s {words} is {rate_text(hi_rate, int(hi[trials]))}; "
                       f"{lo['label']} had none in {int(lo[trials]):,} pairs ({lo_words}), so no ratio "
                       "can be given", hi, lo, math.inf)
    ratio = hi_rate / lo_rate
    r_lo, r_hi = _disparity_interval(report, grouping, threshold_name, metric, str(hi["group_name"]),
                                     str(lo["group_name"]))
    text = f"{hi['label']}'s {words} is {ratio_text(ratio)} {lo['label']}'s"
    if r_lo is not None and r_hi is not None:
        text += " " + ratio_text(ratio, r_lo, r_hi).split(" ", 1)[1]
    text += f" ({rate_text(hi_rate)} against {rate_text(lo_rate)})"
    if r_lo is not None and r_lo <= 1.0:
        text += "; the interval includes 1, so the difference may be chance"
    return finding(text, hi, lo, ratio, r_lo, r_hi)


def disparity_view(report: EvaluationReport, grouping: str, threshold_name: str) -> pd.DataFrame:
    """Return the disparity rows of one grouping and threshold in words (see the module docstring).

    Columns: ``metric`` (words), ``group``, ``rate`` (words), ``compared with`` (the
    reference group, "lowest non-zero rate", with any groups at zero named), ``ratio``
    (with its interval), ``outside 0.8-1.25``, ``insufficient data``. Empty when the
    evaluation has no disparity rows for them.
    """
    d = report.disparity()
    columns = ["metric", "group", "rate", "compared with", "ratio", "outside 0.8-1.25", "insufficient data"]
    if d.empty:
        return pd.DataFrame(columns=columns)
    d = d[(d["grouping"] == grouping) & (d["threshold_name"] == threshold_name)]
    cells = group_cells(report, grouping, threshold_name).set_index("group_name")
    rows = []
    for metric, name in _DISPARITY_METRIC.items():
        part = d[d["metric"] == name]
        zeros = [str(cells.loc[g, "label"]) for g in part["group_name"]
                 if g in cells.index and cells.loc[g, metric] == 0 and not cells.loc[g, "low_count"]]
        for _, r in part.iterrows():
            cell = cells.loc[r["group_name"]] if r["group_name"] in cells.index else None
            trials = int(cell[_TRIALS[metric]]) if cell is not None else None
            best = r["best_group_name"]
            ref = "(none: every rate is zero)" if best is None or pd.isna(best) else (
                f"{_label(None, str(best))} (lowest non-zero rate)"
                + (f"; {', '.join(zeros)} at zero" if zeros else ""))
            rate = None if pd.isna(r["rate"]) else float(r["rate"])
            if rate == 0.0:
                ratio = "none observed"
            elif best is not None and not pd.isna(best) and r["group_name"] == best:
                ratio = "reference"
            else:
                ratio = ratio_text(None if pd.isna(r["relative_to_best"]) else float(r["relative_to_best"]),
                                   None if pd.isna(r["relative_lo"]) else float(r["relative_lo"]),
                                   None if pd.isna(r["relative_hi"]) else float(r["relative_hi"]))
            rows.append({
                "metric": METRIC_WORDS[metric],
                "group": cell["label"] if cell is not None else _label(r["group"], str(r["group_name"])),
                "rate": rate_text(rate, trials),
                "compared with": ref,
                "ratio": ratio,
                "outside 0.8-1.25": "–" if ratio in ("reference", "none observed") or r["flag"] is None
                else ("yes" if bool(r["flag"]) else "no"),
                "insufficient data": "yes" if bool(r["low_count"]) else "no",
            })
    return pd.DataFrame(rows, columns=columns)


def _nearest(values: pd.Series, target: float) -> float:
    arr = values.to_numpy(dtype=float)
    return float(arr[int(np.argmin(np.abs(arr - target)))])


def false_candidate_curves(
    report: EvaluationReport, grouping: str, threshold_name: str, sizes: tuple[int, ...] | None = None
) -> pd.DataFrame:
    """Chance of a false candidate against gallery size, per group, at one named threshold (module docstring).

    Columns: ``label``, ``gallery_size``, ``chance``, ``lo``, ``hi``, ``method``
    (``measured``/``estimate``), ``searches`` (non-mated searches measured; NaN for an estimate),
    ``low_count``. ``sizes`` defaults to the decades 10..1,000,000 plus every measured size.

    Raises
    ------
    KeyError
        If the report has no such grouping or threshold.
    """
    return report.built(("false_candidate_curves", grouping, threshold_name, sizes),
                        lambda: _false_candidate_curves(report, grouping, threshold_name, sizes))


def _false_candidate_curves(
    report: EvaluationReport, grouping: str, threshold_name: str, sizes: tuple[int, ...] | None
) -> pd.DataFrame:
    cells = group_cells(report, grouping, threshold_name)
    threshold = float(cells["threshold"].iloc[0])
    ident = report.identification()
    measured = pd.DataFrame()
    if not ident.empty:
        ident = ident[ident["grouping"] == grouping]
        if not ident.empty:
            at = _nearest(ident["threshold"], threshold)
            measured = ident[(ident["threshold"] - at).abs() < 1e-9] if abs(at - threshold) < 1e-6 else measured
    grid = set(sizes or (10, 100, 1_000, 10_000, 100_000, 1_000_000))
    if not measured.empty:
        grid |= {int(s) for s in measured["gallery_size"]}
    rows: list[dict[str, Any]] = []
    for _, c in cells.iterrows():
        fmr, lo, hi = (float(c[k]) if pd.notna(c[k]) else math.nan for k in ("fmr", "fmr_lo", "fmr_hi"))
        for n in sorted(grid):
            rows.append({"label": c["label"], "gallery_size": n, "chance": 1 - (1 - fmr) ** n,
                         "lo": 1 - (1 - lo) ** n, "hi": 1 - (1 - hi) ** n, "method": "estimate",
                         "searches": math.nan, "low_count": bool(c["low_count"])})
        mine = measured[measured["group_name"] == c["group_name"]] if not measured.empty else measured
        for _, m in mine.iterrows():
            if pd.isna(m["fpir"]):
                continue
            rows.append({"label": c["label"], "gallery_size": int(m["gallery_size"]), "chance": float(m["fpir"]),
                         "lo": float(m["fpir_lo"]), "hi": float(m["fpir_hi"]), "method": "measured",
                         "searches": float(m["nonmated_searches"]), "low_count": bool(c["low_count"])})
    columns = ["label", "gallery_size", "chance", "lo", "hi", "method", "searches", "low_count"]
    return pd.DataFrame(rows, columns=columns)


def chance_finding(curves: pd.DataFrame, gallery_size: int) -> str:
    """Return the 1:N chart's one-line finding: the highest and lowest chance of a false candidate at one size.

    ``curves`` is :func:`false_candidate_curves`' frame; groups with insufficient data are left
    out, and a measured chance is preferred to an estimate at the same size.
    """
    at = curves[(curves["gallery_size"] == gallery_size) & ~curves["low_count"].astype(bool)]
    at = at.sort_values("method", key=lambda m: m != "measured").drop_duplicates("label")
    at = at[at["chance"].notna()]
    if len(at) < 2:
        return f"Too few groups with enough data to compare the chance of a false candidate at {gallery_size:,} faces."
    ordered = at.sort_values("chance", ascending=False)
    hi, lo = ordered.iloc[0], ordered.iloc[-1]
    how = "measured" if set(ordered["method"]) == {"measured"} else "partly estimated from pairwise rates"
    return (f"In a gallery of {gallery_size:,} faces, a search of someone who is not in it returns a false "
            f"candidate {percent_text(float(hi['chance']))} of the time for {hi['label']} against "
            f"{percent_text(float(lo['chance']))} for {lo['label']} ({how}).")


def false_match_words(report: EvaluationReport, similarity: float, group: dict[str, str] | None = None) -> str:
    """Return the false-match rate at a score in words: the share of impostor pairs scoring at least ``similarity``.

    ``"1 in 1,200"``, or ``"fewer than 1 in 167,620"`` when none of the evaluation's
    impostor pairs (of ``group``, or overall) scored that high; ``"no data"`` for a group
    without a score histogram. Read from the histogram, so exact to its bin width.
    """
    target = dict(group or {})
    rows = [r for r in report.histogram_rows if dict(r["group"]) == target]
    if not rows:
        return rate_text(None)
    total = int(sum(r["impostor"] for r in rows))
    return rate_text(report.false_match_rate_at(similarity, target) if total else None, total)
