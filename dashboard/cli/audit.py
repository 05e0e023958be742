"""``facetrail audit ...`` and ``facetrail review``: the audit trail on the command line.

Exit codes follow :mod:`dashboard.cli.common`: 0 ok, 2 bad input (unknown record, bad
key file, refused review, missing operator/purpose), 1 integrity fault
(``audit verify`` and ``audit verify-excerpt`` when the log or excerpt fails).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audit import (
    AuditContext,
    AuditEntry,
    AuditError,
    AuditFilter,
    AuditLog,
    ChainIntegrityError,
    KeyFileError,
    audited_export,
    verify_excerpt,
)
from core import RecognitionError, Settings, StorageError
from dashboard.cli.common import EXIT_FAILURE, EXIT_OK, emit, fail, runtime

__all__ = ["register"]

#: Failures reported as such (files the command is told to read or write included).
_ERRORS = (AuditError, RecognitionError, StorageError, OSError)


def _log(args: argparse.Namespace) -> AuditLog:
    rt = runtime(args)
    key = getattr(args, "key", None)
    return AuditLog(rt.db, key_path=key) if key else rt.log


def _public_key_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise KeyFileError(f"cannot read public key file {path!r}: {err}") from err


def _filters(args: argparse.Namespace) -> AuditFilter:
    return AuditFilter(
        operator=args.operator_filter,
        case_ref=args.case_filter,
        gallery=args.gallery,
        action=args.action,
        since=args.since,
        until=args.until,
    )


def _add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--operator", dest="operator_filter", help="only records of this operator")
    g.add_argument("--case", dest="case_filter", help="only records of this case reference")
    g.add_argument("--gallery", help="only records about this gallery")
    g.add_argument("--action", help="only this action (search, verify, enroll, delete, export, review, refused ...)")
    g.add_argument("--since", help="started at or after this UTC time (ISO, e.g. 2026-01-31)")
    g.add_argument("--until", help="started before this UTC time (ISO)")


def _summary_line(e: AuditEntry) -> str:
    r = e.record
    cands = f" {len(r.candidates)} candidate(s)" if r.candidates else ""
    target = f" -> #{r.target_seq} {r.decision or ''}" if r.target_seq is not None else ""
    return (f"#{e.seq:<6} {r.started_at} {r.action:8} {r.outcome:16} {r.operator or '-':12} "
            f"{r.case_ref or '-'}{cands}{target}")


# -- handlers ------------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    try:
        pem = _public_key_text(args.public_key) if args.public_key else None
        report = _log(args).verify(pem, all_signatures=args.all_signatures)
    except _ERRORS as err:
        return fail(args, err)
    if report.ok:
        text = (f"audit log OK: {report.records} records, {report.checkpoints} checkpoints, "
                f"head {report.head_hash[:16]}... ({report.seconds:.2f} s)")
    else:
        f = report.fault or {}
        text = f"audit log FAILS verification at seq {f.get('seq')}: {f.get('kind')} {f.get('detail') or ''}"
    emit(args, report.to_dict(), text)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _show(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        entry = log.get(args.seq)
        status = log.match_status(args.seq)
    except ChainIntegrityError as err:
        return fail(args, err, EXIT_FAILURE)
    except _ERRORS as err:
        return fail(args, err)
    payload = {**entry.to_dict(), "review": status.to_dict()}
    lines = [_summary_line(entry)] + [
        f"  candidate {c.rank}: {c.subject_id} ({c.face_id}) {c.status} "
        f"confirmed by {list(c.confirmations)} rejected by {list(c.rejections)}"
        for c in status.candidates
    ]
    emit(args, payload, "\n".join(lines))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    try:
        entries = _log(args).list(_filters(args), limit=args.limit)
    except ChainIntegrityError as err:
        return fail(args, err, EXIT_FAILURE)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, [e.to_dict() for e in entries], "\n".join(_summary_line(e) for e in entries) or "no records")
    return EXIT_OK


def _context(args: argparse.Namespace) -> AuditContext:
    """Who exports and why; the export record's case is the case filter, if any."""
    return runtime(args).context(args.exported_by, args.purpose, args.case_filter, args.legal_basis)


def _export_context() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("who exports and why (recorded as an export record)")
    g.add_argument("--exported-by", default=None, help="operator running the export ($FACETRAIL_OPERATOR)")
    g.add_argument("--purpose", default=None, help="why ($FACETRAIL_PURPOSE)")
    g.add_argument("--legal-basis", default=None, help="legal basis ($FACETRAIL_LEGAL_BASIS)")
    return parent


def _export(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        session = runtime(args).session(_context(args))
        filters = _filters(args)
        fmt = "excerpt" if args.verifiable or args.format == "excerpt" else args.format
        done = audited_export(session, log, args.out, fmt, filters, pseudonymize=args.pseudonymize,
                              pseudonym_key_path=args.pseudonym_key)
        summary, entry = done.result, done.entry
    except _ERRORS as err:
        return fail(args, err)
    payload = {**summary.to_dict(), "audit_seq": entry.seq}
    emit(args, payload, f"wrote {summary.records} record(s) to {summary.path} ({summary.format}); "
                        f"recorded as #{entry.seq}")
    return EXIT_OK


def _excerpt(args: argparse.Namespace) -> int:
    args.verifiable, args.format, args.pseudonymize, args.pseudonym_key = True, "excerpt", False, None
    return _export(args)


def _verify_excerpt(args: argparse.Namespace) -> int:
    try:
        report = verify_excerpt(args.file, _public_key_text(args.public_key))
    except _ERRORS as err:
        return fail(args, err)
    if report.ok:
        text = f"excerpt OK: {report.records} record(s) proven against signed checkpoint {report.checkpoint_seq}"
    else:
        f = report.fault or {}
        text = f"excerpt FAILS at seq {f.get('seq')}: {f.get('kind')} {f.get('detail') or ''}"
    emit(args, report.to_dict(), text)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _public_key(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        pem = log.public_key_pem()
        if args.out:
            Path(args.out).write_text(pem)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {"public_key_pem": pem, "fingerprint": log.key_fingerprint(), "out": args.out},
         pem if not args.out else f"wrote public key {log.key_fingerprint()} to {args.out}")
    return EXIT_OK


def _checkpoint(args: argparse.Namespace) -> int:
    try:
        cp = _log(args).checkpoint()
    except _ERRORS as err:
        return fail(args, err)
    emit(args, cp.to_dict(), f"signed checkpoint at seq {cp.seq}: head {cp.head_hash.hex()[:16]}..., "
                             f"root {cp.merkle_root.hex()[:16]}...")
    return EXIT_OK


def _review(args: argparse.Namespace) -> int:
    """Review as the signed-in account; a ``--reviewer`` that names another account is refused (exit 2)."""
    try:
        log = _log(args)
        session = runtime(args).session(AuditContext(claimed_operator=args.reviewer), log=log)
        entry = session.review(args.seq, args.decision, note=args.note, face_id=args.face_id)
        status = log.match_status(args.seq)
    except _ERRORS as err:
        return fail(args, err)
    payload = {"audit_seq": entry.seq, "review": entry.to_dict(), "status": status.to_dict()}
    lines = [f"recorded review #{entry.seq}: {entry.record.reviewer} {args.decision}s #{args.seq}"] + [
        f"  candidate {c.rank} {c.subject_id or 'pair'}: {c.status} ({len(c.confirmations)} confirmation(s))"
        for c in status.candidates
    ]
    emit(args, payload, "\n".join(lines))
    return EXIT_OK


# -- registration --------------------------------------------------------------------------------------


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``audit`` (with its sub-commands) and ``review`` to the ``facetrail`` parser."""
    key_parent = argparse.ArgumentParser(add_help=False)
    key_parent.add_argument("--key", default=None,
                            help="signing key file (default: $FACETRAIL_AUDIT_KEY, else <db>.audit-key)")
    audit = subparsers.add_parser("audit", help="verify, show, list and export the audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND")
    sub.required = True
    common = [*parents, key_parent]

    p = sub.add_parser("verify", parents=common, help="recompute the hash chain and every signed checkpoint")
    p.add_argument("--public-key", help="check checkpoints against this PEM public key instead of the key file")
    p.add_argument("--all-signatures", action="store_true",
                   help="check every checkpoint's signature (default: the ones anchoring the checkpoint chain)")
    p.set_defaults(handler=_verify)

    p = sub.add_parser("show", parents=common, help="one record, with the review status of its matches")
    p.add_argument("seq", type=int)
    p.set_defaults(handler=_show)

    p = sub.add_parser("list", parents=common, help="records matching filters")
    _add_filters(p)
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(handler=_list)

    p = sub.add_parser("export", parents=[*common, _export_context()],
                       help="write records to CSV, JSON Lines or Parquet (or a verifiable excerpt)")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="jsonl")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--pseudonymize", action="store_true", help="replace subject ids by keyed HMAC pseudonyms")
    p.add_argument("--pseudonym-key", default=None, help="HMAC key file (default: <signing key>.pseudonym)")
    p.add_argument("--verifiable", action="store_true", help="write a verifiable excerpt (JSON) instead")
    _add_filters(p)
    p.set_defaults(handler=_export)

    p = sub.add_parser("excerpt", parents=[*common, _export_context()],
                       help="write a verifiable excerpt (records, signed checkpoint, inclusion proofs)")
    p.add_argument("--out", required=True)
    _add_filters(p)
    p.set_defaults(handler=_excerpt)

    p = sub.add_parser("verify-excerpt", parents=parents, help="check an excerpt with only the public key")
    p.add_argument("file")
    p.add_argument("--public-key", required=True, help="PEM public key file (from `facetrail audit public-key`)")
    p.set_defaults(handler=_verify_excerpt)

    p = sub.add_parser("public-key", parents=common, help="print or write the audit public key (PEM)")
    p.add_argument("--out", default=None)
    p.set_defaults(handler=_public_key)

    p = sub.add_parser("checkpoint", parents=common, help="sign a checkpoint at the current head now")
    p.set_defaults(handler=_checkpoint)

    p = subparsers.add_parser("review", parents=common,
                              help="record a human review of a match as the signed-in reviewer (two-person rule)")
    p.add_argument("seq", type=int, help="the query's record seq")
    p.add_argument("--reviewer", default=Settings.from_env().operator,
                   help="if given, must be the signed-in account, or the review is refused ($FACETRAIL_OPERATOR)")
    p.add_argument("--decision", choices=["confirm", "reject"], required=True)
    p.add_argument("--note", default=None)
    p.add_argument("--face-id", default=None, help="which candidate (needed when the query has several)")
    p.set_defaults(handler=_review)

