"""``facetrail blind ...`` and ``facetrail review-rates``: blind review with fillers on the command line.

* ``facetrail blind open --query SEQ [--query SEQ ...] --filler-gallery G [--filler-share 0.25] [--match-on KEY]``
  (auditors): open a batch over those searches' candidates, with fillers from ``G``;
* ``facetrail blind next [--batch ID]`` (reviewers): the next item to decide, without score,
  rank, query, face or anyone's verdict; its ``ticket`` is what ``decide`` takes;
* ``facetrail blind probe TICKET --out FILE`` (reviewers): write the item's probe photo (PNG), when
  one was kept for the search's review (candidate photos are not kept);
* ``facetrail blind decide TICKET --decision confirm|reject [--note TEXT]`` (reviewers);
* ``facetrail blind reveal BATCH`` (auditors): close the batch, publish its key and plan;
* ``facetrail blind verify BATCH`` (anyone with the log, no key file): check a revealed batch
  (exit 1 if it does not check out);
* ``facetrail review-rates [--batch ID ...]`` (auditors): each reviewer's false-confirm rate on
  fillers, agreement with the other reviewers and time per decision, with intervals (recorded).

The existing ``facetrail review SEQ`` (non-blind review of one query) is in :mod:`dashboard.cli.audit`.
Exit codes follow :mod:`dashboard.cli.common`: 0 ok, 2 refused or bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audit import (
    AuditError,
    BlindRevealMismatch,
    audited_reviewer_rates,
    blind_batches,
    blind_decide,
    blind_next,
    blind_probe_image,
    check_out_path,
    open_batch,
    reveal,
    verify_reveal,
)
from core import RecognitionError, StorageError
from dashboard.cli.common import EXIT_FAILURE, EXIT_OK, emit, fail, runtime

__all__ = ["register"]

_ERRORS = (AuditError, RecognitionError, StorageError)


def _session(args: argparse.Namespace) -> Any:
    return runtime(args).session(runtime(args).context(purpose=getattr(args, "purpose", None)))


def _open(args: argparse.Namespace) -> int:
    try:
        entry = open_batch(_session(args), runtime(args).galleries, args.query, args.filler_gallery,
                           filler_share=args.filler_share, match_on=args.match_on)
    except _ERRORS as err:
        return fail(args, err)
    d = entry.record.details
    fillers = sum(i.filler for i in blind_batches(runtime(args).log, batch_id=d["batch_id"])[0].items)
    payload = {"audit_seq": entry.seq, "batch_id": d["batch_id"], "queries": args.query, "items": d["items"],
               "fillers": fillers, "filler_gallery": d["filler_gallery"]["name"]}
    emit(args, payload, f"opened blind batch {d['batch_id']}: {d['items']} item(s) over {d['n_queries']} "
                        f"query(ies), {fillers} of them filler(s) (sealed until the reveal); recorded as #{entry.seq}")
    return EXIT_OK


def _next(args: argparse.Namespace) -> int:
    try:
        item = blind_next(_session(args), args.batch)
    except _ERRORS as err:
        return fail(args, err)
    if item is None:
        emit(args, {"item": None}, "nothing to review")
        return EXIT_OK
    emit(args, item.to_dict(), f"item {item.position} of {item.total} (batch {item.batch_id}); photos are not "
                               f"available in this version\nticket: {item.ticket}")
    return EXIT_OK


def _probe(args: argparse.Namespace) -> int:
    try:
        log = runtime(args).log
        out = check_out_path(args.out, [*log.protected_paths(), Path(str(log.key_path) + ".blind")], force=args.force)
        image = blind_probe_image(_session(args), runtime(args).galleries, args.ticket)
        if image is not None:
            out.write_bytes(image)
    except (OSError, *_ERRORS) as err:
        return fail(args, err)
    if image is None:
        emit(args, {"probe": None}, "no probe photo is kept for this item (candidate photos are never kept)")
        return EXIT_OK
    emit(args, {"probe": str(out), "bytes": len(image)}, f"wrote the probe photo to {out}")
    return EXIT_OK


def _decide(args: argparse.Namespace) -> int:
    try:
        entry = blind_decide(_session(args), args.ticket, args.decision, note=args.note)
    except _ERRORS as err:
        return fail(args, err)
    r = entry.record
    payload = {"audit_seq": entry.seq, "mode": r.details["mode"], "batch_id": r.details["batch_id"],
               "item": r.details["item"], "decision": r.decision}
    emit(args, payload, f"recorded blind decision #{entry.seq}: {r.decision}")
    return EXIT_OK


def _reveal(args: argparse.Namespace) -> int:
    try:
        entry = reveal(_session(args), args.batch)
    except _ERRORS as err:
        return fail(args, err)
    d = entry.record.details
    payload = {"audit_seq": entry.seq, "batch_id": d["batch_id"], "decisions": len(d["decisions"])}
    emit(args, payload, f"revealed blind batch {d['batch_id']}: {len(d['decisions'])} decision(s); "
                        f"recorded as #{entry.seq}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    try:
        checked = verify_reveal(runtime(args).log, args.batch)
    except BlindRevealMismatch as err:
        return fail(args, err, EXIT_FAILURE)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {"batch_id": args.batch, "ok": True, "decisions": checked},
         f"blind batch {args.batch} OK: {checked} decision(s) match the sealed plan and their seals")
    return EXIT_OK


def _rate_line(r: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    fc_lo, fc_hi = r["false_confirm_interval"]
    ag_lo, ag_hi = r["agreement_interval"]
    secs = "-" if r["mean_seconds"] is None else f"{r['mean_seconds']:.1f} s"
    return (f"{r['reviewer']:12} false confirms {r['false_confirms']}/{r['filler_decisions']} "
            f"{pct(r['false_confirm_rate'])} [{pct(fc_lo)}, {pct(fc_hi)}]  agreement {r['agreements']}/"
            f"{r['agreement_pairs']} {pct(r['agreement_rate'])} [{pct(ag_lo)}, {pct(ag_hi)}]  "
            f"mean {secs} per decision")


def _rates(args: argparse.Namespace) -> int:
    try:
        rates, entry = audited_reviewer_rates(_session(args), args.batch or None, confidence=args.confidence)
    except (ValueError, *_ERRORS) as err:
        return fail(args, err)
    payload = {**rates.to_dict(), "audit_seq": entry.seq}
    lines = [_rate_line(r) for r in payload["reviewers"]] or ["no decisions in revealed blind batches"]
    emit(args, payload, "\n".join([*lines, f"recorded as #{entry.seq}"]))
    return EXIT_OK


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``blind`` (open, next, probe, decide, reveal, verify) and ``review-rates`` to the ``facetrail`` parser."""
    blind = subparsers.add_parser("blind", help="blind review with fillers: one item at a time, no score or rank")
    sub = blind.add_subparsers(dest="blind_command", metavar="BLIND_COMMAND")
    sub.required = True

    p = sub.add_parser("open", parents=parents, help="open a batch over searches' candidates, with fillers (auditors)")
    p.add_argument("--query", type=int, action="append", required=True, help="a search record's seq (repeat)")
    p.add_argument("--filler-gallery", required=True, help="gallery of people known not to be any probe")
    p.add_argument("--filler-share", type=float, default=0.25, help="share of the items that are fillers")
    p.add_argument("--match-on", action="append", default=[], metavar="KEY",
                   help="gallery metadata a filler shares with one of its query's candidates (repeat: sex, race, ...)")
    p.set_defaults(handler=_open)

    p = sub.add_parser("next", parents=parents, help="your next item to decide (reviewers)")
    p.add_argument("--batch", default=None, help="a batch id (default: the oldest open batch with items for you)")
    p.set_defaults(handler=_next)

    p = sub.add_parser("probe", parents=parents, help="write the probe photo of an item, when one is kept (reviewers)")
    p.add_argument("ticket", help="the ticket `facetrail blind next` gave")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(handler=_probe)

    p = sub.add_parser("decide", parents=parents, help="record your decision on an item (reviewers)")
    p.add_argument("ticket", help="the ticket `facetrail blind next` gave")
    p.add_argument("--decision", choices=["confirm", "reject"], required=True)
    p.add_argument("--note", default=None)
    p.set_defaults(handler=_decide)

    p = sub.add_parser("reveal", parents=parents, help="close a batch and publish its plan (auditors)")
    p.add_argument("batch")
    p.set_defaults(handler=_reveal)

    p = sub.add_parser("verify", parents=parents, help="check a revealed batch against its records (no key needed)")
    p.add_argument("batch")
    p.set_defaults(handler=_verify)

    p = subparsers.add_parser("review-rates", parents=parents,
                              help="reviewers' own error rates on revealed blind batches (auditors; recorded)")
    p.add_argument("--batch", action="append", default=[], help="only this batch (repeat; default: all revealed)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.set_defaults(handler=_rates)
