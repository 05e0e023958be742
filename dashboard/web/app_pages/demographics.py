"""Demographic performance: per-group error rates, DET curves, threshold explorer, disparity, inequity, models.

Everything is read from stored evaluation reports (FMR/FNMR with bootstrap intervals),
of facetrail's engine or of a system evaluated from its own scores (whose thresholds
are in that system's units). Names that come from data (datasets, systems, groups) are
shown as plain text, never as markup.
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from audit import MEASURE_EXPLANATIONS
from dashboard.web.app_pages.common import chart, evaluations, require

_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text: object) -> str:
    """Return ``text`` with every markdown character escaped: data shown as data, never as markup."""
    return _MARKUP.sub(r"\\\1", str(text))


def threshold_label(run: dict) -> str:
    """Return what the run's thresholds are: a cosine distance, or the evaluated system's own score."""
    convention = str(run.get("threshold_convention", ""))
    if convention.startswith("the system's similarity"):
        return "Threshold (system score, match iff score >= threshold)"
    if convention.startswith("the system's distance"):
        return "Threshold (system score, match iff score <= threshold)"
    return "Threshold (cosine distance)"

require("read_evaluations")
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
cells = within[(within["grouping"] == grouping) & (within["threshold_name"] == threshold_name)].copy()
cells["group"] = cells["group_name"].str.replace(rf"{grouping}=", "", regex=False)
overall = rates[(rates["pairing"] == "all") & (rates["threshold_name"] == threshold_name)].iloc[0]

m1, m2, m3 = st.columns(3)
m1.metric(threshold_label(run), f"{overall['threshold']:.7g}")
m2.metric("Overall FMR", f"{overall['fmr']:.2e}", help=f"95% CI {overall['fmr_lo']:.2e} – {overall['fmr_hi']:.2e}")
m3.metric("Overall FNMR", f"{overall['fnmr']:.2%}", help=f"95% CI {overall['fnmr_lo']:.2%} – {overall['fnmr_hi']:.2%}")


def _bars(metric: str, lo: str, hi: str, title: str) -> go.Figure:
    fig = px.bar(cells, y="group", x=metric, title=title, height=120 + 45 * len(cells), orientation="h",
                 error_x=cells[hi] - cells[metric], error_x_minus=cells[metric] - cells[lo],
                 hover_data=["genuine_pairs", "impostor_pairs", "subjects", "low_count"])
    fig.add_vline(x=overall[metric], line_dash="dot", annotation_text="overall")
    fig.update_layout(xaxis_title=None, yaxis_title=None)
    return fig


left, right = st.columns(2)
chart(_bars("fmr", "fmr_lo", "fmr_hi", "False match rate by group (95% CI)"), left)
chart(_bars("fnmr", "fnmr_lo", "fnmr_hi", "False non-match rate by group (95% CI)"), right)
if "reproducible" in overall and overall["reproducible"] is not None:
    margin = overall.get("threshold_margin")
    st.caption(
        f"The nearest observed score is {margin:.3g} from this threshold: "
        + ("every count reproduces when the threshold is applied to the scores, in float32 or float64."
           if overall["reproducible"] else
           "closer than a float32 recomputation can tell apart, so a recount in float32 may differ by those pairs.")
    )
table = cells[["group", "fmr", "fmr_lo", "fmr_hi", "fnmr", "fnmr_lo", "fnmr_hi", "genuine_pairs",
               "impostor_pairs", "subjects", "images", "low_count"]]
st.dataframe(table, hide_index=True, column_config={
    c: st.column_config.NumberColumn(format="%.2e") for c in ("fmr", "fmr_lo", "fmr_hi")
} | {c: st.column_config.NumberColumn(format="%.4f") for c in ("fnmr", "fnmr_lo", "fnmr_hi")})
st.caption("low_count: too few pairs or subjects for a reliable rate; shown, never hidden.")

st.subheader("DET curves")
det = report.det()
points = det[det["grouping"] == grouping].copy() if not det.empty else det
if points.empty:
    st.info("This evaluation stored no DET points.")
else:
    points["group"] = points["group_name"].str.replace(rf"{grouping}=", "", regex=False)
    curves = points[(points["fmr"] > 0) & (points["fnmr"] > 0)]
    fig = px.line(curves, x="fmr", y="fnmr", color="group", log_x=True, log_y=True, height=420,
                  labels={"fmr": "false match rate", "fnmr": "false non-match rate"})
    fig.add_vline(x=float(overall["fmr"]), line_dash="dot", annotation_text=f"{threshold_name}")
    chart(fig)

    st.subheader("Threshold explorer")
    lo, hi = float(points["threshold"].min()), float(points["threshold"].max())
    start = min(max(float(overall["threshold"]), lo), hi)
    step = 0.001 if hi - lo <= 2.0 else round((hi - lo) / 1000, 6) or 0.001
    chosen_t = st.slider(threshold_label(run), lo, hi, start, step=step, format="%.3f",
                         key="demographics_explorer")
    at = (points.assign(gap=(points["threshold"] - chosen_t).abs())
          .sort_values("gap").groupby("group", as_index=False).first())
    long = at.melt(id_vars=["group"], value_vars=["fmr", "fnmr"], var_name="metric", value_name="rate")
    chart(px.bar(long, x="group", y="rate", color="metric", barmode="group", height=340,
                 labels={"rate": "error rate"}))
    st.dataframe(at[["group", "threshold", "fmr", "fnmr"]], hide_index=True)
    st.caption("Rates at the stored DET point nearest to the chosen threshold (histogram resolution).")

st.subheader("Disparity")
disparity = report.disparity()
if disparity.empty:
    st.info("No disparity rows in this evaluation.")
else:
    rows = disparity[(disparity["grouping"] == grouping) & (disparity["threshold_name"] == threshold_name)]
    st.dataframe(rows[["metric", "group_name", "rate", "best_group_name", "relative_to_best", "relative_lo",
                       "relative_hi", "flag", "max_min_ratio", "low_count"]], hide_index=True)
    st.caption("relative_to_best: the group's rate over the best group's; flagged outside 0.8–1.25.")

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
                        "run": r.run_id[:12], "threshold": row["threshold_name"],
                        "distance": row["threshold"], "fmr": row["fmr"], "fnmr": row["fnmr"], "eer": row.get("eer")})
st.dataframe(pd.DataFrame(summary), hide_index=True)
if len({r.model for r in same}) < 2:
    st.caption("Only one model has been evaluated on this dataset. Install another "
               "(`facetrail models install --facenet`) and evaluate it to compare.")
