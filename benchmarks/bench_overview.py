"""Benchmark of the Overview's counting and of the Overview and Demographic performance pages' render.

A log of N searches by three operators over two galleries (two in three with a candidate),
with reviews (some candidates confirmed by two reviewers, some rejected) and refusals, is
appended through the signed log, plus the fake scene's evaluation. Then, in the same run:

* **baseline**: reading the records once (:meth:`AuditLog.list`), what any page of the log pays;
* **before**: what the Overview counted before this change, the records as a frame
  (``records_frame``) and the two-person-rule status of every query with candidates;
* **overview_counts**: :func:`audit.overview_counts` (the same reads, and the counting);
* **pages**: the Overview and Demographic performance pages rendered by Streamlit's AppTest
  (first, uncached run, and a second run as a click would), as an auditor.

Each figure is printed with its ratio to the baseline. The machine is shared: compare ratios.

Usage: .venv/bin/python benchmarks/bench_overview.py [--searches N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import overview_counts  # noqa: E402
from audit.runtime import Runtime  # noqa: E402
from dashboard.web.views import QUERY_ACTIONS, records_frame  # noqa: E402

GALLERIES = [{"name": f"gallery{g}", "fingerprint": f"{100 * (g + 1)}-" + "0" * 32, "size": 100 * (g + 1)}
             for g in range(2)]
AUTH = {"auth": {"method": "password_session"}}


def build(path: Path, searches: int) -> None:
    """The log and the fake scene's accounts and evaluation (see the module docstring)."""
    from tests.dashboard.conftest import build_fake_scene

    build_fake_scene(path)
    rt = Runtime(str(path))
    try:
        with rt.log.transaction():
            for i in range(searches):
                ok = i % 3 != 1
                entry = rt.log.append({
                    "action": "search", "outcome": "ok" if ok else "no_match", "operator": f"operator{1 + i % 3}",
                    "purpose": f"identify a suspect in case {i % 17}", "case_ref": f"CR-{i % 40}",
                    "gallery": GALLERIES[i % 2],
                    "candidates": [{"subject_id": f"P{i}-{k}", "face_id": f"f{i}-{k}", "distance": "0.050000",
                                    "similarity": "0.950000", "rank": k + 1} for k in range(1 + i % 3)] if ok else [],
                    "details": {"threshold": "0.070000", "threshold_policy": {"status": "looser" if i % 11 == 0
                                                                              else "within"}}})
                if ok and i % 4 == 0:
                    for reviewer in ("reviewer1", "reviewer2"):
                        rt.log.append({"action": "review", "outcome": "ok", "operator": reviewer, "reviewer": reviewer,
                                       "target_seq": entry.record.seq, "target_face_id": f"f{i}-0",
                                       "decision": "confirm" if i % 8 else "reject", "details": AUTH})
    finally:
        rt.db.close()


def timed(fn, repeat: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def render() -> dict[str, float]:
    """Seconds of a first and a second run of the Overview (the default page) and then of Demographic performance."""
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.conftest import APP, as_user

    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    out = {}
    for name, step in (("overview_first_s", at.run), ("overview_rerun_s", at.run),
                       ("demographics_first_s", lambda: at.switch_page("app_pages/demographics.py").run()),
                       ("demographics_rerun_s", at.run)):
        t = time.perf_counter()
        step()
        out[name] = time.perf_counter() - t
        assert not at.exception, at.exception
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACETRAIL_CONFIG_DIR"] = str(Path(tmp) / "config")
        path = Path(tmp) / "bench.duckdb"
        build(path, args.searches)
        os.environ["FACETRAIL_DB"] = str(path)
        rt = Runtime(str(path))
        log = rt.log
        size = log.size()
        baseline = timed(log.list)

        def before() -> None:
            frame = records_frame(log.list())
            queries = frame[frame["action"].isin(QUERY_ACTIONS) & (frame["outcome"] == "ok")]
            [log.match_status(int(s)) for s in queries["seq"]]

        old = timed(before)
        new = timed(lambda: overview_counts(log))
        rt.db.close()
        pages = render()
    figures = {"records": size, "baseline_list_s": baseline, "before_counting_s": old, "overview_counts_s": new,
               **pages, "load_average": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"log of {size:,} records ({args.searches:,} searches); load average {figures['load_average']:.1f}")
    print(f"baseline  log.list():                 {baseline:7.3f} s  (1.00x)")
    for name, key in (("before    frame + match statuses:", "before_counting_s"),
                      ("after     overview_counts:        ", "overview_counts_s"),
                      ("Overview page, first run:         ", "overview_first_s"),
                      ("Overview page, rerun (cached):    ", "overview_rerun_s"),
                      ("Demographics page, first run:     ", "demographics_first_s"),
                      ("Demographics page, rerun:         ", "demographics_rerun_s")):
        print(f"{name}     {figures[key]:7.3f} s  ({figures[key] / baseline:.2f}x baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
