"""Blocks of a report read from the stored evaluations: accuracy of every configuration in use, and vendors'.

For each model configuration the period's queries used (by embedding key), the newest
stored evaluation of that configuration (:meth:`audit.evaluation.store.EvaluationStore.latest`):
FMR and FNMR per group with their intervals at the evaluation's default threshold, the
"error rate of 1% or more" flag RCW 43.386.020 asks a plan for, disparity flags, inequity
measures, and the chance that a search returns a false candidate at the gallery sizes
actually searched (:meth:`audit.evaluation.report.EvaluationReport.chance_of_false_candidate`:
measured where the evaluation searched that size, else the labelled estimate). Then the
newest evaluation of every other vendor's system (runs made from a system's own scores).
A configuration in use without an evaluation is printed as missing, never skipped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.report import EvaluationReport
from audit.evaluation.store import EvaluationStore
from audit.reports.model import Block, Fact, Facts, Figure, Missing, Table, Text
from audit.reports.privacy import Privacy
from audit.reports.query import LogCounts

__all__ = ["accuracy_blocks", "ERROR_RATE_FLAG"]

#: RCW 43.386.020(2)(g): a plan is needed when an error rate is this or more.
ERROR_RATE_FLAG = 0.01


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return None
    return float(value)


def _default_threshold(report: EvaluationReport) -> str:
    names = [r["threshold_name"] for r in report.rates if r["pairing"] == "all"]
    return "default" if "default" in names else names[0]


def _group_rows(report: EvaluationReport, threshold: str) -> list[dict[str, Any]]:
    rows = []
    for r in report.rates:
        if r["threshold_name"] != threshold or r["pairing"] not in ("all", "within"):
            continue
        fmr, fnmr = _num(r["fmr"]), _num(r["fnmr"])
        flags = [name for name, v in (("FMR", fmr), ("FNMR", fnmr)) if v is not None and v >= ERROR_RATE_FLAG]
        rows.append({
            "group": "all" if r["pairing"] == "all" else r["group_name"], "fmr": fmr, "fmr_lo": _num(r["fmr_lo"]),
            "fmr_hi": _num(r["fmr_hi"]), "fnmr": fnmr, "fnmr_lo": _num(r["fnmr_lo"]), "fnmr_hi": _num(r["fnmr_hi"]),
            "genuine_pairs": int(r["genuine_pairs"]), "impostor_pairs": int(r["impostor_pairs"]),
            "low_count": "yes" if r.get("low_count") else "no",
            "error_rate_1pct": " and ".join(flags) + " >= 1%" if flags else "no",
        })
    return rows


def _one_to_n(report: EvaluationReport, counts: LogCounts, key: str,
              p: Privacy) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sizes = counts.gallery_sizes[counts.gallery_sizes["embedding_key"] == key]
    rows = []
    for r in sizes.itertuples():
        if pd.isna(r.gallery_size) or r.threshold is None:
            continue
        chance = report.chance_of_false_candidate(int(r.gallery_size), float(r.threshold))
        rows.append({"gallery": r.gallery, "gallery_size": int(r.gallery_size), "threshold": float(r.threshold),
                     "chance": _num(chance.value), "method": chance.method,
                     "recorded_fpir": r.expected_fpir if isinstance(r.expected_fpir, str) else "not recorded",
                     "recorded_method": r.fpir_method if isinstance(r.fpir_method, str) else "not recorded",
                     "searches": p.count(int(r.searches)), "_n": int(r.searches)})
    curve: dict[str, Any] = {"sizes": [], "chance": [], "threshold": None, "searched": []}
    if rows:
        threshold = max(rows, key=lambda x: x["_n"])["threshold"]
        top = max(x["gallery_size"] for x in rows)
        grid = sorted({int(v) for v in np.unique(np.geomspace(1, max(10, top * 10), 40).round())})
        curve = {"sizes": grid, "threshold": threshold,
                 "chance": [_num(report.chance_of_false_candidate(n, threshold).value) for n in grid],
                 "searched": [{"gallery": x["gallery"], "size": x["gallery_size"], "chance": x["chance"]}
                              for x in rows if x["threshold"] == threshold]}
    return rows, curve


_GROUP_COLUMNS = (("group", "group"), ("fmr", "FMR"), ("fmr_lo", "FMR 95% low"), ("fmr_hi", "FMR 95% high"),
                  ("fnmr", "FNMR"), ("fnmr_lo", "FNMR 95% low"), ("fnmr_hi", "FNMR 95% high"),
                  ("genuine_pairs", "genuine pairs"), ("impostor_pairs", "impostor pairs"),
                  ("low_count", "low count"), ("error_rate_1pct", "error rate >= 1%"))


def _evaluation_blocks(prefix: str, what: str, report: EvaluationReport, counts: LogCounts | None,
                       key: str | None, p: Privacy) -> list[Block]:
    run = report.run
    threshold = _default_threshold(report)
    rows = _group_rows(report, threshold)
    value = next((r["threshold"] for r in report.rates if r["threshold_name"] == threshold), None)
    about = Facts(f"{prefix}_about", (
        Fact("what", "evaluated", what),
        Fact("run_id", "evaluation run", str(run.get("run_id"))),
        Fact("created", "made", str(run.get("created"))),
        Fact("dataset_fingerprint", "dataset fingerprint", str(run.get("dataset_fingerprint"))),
        Fact("images", "images", run.get("images")),
        Fact("subjects", "people", run.get("subjects")),
        Fact("threshold_name", "threshold shown", threshold),
        Fact("threshold", "its value", _num(value)),
        Fact("interval", "intervals", str(run.get("interval"))),
    ), f"Evaluation of {what}")
    blocks: list[Block] = [about, Table(
        f"{prefix}_groups", "False match and false non-match rates by group", _GROUP_COLUMNS, tuple(rows),
        note="Labels are annotations by others; small groups have wide intervals (low count: too few pairs or "
             "people for a reliable rate); 'error rate >= 1%' is where RCW 43.386.020 asks for a plan.")]
    charted = [r for r in rows if r["group"] != "all" and r["low_count"] == "no"]
    if not charted:
        blocks.append(Text("No group has enough pairs and people for a reliable rate: the table above is all."))
    else:
        blocks.append(Figure(f"{prefix}_figure", "Error rates by group (95% intervals)", "group_rates",
                             {"rows": charted},
                             f"FMR and FNMR per group at threshold {threshold}; groups with too few pairs or "
                             "people for a reliable rate are in the table only."))
    flagged = [d for d in report.disparity_rows if d["threshold_name"] == threshold and d.get("flag")]
    blocks.append(Table(f"{prefix}_disparity", "Disparity flags (a group's rate relative to the reference group's, "
                        "outside 0.8-1.25; the reference is the lowest non-zero rate, since no rate can be "
                        "divided by a zero one)",
                        (("grouping", "grouping"), ("group", "group"), ("metric", "metric"), ("rate", "rate"),
                         ("best", "reference group"), ("relative", "relative to reference"), ("lo", "95% low"),
                         ("hi", "95% high")),
                        tuple({"grouping": d["grouping"], "group": d["group_name"], "metric": d["metric"],
                               "rate": _num(d["rate"]), "best": d["best_group_name"],
                               "relative": _num(d["relative_to_best"]), "lo": _num(d["relative_lo"]),
                               "hi": _num(d["relative_hi"])} for d in flagged),
                        empty="no disparity flag at this threshold"))
    blocks.append(Table(f"{prefix}_inequity", "Inequity measures (NIST/ISO)",
                        (("grouping", "grouping"), ("measure", "measure"), ("metric", "metric"), ("value", "value"),
                         ("lo", "95% low"), ("hi", "95% high"), ("groups", "groups")),
                        tuple({"grouping": q["grouping"], "measure": q["measure"], "metric": q["metric"],
                               "value": _num(q["value"]), "lo": _num(q["lo"]), "hi": _num(q["hi"]),
                               "groups": q["groups"]}
                              for q in report.inequity_rows if q["threshold_name"] == threshold),
                        empty="no inequity measure stored with this evaluation",
                        note="An empty value is unbounded (a group with a zero rate in a ratio)."))
    if counts is not None and key is not None:
        one_to_n, curve = _one_to_n(report, counts, key, p)
        for row in one_to_n:
            del row["_n"]
        blocks.append(Table(f"{prefix}_one_to_n", "Chance that a search returns a false candidate, at the gallery "
                            "sizes searched", (("gallery", "gallery"), ("gallery_size", "faces"),
                                               ("threshold", "threshold"), ("chance", "chance"), ("method", "how known"),
                                               ("recorded_fpir", "expected FPIR in the records"),
                                               ("recorded_method", "records' method"), ("searches", "searches")),
                            tuple(one_to_n), empty="no search with this configuration in this period",
                            note="measured: the evaluation searched a gallery of that size; estimate: 1 - (1 - FMR)^N, "
                                 "which assumes independent comparisons and understates look-alike-rich galleries."))
        if curve["sizes"]:
            blocks.append(Figure(f"{prefix}_one_to_n_figure", "False-candidate chance against gallery size",
                                 "one_to_n_chance", curve, "The chance at the threshold most searches used; "
                                 "points mark the galleries searched."))
    return blocks


def accuracy_blocks(store: EvaluationStore, counts: LogCounts, p: Privacy) -> list[Block]:
    """Accuracy of every configuration in use (newest evaluation each), then other vendors' systems."""
    blocks: list[Block] = []
    if counts.configs.empty:
        blocks.append(Text("No search or verification in this period: no configuration was in use."))
    for i, c in enumerate(counts.configs.itertuples(), start=1):
        name = f"{c.model}/{c.detector}/{c.alignment}"
        run_id = store.latest(embedding_key=c.embedding_key)
        if run_id is None:
            blocks.append(Missing(f"config{i}", f"accuracy of {name}",
                                  f"no stored evaluation of {name} (embedding key {c.embedding_key}), used by "
                                  f"{p.count(int(c.uses))} queries: evaluate it with `facetrail evaluate`"))
            continue
        blocks += _evaluation_blocks(f"config{i}", f"{name} (embedding key {c.embedding_key}), used by "
                                     f"{p.count(int(c.uses))} queries", store.load(run_id), counts, c.embedding_key, p)
    vendors: dict[tuple[str, str | None], str] = {}
    for run in store.list():  # newest first
        if run.system is not None:
            vendors.setdefault((run.system, run.system_version), run.run_id)
    if not vendors:
        blocks.append(Text("No evaluation of another vendor's system is stored (`facetrail evaluate --scores` "
                           "evaluates one from its own score files)."))
    for j, ((system, version), run_id) in enumerate(sorted(vendors.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")),
                                                    start=1):
        label = " ".join(filter(None, [system, version])) + " (from the system's own scores)"
        blocks += _evaluation_blocks(f"vendor{j}", label, store.load(run_id), None, None, p)
    return blocks
