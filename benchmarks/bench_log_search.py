"""Benchmark of audit search (audit.search.find_records) on a synthetic signed log.

Every filter is answered by :func:`audit.find_records`: the store's SQL filters first
(operator, gallery, action, case, dates), then a SQL projection of the unsealed fields
(outcome, policy, threshold, reviewer), and only for subject and free text the opened
records. The Match log shows one page (:func:`audit.find_page`): timed cold (a session's
first read of the facts) and with the facts kept (a later run of the same session). The baseline, measured in
the same run on the same log, is what the page paid before for the same records:
``AuditLog.list`` with the SQL filter alone (rows read and decoded into records).

Usage: .venv/bin/python benchmarks/bench_log_search.py [--records N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_audit import build_log  # noqa: E402

from audit import AuditFilter, LogFacts, RecordPage, RecordQuery, find_page, find_records  # noqa: E402


def timed(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-search-") as tmp:
        log = build_log(Path(tmp), args.records, "search")
        base_s, base = timed(lambda: log.list(AuditFilter(operator="operator1", action="search")), args.repeat)
        assert isinstance(base, list) and len(base) == args.records
        cases = {
            "operator (SQL only)": RecordQuery(operator="operator1", action="search"),
            "outcome=candidates + subject": RecordQuery(action="search", outcome="candidates", subject="s7"),
            "threshold at most 0.5": RecordQuery(action="search", threshold=0.5),
            "free text q": RecordQuery(action="search", q="investigat"),
            "free text, no match": RecordQuery(action="search", q="no such words"),
        }
        figures: dict[str, dict[str, float]] = {"log.list baseline": {"seconds": base_s, "ratio": 1.0,
                                                                      "records_per_s": args.records / base_s}}
        for name, query in cases.items():
            seconds, found = timed(lambda q=query: find_records(log, q), args.repeat)
            assert isinstance(found, list)
            figures[name] = {"seconds": seconds, "ratio": seconds / base_s, "records_per_s": args.records / seconds,
                             "found": float(len(found))}
        # the Match log's table: one page (the newest); cold = a new session's first read of the facts,
        # kept = a later run of the same session (only records appended since are read)
        newest = RecordQuery(action="search")
        seconds, found = timed(lambda: find_page(log, newest, known=LogFacts()), args.repeat)
        figures["page of 50, cold facts"] = {"seconds": seconds, "ratio": seconds / base_s,
                                             "records_per_s": args.records / seconds}
        known = LogFacts()
        find_page(log, newest, known=known)
        seconds, found = timed(lambda: find_page(log, newest, known=known), args.repeat)
        assert isinstance(found, RecordPage) and found.total == args.records
        figures["page of 50, facts kept"] = {"seconds": seconds, "ratio": seconds / base_s,
                                             "records_per_s": args.records / seconds}
        log.db.close()
    if args.json:
        print(json.dumps({"records": args.records, "figures": figures}, indent=1))
    else:
        print(f"audit search over {args.records:,} signed records (median of {args.repeat}):")
        for name, f in figures.items():
            print(f"  {name:32s} {f['seconds'] * 1000:8.0f} ms  {f['records_per_s']:10,.0f} records/s  "
                  f"x{f['ratio']:.2f} of log.list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
