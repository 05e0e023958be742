"""Privacy commands: ``privacy inventory``, ``privacy purge-evaluation-cache``, ``retention run``.

``facetrail privacy inventory [--json]`` (auditors, admins) lists every table and file of
this deployment that keeps personal or biometric data: ``place``, ``kind``, ``rows``,
``subjects``, ``oldest``, ``retention``, ``protection`` (``--json``: one JSON list).

``facetrail privacy purge-evaluation-cache [--all] [--dry-run] [--json]`` (auditors,
admins) deletes the evaluation embeddings older than ``FACETRAIL_EVALUATION_CACHE_DAYS``
(``--all``: every one) and destroys their day keys; ``--dry-run`` only counts. Prints
``entries``, ``keys_destroyed``, ``oldest_kept`` and ``dry_run``. Running it twice purges
nothing the second time.

``facetrail retention run [--dry-run] [--receipt FILE] [--json]`` (auditors, admins) applies
every retention rule now (expired evaluation embeddings; review evidence whose review ended or
whose 30 days passed; subjects past their gallery's schedule, galleries past their end date;
personal fields of log records past ``FACETRAIL_LOG_PERSONAL_DAYS``) and is recorded as one
``retention`` record (``audit_seq``); ``--dry-run`` lists what is due (``evaluation_cache``,
``evidence``, ``galleries``, ``subjects``, ``log_personal_fields``) and changes nothing. A
second run erases nothing. A log schedule below ``FACETRAIL_LOG_PERSONAL_MIN_DAYS`` is refused.

``facetrail gallery retention NAME --after-days N | --until DATE --purpose TEXT`` (admins)
sets a gallery's schedule (recorded; the purpose is what the gallery is kept for).

``--receipt FILE`` (on ``retention run``, ``gallery delete``, ``gallery drop``) writes the
signed receipt of the erasure (:mod:`audit.retention`), never over an existing or protected
file (checked before anything is erased); ``facetrail privacy receipt SEQ --out FILE``
(auditors, admins) writes one for an earlier erasure record. ``facetrail privacy
verify-receipt FILE --public-key KEY`` checks one offline: exit 0 when it verifies, 1 with
the named fault (``fault.kind``: ``claims_mismatch``, ``hash_mismatch``, ``not_in_log``,
``bad_signature``, ``bad_format``, ``malformed``, ``bad_record``).

Exit codes: 0 done, 2 refused (not signed in, a role without the permission, a bad value), 1 any
other failure.
"""

from __future__ import annotations

import argparse
from typing import Any

from audit import (
    AuditContext,
    AuditError,
    check_receipt_path,
    privacy_inventory,
    purge_evaluation_cache,
    retention_run,
    set_gallery_retention,
    verify_receipt,
    write_receipt,
)
from core import RecognitionError, StorageError
from dashboard.cli.audit import _public_key_text
from dashboard.cli.common import EXIT_FAILURE, EXIT_OK, context, context_parent, emit, fail, runtime

__all__ = ["add_receipt_option", "register", "register_gallery_retention", "written_receipt"]

_ERRORS = (RecognitionError, AuditError, StorageError)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``privacy ...`` to the ``facetrail`` parser."""
    privacy = subparsers.add_parser("privacy", help="where personal and biometric data are kept; cache purges")
    sub = privacy.add_subparsers(dest="privacy_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("inventory", parents=[*parents, context_parent()],
                       help="every table and file keeping personal or biometric data, with its retention rule")
    p.set_defaults(handler=_inventory)
    p = sub.add_parser("purge-evaluation-cache", parents=[*parents, context_parent()],
                       help="delete evaluation embeddings past their retention (and destroy their keys)")
    p.add_argument("--all", action="store_true", help="purge every entry, not only expired ones")
    p.add_argument("--dry-run", action="store_true", help="count what would be purged; change nothing")
    p.set_defaults(handler=_purge)
    p = sub.add_parser("receipt", parents=[*parents, context_parent()],
                       help="write the signed receipt of an earlier erasure or retention record")
    p.add_argument("seq", type=int, help="the erasure record's seq (audit_seq of the erasing command)")
    p.add_argument("--out", required=True, help="the receipt file to write (never over an existing file)")
    p.set_defaults(handler=_receipt)
    p = sub.add_parser("verify-receipt", parents=parents,
                       help="check an erasure receipt offline with the log's public key (exit 1: it fails)")
    p.add_argument("file")
    p.add_argument("--public-key", required=True, metavar="KEY",
                   help="the log's public key file (PEM, or verifier keys one per line)")
    p.set_defaults(handler=_verify_receipt)
    retention = subparsers.add_parser("retention", help="apply the retention schedules (audited)")
    rsub = retention.add_subparsers(dest="retention_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("run", parents=[*parents, context_parent()],
                        help="destroy what is due: expired evaluation embeddings, review evidence (recorded)")
    p.add_argument("--dry-run", action="store_true", help="list what is due; change nothing")
    add_receipt_option(p)
    p.set_defaults(handler=_retention)


def add_receipt_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--receipt FILE`` to an erasing command."""
    parser.add_argument("--receipt", metavar="FILE",
                        help="write the signed receipt of the erasure here (never over an existing file)")


def written_receipt(args: argparse.Namespace, seq: int | None,
                    subject: tuple[str, bytes] | None = None) -> str | None:
    """Write the receipt of record ``seq`` to ``--receipt`` if given (after :func:`check_receipt_path`).

    ``subject``: the erased subject's id and the salt of the record's commitment (the requester's receipt).
    """
    if getattr(args, "receipt", None) is None or seq is None:
        return None
    return str(write_receipt(runtime(args).log, seq, args.receipt, subject))


def register_gallery_retention(gsub: Any, ctx: list[argparse.ArgumentParser]) -> None:
    """Add ``gallery retention NAME --after-days N | --until DATE`` (the purpose from ``--purpose``)."""
    p = gsub.add_parser("retention", parents=ctx,
                        help="set a gallery's retention schedule (admins; --purpose: what it is kept for)")
    p.add_argument("name")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--after-days", type=int, metavar="N",
                      help="erase each subject N days after its last enrolment, search hit or review")
    rule.add_argument("--until", metavar="DATE", help="erase the whole gallery on this date (YYYY-MM-DD, UTC)")
    p.set_defaults(handler=_gallery_retention)


def _gallery_retention(args: argparse.Namespace) -> int:
    try:
        done = set_gallery_retention(runtime(args), args.name, context(args), after_days=args.after_days,
                                     until=args.until)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {**done.result.to_dict(), "audit_seq": done.seq},
         f"{args.name}: {done.result.describe()}")
    return EXIT_OK


def _inventory(args: argparse.Namespace) -> int:
    try:
        items = privacy_inventory(runtime(args), context(args) if args.purpose else None)
    except _ERRORS as err:
        return fail(args, err)
    lines = [f"{i.place}: {i.rows:,} row(s)" + (f", {i.subjects:,} subject(s)" if i.subjects is not None else "")
             + (f", oldest {i.oldest}" if i.oldest else "") + f"\n  {i.kind}\n  kept: {i.retention}\n"
             f"  protection: {i.protection}" for i in items]
    emit(args, [i.to_dict() for i in items], "\n".join(lines))
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    try:
        report = purge_evaluation_cache(runtime(args), context(args) if args.purpose else None,
                                        everything=args.all, dry_run=args.dry_run)
    except _ERRORS as err:
        return fail(args, err)
    verb = "would purge" if args.dry_run else "purged"
    emit(args, {**report.to_dict(), "dry_run": args.dry_run},
         f"{verb} {report.entries:,} evaluation-cache entr{'y' if report.entries == 1 else 'ies'} and "
         f"{report.keys_destroyed} day key(s); oldest kept: {report.oldest_kept or 'none'}")
    return EXIT_OK


def _retention(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        if args.receipt is not None:
            if args.dry_run:
                raise AuditError("a dry run erases nothing and has no receipt; drop --receipt or --dry-run")
            check_receipt_path(rt.log, args.receipt)
        done = retention_run(rt, context(args) if args.purpose else None, dry_run=args.dry_run)
        if not args.dry_run:
            done["receipt"] = written_receipt(args, done["audit_seq"])
    except _ERRORS as err:
        return fail(args, err)
    cache, evidence, fields = done["evaluation_cache"], done["evidence"], done["log_personal_fields"]
    verb = "due" if args.dry_run else "destroyed"
    lines = [f"{verb}: {cache['entries']:,} evaluation-cache entr{'y' if cache['entries'] == 1 else 'ies'} "
             f"({cache['keys_destroyed']} day key(s)), {len(evidence)} evidence item(s), "
             f"{len(done['subjects'])} subject(s), {len(done['galleries'])} whole galler(y/ies)"
             + ("" if args.dry_run else f" (audit record #{done['audit_seq']})")]
    lines += [f"  subject {s['subject_id']!r} of {s['gallery_name']!r}: no enrolment, hit or review since "
              f"{s['no_interaction_since']}" for s in done["subjects"]]
    lines += [f"  gallery {g['gallery_name']!r}: end date {g['until']} ({g['faces']} face(s))"
              for g in done["galleries"]]
    lines.append(f"  log personal fields: {fields['records_due']} record(s) past the cut-off, "
                 f"{fields['field_keys_due']} subject field key(s) due ({fields['status']})")
    if done.get("receipt"):
        lines.append(f"  receipt: {done['receipt']}")
    emit(args, done, "\n".join(lines))
    return EXIT_OK


def _receipt(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        rt.session(context(args) if args.purpose else AuditContext(purpose="erasure receipt")).check(
            "report", {"what": "erasure receipt", "seq": args.seq}, permission="integrity")
        written = write_receipt(rt.log, args.seq, args.out)  # a non-erasure record is refused before writing
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {"seq": args.seq, "receipt": str(written)}, f"wrote the receipt of record #{args.seq} to {written}")
    return EXIT_OK


def _verify_receipt(args: argparse.Namespace) -> int:
    try:
        report = verify_receipt(args.file, _public_key_text(args.public_key))
    except _ERRORS as err:
        return fail(args, err)
    if report.ok:
        claims = report.claims or {}
        text = (f"receipt OK: record #{report.seq} ({claims.get('action')} by {claims.get('by')} at "
                f"{claims.get('at')}) is in the log, proven against its signed checkpoint of size "
                f"{report.checkpoint_size}; erased: {claims.get('erased')}\n{report.scope}")
    else:
        fault = report.fault or {}
        text = f"receipt FAILS: {fault.get('kind')}: {fault.get('detail')}"
    emit(args, report.to_dict(), text)
    return EXIT_OK if report.ok else EXIT_FAILURE
