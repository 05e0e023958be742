"""Benchmark of accountability reports: a report over 1,000,000 log records (target <= 60 s on 2 cores).

A synthetic log of N valid records (searches, verifications, video jobs and refusals by six
operators over twelve months, three galleries, some without a case reference) is written in
bulk straight into the store, chained and signed so that it verifies (:func:`build_log`).
Then, in the same run:

* **baseline**: reading the records once (``SELECT seq, record FROM audit_log`` fetched as
  Arrow, every byte out of DuckDB);
* **counting**: :func:`audit.reports.query.count_log` over the same records (the report's SQL);
* **report**: :func:`audit.reports.build.build_report` as ``facetrail report`` runs it (verify the
  whole log, sign a checkpoint at its head, count, read the evaluations, fill the ``full``
  template), then rendering it as JSON and as HTML (plotly.js inline).

Each figure is printed with its ratio to the baseline. The machine is shared: compare ratios.

Usage: .venv/bin/python benchmarks/bench_report.py [--records N] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import EvaluationStore, ReportRequest, load_report_config  # noqa: E402
from audit.reports.build import build_report  # noqa: E402
from audit.reports.privacy import Privacy  # noqa: E402
from audit.reports.query import count_log  # noqa: E402
from audit.reports.render import to_html, to_json  # noqa: E402
from audit.trail.chain import GENESIS, MerkleFrontier, entry_hash  # noqa: E402
from audit.trail.keys import load_or_create_private_key  # noqa: E402
from audit.trail.log import AuditLog  # noqa: E402
from audit.trail.notes import sign_checkpoint_note  # noqa: E402
from audit.trail.records import AuditRecord  # noqa: E402
from audit.trail.store import FRONTIER_EVERY  # noqa: E402
from core import Database  # noqa: E402

MARKER = 987654321987
MODEL = {"model": "Dlib", "detector": "dlib", "alignment": "dlib_5pt", "threshold": "0.070000",
         "embedding_key": "bench-key", "threshold_source": {"kind": "calibrated", "detail": "bench"}}
GALLERIES = [{"name": f"gallery{g}", "fingerprint": f"{1000 * (g + 1)}-" + "0" * 32, "size": 1000 * (g + 1)}
             for g in range(3)]


def _template(i: int) -> tuple[bytes, bytes]:
    """The canonical bytes of record kind ``i`` around its seq (records differ by kind and seq)."""
    month = 1 + i % 12
    t = f"2026-{month:02d}-{1 + i % 27:02d}T{(i * 5) % 24:02d}:00:00.000000Z"
    action = ("search", "search", "search", "verify", "search", "refused", "search_video")[i % 7]
    fields: dict[str, object] = {
        "seq": MARKER, "started_at": t, "ended_at": t, "action": action, "operator": f"operator{i % 6}",
        "purpose": ("investigation", "missing person")[i % 2 == 0 and i % 5 == 0],
        "case_ref": None if i % 11 == 0 else f"C-{i % 97}", "details": {"top_k": 5},
    }
    if action == "refused":
        fields.update(outcome="missing_context", details={"attempted": "search", "reason": "no case reference"})
    elif action == "verify":
        fields.update(outcome="ok", model_config=MODEL, probe_sha256=["a" * 64, "b" * 64])
    else:
        ok = i % 3 != 1
        candidates = [{"subject_id": f"subject{i % 50}", "face_id": f"face{i % 50}", "distance": "0.050000",
                       "similarity": "0.950000", "rank": 1}] if ok else []
        details: dict[str, object] = {"top_k": 5}
        if action == "search_video" and ok:
            details["tracks"] = [{"track_id": 1, "start_ms": 0, "end_ms": 100, "faces": 2,
                                  "candidates": [f"face{i % 50}"]}]
        fields.update(outcome="ok" if ok else "no_match", model_config=MODEL, gallery=GALLERIES[i % 3],
                      probe_sha256=[f"{i % 16:x}" * 64], candidates=candidates, details=details)
    head, tail = AuditRecord.from_dict(fields).canonical().split(str(MARKER).encode())
    return head, tail


def build_log(folder: Path, n: int) -> AuditLog:
    """Write n valid records straight into the store, in bulk, signed as the log signs them.

    Each record is chained (``prev_hash``, ``entry_hash``) and the Merkle frontier is stored every
    :data:`~audit.trail.store.FRONTIER_EVERY` records, as :meth:`AuditLog.append` does; the last
    record carries the signed C2SP checkpoint note of the whole tree, which is what the verifier
    checks every record against (a per-record note would only cost a million signatures here).
    """
    db = Database(folder / "report.duckdb")
    log = AuditLog(db, key_path=folder / "report.key")
    origin = log.origin
    templates = [_template(i) for i in range(84)]
    key = load_or_create_private_key(log.key_path)
    prev, frontier = GENESIS, MerkleFrontier()
    with db.connect(transaction=True) as con:
        for start in range(1, n + 1, 100_000):
            seqs, prevs, hashes, blobs, notes, frontiers = [], [], [], [], [], []
            for seq in range(start, min(start + 100_000, n + 1)):
                head, tail = templates[seq % len(templates)]
                blob = head + str(seq).encode() + tail
                h = entry_hash(prev, blob)
                seqs.append(seq)
                prevs.append(prev)
                hashes.append(h)
                blobs.append(blob)
                frontier.append_hash(h)
                notes.append(sign_checkpoint_note(origin, seq, frontier.root(), key) if seq == n else None)
                frontiers.append(frontier.to_bytes() if seq % FRONTIER_EVERY == 0 or seq == n else None)
                prev = h
            rows = pa.table({"seq": pa.array(seqs, pa.int64()), "prev_hash": pa.array(prevs, pa.binary()),
                             "entry_hash": pa.array(hashes, pa.binary()), "record": pa.array(blobs, pa.binary()),
                             "note": pa.array(notes, pa.string()), "frontier": pa.array(frontiers, pa.binary())})
            con.register("bench_rows", rows)
            con.execute("INSERT INTO audit_log (seq, prev_hash, entry_hash, record, note, frontier) "
                        "SELECT * FROM bench_rows")
            con.unregister("bench_rows")
    return log


def bench(folder: Path, n: int) -> dict[str, object]:
    """Build the log, then time the baseline, the counting and the whole report in this run."""
    t0 = time.perf_counter()
    log = build_log(folder, n)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with log.db.connect() as con:
        table = con.sql(f"SELECT seq, record FROM audit_log WHERE seq <= {int(n)}").to_arrow_table()
    baseline = time.perf_counter() - t0
    read_bytes = table.nbytes
    del table
    t0 = time.perf_counter()
    counts = count_log(log.db, n, "2026-01-01", "2027-01-01")
    count_s = time.perf_counter() - t0
    request = ReportRequest(dt.date(2026, 1, 1), dt.date(2026, 12, 31), "full", load_report_config(None))
    t0 = time.perf_counter()
    report = build_report(log, request, Privacy(), EvaluationStore(log.db))
    report_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = to_json(report)
    json_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = to_html(report)
    html_s = time.perf_counter() - t0
    uses = int(counts.usage["uses"].sum())
    return {
        "records": n, "uses_counted": uses, "build_s": round(build_s, 2), "log_verified": report.about["verified"],
        "baseline_read_once_s": round(baseline, 3), "baseline_mb": round(read_bytes / 1e6, 1),
        "count_s": round(count_s, 3), "count_vs_baseline": round(count_s / baseline, 2),
        "report_s": round(report_s, 3), "report_vs_baseline": round(report_s / baseline, 2),
        "render_json_s": round(json_s, 3), "render_html_s": round(html_s, 3),
        "total_s": round(report_s + html_s, 3), "target_s": 60, "json_bytes": len(data), "html_bytes": len(page),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print its figures (and ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="folder for the database (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = bench(Path(tmp), args.records)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"report over {out['records']:,} records ({out['uses_counted']:,} uses counted; log verified: "
              f"{out['log_verified']}), load average {out['loadavg_1m']}")
        print(f"  baseline, reading the records once: {out['baseline_read_once_s']} s ({out['baseline_mb']} MB)")
        print(f"  counting (the report's SQL):        {out['count_s']} s = {out['count_vs_baseline']} x baseline")
        print(f"  whole report (verify, checkpoint, count, sections): {out['report_s']} s = "
              f"{out['report_vs_baseline']} x baseline")
        print(f"  rendering: JSON {out['render_json_s']} s, HTML {out['render_html_s']} s; "
              f"report + HTML {out['total_s']} s (target <= {out['target_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
