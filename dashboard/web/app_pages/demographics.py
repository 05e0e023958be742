"""Demographic performance: per-group error rates, DET curves, 1:N chance, threshold explorer, disparity, inequity.

Everything is read from stored evaluation reports (FMR/FNMR with bootstrap intervals),
of facetrail's engine or of a system evaluated from its own scores (whose thresholds
are in that system's units). Rates are on log axes with their intervals and counts;
groups with too few pairs or subjects are set apart as "insufficient data"; the
operating threshold is marked on every curve; each chart has a one-line finding
(:func:`audit.rate_finding`) and its numbers as a table under it. Names that come from
data (datasets, systems, groups) are shown as plain text, never as markup.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from audit import (
    MEASURE_EXPLANATIONS,
    METRIC_WORDS,
    chance_finding,
    disparity_view,
    false_candidate_curves,
    group_cells,
    log_ticks,
    percent_text,
    rate_finding,
    rate_text,
)
from dashboard.web.app_pages.common import PLOT_CONFIG, chart, evaluations, readable, require
from dashboard.web.views import plain

_TRIALS = {"fmr": "impostor_pairs", "fnmr": "genuine_pairs"}
MATCH_LOG = "app_pages/match_log.py"


def threshold_label(run: dict) -> str:
    """Return what the run's thresholds are: a cosine distance, or the evaluated system's own score."""
    convention = str(run.get("threshold_convention", ""))
    if convention.startswith("the system's similarity"):
        return "Threshold (system score, match iff score >= threshold)"
    if convention.startswith("the system's distance"):
        return "Threshold (system score, match iff score <= threshold)"
    return "Threshold (cosine distance)"


def log_axis(values: pd.Series) -> dict:
    """Return plotly axis settings: a log axis over the positive ``values`` with percent ticks ("0.001%", never "10μ")."""
    positive = values[(values > 0) & values.notna()]
    lo = float(positive.min()) if not positive.empty else 1e-4
    hi = float(positive.max()) if not positive.empty else 1.0
    ticks, text = log_ticks(max(lo / 5, 1e-7), min(max(hi * 5, lo * 100), 1.0))  # at least two decades
    return {"type": "log", "tickvals": ticks, "ticktext": text, "range": [math.log10(ticks[0]), math.log10(ticks[-1])]}


def rate_chart(cells: pd.DataFrame, metric: str, title: str) -> tuple[go.Figure, pd.DataFrame]:
    """Draw dots with interval bars on a log axis; a zero rate is drawn at its upper bound as "<" (and said in words)."""
    lo_col, hi_col, trials = f"{metric}_lo", f"{metric}_hi", _TRIALS[metric]
    rows = cells.assign(
        shown=[r[metric] if r[metric] > 0 else r[hi_col] for _, r in cells.iterrows()],
        words=[rate_text(float(r[metric]), int(r[trials])) for _, r in cells.iterrows()],
        label=[html.escape(str(v)) for v in cells["label"]],
    )
    fig = go.Figure()
    for zero, part in rows.groupby(rows[metric] == 0):
        fig.add_trace(go.Scatter(
            x=part["shown"], y=part["label"], mode="markers+text", name="no error observed (upper bound)" if zero
            else "rate (95% interval)", marker={"symbol": "triangle-left" if zero else "circle", "size": 11},
            text=[f"{w} · {int(n):,} pairs" for w, n in zip(part["words"], part[trials], strict=True)],
            textposition="top center",
            error_x=None if zero else {"type": "data", "symmetric": False,
                                       "array": (part[hi_col] - part[metric]).clip(lower=0),
                                       "arrayminus": (part[metric] - part[lo_col]).clip(lower=0)},
        ))
    fig.update_layout(title=title, height=160 + 60 * len(rows), xaxis=log_axis(pd.concat([rows["shown"], rows[lo_col]])),
                      yaxis={"type": "category", "title": None}, legend={"orientation": "h", "y": -0.25},
                      xaxis_title=METRIC_WORDS[metric])
    table = pd.DataFrame({"group": cells["label"], METRIC_WORDS[metric]: rows["words"],
                          "95% interval": [f"{'0' if a == 0 else rate_text(float(a))} to {rate_text(float(b), int(n))}"
                                           for a, b, n in zip(cells[lo_col], cells[hi_col], cells[trials],
                                                              strict=True)],
                          "pairs": [f"{int(n):,}" for n in cells[trials]], "subjects": cells["subjects"]})
    return fig, table


user = require("read_evaluations")
st.title("Demographic performance")

runs = evaluations().list()
if not runs:
    st.info("No evaluation stored yet. Evaluate a labelled dataset (`facetrail evaluate`, or "
            "`facetrail demo --no-serve`, which evaluates congress_small and lfw_small).")
    st.stop()

labels = {r.label: r for r in runs}
c0, c1, c2 = st.columns([2, 1, 1])
chosen = labels[c0.selectbox("Evaluation", list(labels), key="demographics_run")]
report = evaluations().load(chosen.run_id)
run = report.run
rates = report.rates_frame()
within = rates[rates["pairing"] == "within"]
if within.empty:
    st.info("This evaluation has no per-group results (it was run without --by).")
    st.stop()
grouping = c1.selectbox("Group by", sorted(within["grouping"].unique()), key="demographics_grouping")
threshold_names = list(dict.fromkeys(rates["threshold_name"]))
threshold_name = c2.selectbox("Threshold", threshold_names, key="demographics_threshold")
system = dict(run.get("system") or {})
who = (f"system {plain(system.get('name'))} {plain(system.get('version') or '')} (its own "
       f"{plain(system.get('score_direction'))} scores, file SHA-256 {plain(str(system.get('scores_sha256'))[:12])}…)"
       if system else f"model {plain(dict(run.get('model_config') or {}).get('model'))}")
st.caption(
    f"Dataset **{plain(chosen.dataset)}**: {run.get('images')} images of {run.get('subjects')} people, "
    f"{run.get('genuine_pairs'):,} genuine and {run.get('impostor_pairs'):,} impostor pairs · {who} · "
    f"{plain(run.get('interval'))} · fingerprint {plain(str(run.get('dataset_fingerprint'))[:12])}… · "
    f"code {plain(run.get('code_version'))}  \n"
    ":material/info: Labels are annotations by others, not self-reported; groups are small (read the counts and "
    "intervals); these are studio portraits and press photos, not operational CCTV or body-cam frames."
)
cells = group_cells(report, grouping, threshold_name)
overall = rates[(rates["pairing"] == "all") & (rates["threshold_name"] == threshold_name)].iloc[0]
operating = float(overall["threshold"])

m1, m2, m3 = st.columns(3)
m1.metric(threshold_label(run), f"{operating:.7g}")
m2.metric("Overall false-match rate", rate_text(float(overall["fmr"]), int(overall["impostor_pairs"])),
          help=f"95% interval {rate_text(float(overall['fmr_lo']))} to {rate_text(float(overall['fmr_hi']))}; "
               f"{int(overall['impostor_pairs']):,} impostor pairs")
m3.metric("Overall missed-match rate", rate_text(float(overall["fnmr"]), int(overall["genuine_pairs"])),
          help=f"False non-match rate; 95% interval {rate_text(float(overall['fnmr_lo']))} to "
               f"{rate_text(float(overall['fnmr_hi']))}; {int(overall['genuine_pairs']):,} genuine pairs")

enough = cells[~cells["low_count"]]
small = cells[cells["low_count"]]
show_small = st.toggle(f"Also show the {len(small)} group(s) with insufficient data", value=False,
                       key="demographics_show_small", disabled=small.empty)
shown_cells = cells if show_small else enough
if not small.empty:
    st.caption("Insufficient data (too few pairs or subjects for a reliable rate; "
               + ("shown, marked, below" if show_small else "not in this view") + "): "
               + ", ".join(f"{plain(r['label'])} ({int(r['impostor_pairs']):,} impostor, "
                           f"{int(r['genuine_pairs']):,} genuine pairs, {int(r['subjects'])} subjects)"
                           for _, r in small.iterrows()))
shown_cells = shown_cells.assign(label=[f"{v} (insufficient data)" if low else v
                                        for v, low in zip(shown_cells["label"], shown_cells["low_count"],
                                                          strict=True)])

# a group's dot opens the searches whose operator stated that probe's group (single-label groups only: a probe's
# group is one label, audit.probe_group); the chart's labels are escaped, as drawn
targets = {html.escape(str(label)): str(name) for label, name in zip(shown_cells["label"], shown_cells["group_name"],
                                                                     strict=True) if str(name).count("=") == 1}
can_open = user.can("read_log") and bool(targets)
if can_open:
    st.caption("Click a group's dot to open, in the Match log, the searches whose operator stated that the probe's "
               "person is in that group (stated at search time, never inferred from the face).")
left, right = st.columns(2)
for where, metric in ((left, "fmr"), (right, "fnmr")):
    words = METRIC_WORDS[metric]
    if shown_cells.empty:
        where.info(f"No group has enough data for its {words}.")
        continue
    fig, table = rate_chart(shown_cells, metric, f"{words.capitalize()} by group at {threshold_name} (log scale)")
    finding = rate_finding(report, grouping, threshold_name, metric)  # type: ignore[arg-type]
    key = f"demographics_{metric}_chart"
    event = where.plotly_chart(readable(fig), config=PLOT_CONFIG, key=key,
                               on_select="rerun" if can_open else "ignore", selection_mode="points",
                               alt=f"{words} by {grouping}: " + "; ".join(f"{g}: {w}" for g, w in
                                                                        zip(table["group"], table[words], strict=True)))
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if can_open and points and targets.get(str(points[0].get("y"))):
        del st.session_state[key]  # the click is spent: coming back does not follow it again
        st.switch_page(MATCH_LOG, query_params={"probe_group": targets[str(points[0]["y"])]})
    where.markdown(f"**Finding:** {plain(finding.text)}")
    where.dataframe(table, hide_index=True)
if "reproducible" in overall and overall["reproducible"] is not None:
    margin = overall.get("threshold_margin")
    st.caption(
        f"The nearest observed score is {margin:.3g} from this threshold: "
        + ("every count reproduces when the threshold is applied to the scores, in float32 or float64."
           if overall["reproducible"] else
           "closer than a float32 recomputation can tell apart, so a recount in float32 may differ by those pairs.")
    )

st.subheader("DET curves")
det = report.det()
points = det[det["grouping"] == grouping].copy() if not det.empty else det
if points.empty:
    st.info("This evaluation stored no DET points.")
else:
    names = dict(zip(cells["group_name"], cells["label"], strict=True))
    points["label"] = points["group_name"].map(names).fillna(points["group_name"])
    keep = set(shown_cells["group_name"])
    curves = points[(points["fmr"] > 0) & (points["fnmr"] > 0) & points["group_name"].isin(keep)]
    fig = go.Figure()
    marks = []
    for name, part in curves.groupby("label", sort=True):
        part = part.sort_values("fmr")
        fig.add_trace(go.Scatter(x=part["fmr"], y=part["fnmr"], mode="lines", name=html.escape(str(name))))
        cell = cells[cells["label"] == name].iloc[0]
        marks.append({"group": name, "false-match rate": rate_text(float(cell["fmr"]), int(cell["impostor_pairs"])),
                      "missed-match rate": rate_text(float(cell["fnmr"]), int(cell["genuine_pairs"])),
                      "x": float(cell["fmr"]), "y": float(cell["fnmr"])})
    drawable = [m for m in marks if m["x"] > 0 and m["y"] > 0]
    if drawable:
        fig.add_trace(go.Scatter(x=[m["x"] for m in drawable], y=[m["y"] for m in drawable], mode="markers",
                                 name=f"operating threshold ({html.escape(threshold_name)})",
                                 marker={"symbol": "x", "size": 12}))
    fig.update_layout(height=440, xaxis={**log_axis(curves["fmr"]), "title": "false-match rate"},
                      yaxis={**log_axis(curves["fnmr"]), "title": "missed-match rate (false non-match)"})
    chart(fig)
    fnmr_finding = rate_finding(report, grouping, threshold_name, "fnmr")
    st.markdown(f"**Finding at the operating threshold:** {plain(fnmr_finding.text)}")
    st.dataframe(pd.DataFrame(marks, columns=["group", "false-match rate", "missed-match rate"]), hide_index=True)
    st.caption("Each curve is one group's trade-off over all thresholds; the cross marks where the chosen "
               "threshold puts it (a group with no error at that threshold cannot be drawn on a log axis: "
               "its row says so).")

st.subheader("1:N: the chance of a false candidate against gallery size")
one_n = false_candidate_curves(report, grouping, threshold_name)
drawn = {str(v).removesuffix(" (insufficient data)") for v in shown_cells["label"]}  # none when every group is small
one_n = one_n[one_n["label"].isin(drawn)]
if one_n.empty:
    st.info("No group to draw.")
else:
    fig = go.Figure()
    for name, part in one_n[one_n["method"] == "estimate"].groupby("label", sort=True):
        fig.add_trace(go.Scatter(x=part["gallery_size"], y=part["chance"], mode="lines+markers",
                                 name=f"{html.escape(str(name))} (estimate)"))
    measured = one_n[one_n["method"] == "measured"]
    if not measured.empty:
        fig.add_trace(go.Scatter(
            x=measured["gallery_size"], y=measured["chance"], mode="markers", name="measured (95% interval)",
            text=[html.escape(str(v)) for v in measured["label"]], marker={"symbol": "diamond", "size": 12},
            error_y={"type": "data", "symmetric": False, "array": measured["hi"] - measured["chance"],
                     "arrayminus": measured["chance"] - measured["lo"]}))
    sizes = sorted(one_n["gallery_size"].unique())
    fig.update_layout(height=400, xaxis={"type": "log", "title": "faces in the gallery", "tickvals": sizes,
                                         "ticktext": [f"{int(s):,}" for s in sizes]},
                      yaxis={"title": "chance of at least one false candidate", "tickformat": ".0%",
                             "range": [0, 1.02]})
    chart(fig)
    at_size = int(measured["gallery_size"].iloc[0]) if not measured.empty else 1000
    st.markdown(f"**Finding:** {plain(chance_finding(one_n, at_size))}")
    table = one_n.assign(chance=[percent_text(min(max(float(v), 0.0), 1.0)) for v in one_n["chance"]],
                         interval=[f"{percent_text(min(max(float(a), 0.0), 1.0))} to "
                                   f"{percent_text(min(max(float(b), 0.0), 1.0))}"
                                   for a, b in zip(one_n["lo"], one_n["hi"], strict=True)])
    table["gallery_size"] = [f"{int(n):,}" for n in table["gallery_size"]]
    st.dataframe(table[["label", "gallery_size", "method", "chance", "interval"]].rename(
        columns={"label": "group", "gallery_size": "faces in the gallery"}), hide_index=True)
    st.caption(f"At the operating threshold ({plain(threshold_name)}). Estimates are 1 − (1 − FMR)^N from the "
               "group's pairwise false-match rate, which assumes independent comparisons (look-alike-rich "
               "galleries do worse); measured points are the share of searches, by people not in the gallery, "
               "that returned a candidate.")

st.subheader("Threshold explorer")
if points.empty:
    st.info("This evaluation stored no DET points to explore.")
else:
    lo, hi = float(points["threshold"].min()), float(points["threshold"].max())
    start = min(max(operating, lo), hi)
    step = 0.001 if hi - lo <= 2.0 else round((hi - lo) / 1000, 6) or 0.001
    # one slider per evaluation and threshold: choosing another threshold above starts the explorer there
    chosen_t = st.slider(threshold_label(run), lo, hi, start, step=step, format="%.3f",
                         key=f"demographics_explorer_{chosen.run_id[:12]}_{threshold_name}")
    at = (points[points["group_name"].isin(keep)].assign(gap=(points["threshold"] - chosen_t).abs())
          .sort_values("gap").groupby("label", as_index=False).first())
    fig = go.Figure()
    for metric, words in (("fmr", "false-match rate"), ("fnmr", "missed-match rate")):
        fig.add_trace(go.Bar(x=[html.escape(str(v)) for v in at["label"]], y=at[metric].where(at[metric] > 0),
                             name=words))
    both = pd.concat([at["fmr"], at["fnmr"]])
    fig.update_layout(barmode="group", height=340, yaxis={**log_axis(both), "title": "error rate (log scale)"},
                      title=f"At threshold {chosen_t:.3f}" + (" (the operating threshold)"
                                                              if abs(chosen_t - operating) < step else ""))
    chart(fig)
    st.dataframe(pd.DataFrame({"group": at["label"], "threshold": at["threshold"].round(4),
                               "false-match rate": [rate_text(float(v)) for v in at["fmr"]],
                               "missed-match rate": [rate_text(float(v)) for v in at["fnmr"]]}),
                 hide_index=True)
    st.caption("Rates at the stored DET point nearest to the chosen threshold (histogram resolution); a zero rate "
               "has no bar on a log axis (its row reads \"none observed\").")

st.subheader("Disparity")
view = disparity_view(report, grouping, threshold_name)
if view.empty:
    st.info("No disparity rows in this evaluation.")
else:
    st.dataframe(view if show_small else view[view["insufficient data"] == "no"], hide_index=True)
    st.caption("ratio: the group's rate over the reference group's, the lowest non-zero rate among groups with "
               "enough data (a group at zero is named beside it: no ratio to zero exists); 95% subject-bootstrap "
               "interval in brackets; outside 0.8-1.25 is flagged.")

st.subheader("Inequity measures")
inequity = report.inequity()
if inequity.empty:
    st.info("This evaluation has no inequity measures (it was stored before they were computed, or has no groups).")
else:
    shown = inequity[(inequity["grouping"] == grouping) & (inequity["threshold_name"] == threshold_name)]
    st.dataframe(shown[["measure", "metric", "value", "lo", "hi", "groups", "excluded_low_count", "zero_groups"]],
                 hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4g")
                                                 for c in ("value", "lo", "hi")})
    for measure, text in MEASURE_EXPLANATIONS.items():
        st.markdown(f"- **{measure}**: {text}")
    st.caption("Over the groups with enough data (low-count groups left out, counted in excluded_low_count); "
               "95% subject-bootstrap intervals; an empty value is unbounded (a group with a zero rate in a ratio).")

st.subheader("Model comparison")
same = [r for r in runs if r.dataset == chosen.dataset]
summary = []
for r in same:
    other = evaluations().load(r.run_id).rates_frame()
    for _, row in other[other["pairing"] == "all"].iterrows():
        summary.append({"model": r.model if r.system is None else f"{r.system} {r.system_version or ''}".strip(),
                        "run": r.run_id[:12], "threshold": row["threshold_name"], "distance": row["threshold"],
                        "false-match rate": rate_text(float(row["fmr"]), int(row["impostor_pairs"])),
                        "missed-match rate": rate_text(float(row["fnmr"]), int(row["genuine_pairs"])),
                        "equal error rate": "–" if pd.isna(row.get("eer")) else percent_text(float(row["eer"]))})
st.dataframe(pd.DataFrame(summary), hide_index=True)
if len({r.model for r in same}) < 2:
    st.caption("Only one model has been evaluated on this dataset. Install another "
               "(`facetrail models install --facenet`) and evaluate it to compare.")
