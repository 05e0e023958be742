"""``facetrail audit ...`` and ``facetrail review``: the audit trail on the command line.

Exit codes follow :mod:`dashboard.cli.common`: 0 ok, 2 bad input (unknown record, bad
key file, refused review, missing operator/purpose), 1 integrity fault
(``audit verify`` and ``audit verify-excerpt`` when the log or excerpt fails).
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

from audit import (
    REASON_CODES,
    AuditContext,
    AuditEntry,
    AuditError,
    AuditFilter,
    AuditLog,
    ChainIntegrityError,
    KeyFileError,
    audited_export,
    check_cosignature,
    check_out_path,
    fetch_witness_checkpoint,
    parse_checkpoint,
    publish_checkpoint,
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


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AuditError(f"cannot read {what} {path!r}: {err}") from err


def _checkpoint_note(path: str) -> str:
    """Return a checkpoint file: the note itself, or ``audit checkpoint --json`` output (its ``note``)."""
    text = _read_text(path, "checkpoint file")
    if text.lstrip().startswith("{"):
        try:
            return str(json.loads(text)["note"])
        except (ValueError, KeyError, TypeError) as err:
            raise AuditError(f"checkpoint file {path!r} is JSON without a 'note': {err}") from err
    return text


def _verify(args: argparse.Namespace) -> int:
    try:
        pem = _public_key_text(args.public_key) if args.public_key else None
        trusted = [_checkpoint_note(p) for p in args.checkpoint or ()]
        log = _log(args)
        witnessed: list[dict[str, Any]] = []
        for url in args.witness or ():
            note = fetch_witness_checkpoint(url, log.origin)
            if note is not None:
                trusted.append(note)
                stamp = check_cosignature(note, url, runtime(args).settings.witnesses)
                witnessed.append({"witness": url, "size": parse_checkpoint(note)[0].size,
                                  "cosignature_checked": stamp is not None, "cosigned_at": stamp})
        report = log.verify(pem, all_signatures=args.all_signatures, trusted=trusted)
    except _ERRORS as err:
        return fail(args, err)
    payload = {**report.to_dict(), "checked_against": len(trusted), "witnesses": witnessed}
    if report.ok:
        text = (f"audit log OK: {report.records} records, all signed ({report.signed}); "
                f"{report.unwitnessed} not yet witnessed; checked against {len(trusted)} published checkpoint(s); "
                f"head {report.head_hash[:16]}... ({report.seconds:.2f} s)")
    else:
        f = report.fault or {}
        text = f"audit log FAILS verification at seq {f.get('seq')}: {f.get('kind')} {f.get('detail') or ''}"
    emit(args, payload, text)
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
        check_out_path(args.out, log.protected_paths(), force=args.force)
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
        trusted = _checkpoint_note(args.trusted) if args.trusted else None
        proof = None
        if args.proof:
            try:
                proof = json.loads(_read_text(args.proof, "consistency proof file"))
            except ValueError as err:
                raise AuditError(f"consistency proof file {args.proof!r} is not JSON: {err}") from err
        report = verify_excerpt(args.file, _public_key_text(args.public_key), trusted, proof)
    except _ERRORS as err:
        return fail(args, err)
    if report.ok:
        text = f"excerpt OK: {report.records} record(s) proven against signed checkpoint {report.checkpoint_seq}"
        if report.trusted_size is not None:
            text += f", consistent with the trusted checkpoint of size {report.trusted_size}"
    else:
        f = report.fault or {}
        text = f"excerpt FAILS at seq {f.get('seq')}: {f.get('kind')} {f.get('detail') or ''}"
    emit(args, report.to_dict(), text)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _public_key(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        pem = log.public_key_pem()
        vkey = log.vkey()
        if args.out:
            out = check_out_path(args.out, log.protected_paths(), force=args.force)
            out.write_text(vkey + "\n" if args.vkey else pem)
    except _ERRORS as err:
        return fail(args, err)
    shown = vkey if args.vkey else pem
    emit(args, {"public_key_pem": pem, "vkey": vkey, "origin": log.origin, "fingerprint": log.key_fingerprint(),
                "out": args.out},
         shown if not args.out else f"wrote public key {log.key_fingerprint()} to {args.out}")
    return EXIT_OK


def _checkpoint_payload(log: AuditLog, cp: Any) -> dict[str, Any]:
    cosigs = log.cosignatures(cp.size)
    note = cp.note + "".join(c["signature"] for c in cosigs)
    return {**cp.to_dict(), "note": note, "head": log.get(cp.size).entry_hash.hex() if cp.size else None,
            "cosignatures": cosigs, "vkey": log.vkey()}


def _prove_consistency(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        end = args.to if args.to is not None else log.size()
        proof = log.prove_consistency(args.from_size, end)
        old = log.note(args.from_size).note if args.from_size else None
        new = log.note(end).note if end else None
    except ValueError as err:
        return fail(args, AuditError(str(err)))
    except _ERRORS as err:
        return fail(args, err)
    b64 = [base64.b64encode(p).decode("ascii") for p in proof]
    payload = {"from": args.from_size, "to": end, "proof": b64, "from_checkpoint": old, "to_checkpoint": new}
    emit(args, payload, "\n".join([f"old {args.from_size}", *b64]))
    return EXIT_OK


def _rotate_key(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        session = runtime(args).session(runtime(args).context(None, args.purpose or "key rotation", None, None),
                                        log=log)
        actor = session.check("rotate_key", permission="manage_users")
        entry, old, new = log.rotate_key(operator=actor.name)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {"audit_seq": entry.seq, "old_vkey": old, "new_vkey": new},
         f"rotated the audit signing key (recorded as #{entry.seq}); new verifier key:\n{new}\n"
         f"old verifier key (kept for history):\n{old}")
    return EXIT_OK


def _publish(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        results = publish_checkpoint(log, runtime(args).settings.witnesses)
    except _ERRORS as err:
        return fail(args, err)
    ok = all(r["ok"] for r in results)
    emit(args, {"size": log.size(), "witnesses": results},
         "\n".join(f"{r['witness']}: {'cosigned' if r['ok'] else 'FAILED'} {r.get('detail') or ''}"
                   for r in results) or "no witnesses configured (FACETRAIL_WITNESSES)")
    return EXIT_OK if ok and results else EXIT_FAILURE


def _checkpoint(args: argparse.Namespace) -> int:
    try:
        log = _log(args)
        cp = log.checkpoint()
        payload = _checkpoint_payload(log, cp)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, payload, payload["note"])
    return EXIT_OK


def _review(args: argparse.Namespace) -> int:
    """Review as the signed-in account; a ``--reviewer`` that names another account is refused (exit 2)."""
    try:
        log = _log(args)
        session = runtime(args).session(AuditContext(claimed_operator=args.reviewer), log=log)
        entry = session.review(args.seq, args.decision, note=args.note, face_id=args.face_id, reason=args.reason,
                               reverse=args.reverse)
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

    p = sub.add_parser("verify", parents=common, help="recompute the hash chain and the signed checkpoints")
    p.add_argument("--public-key", help="check notes against this public key file (PEM, or verifier keys, one a "
                                        "line) instead of the key file")
    p.add_argument("--all-signatures", action="store_true",
                   help="check every record's signed note and decode every record (default: the latest note's "
                        "signature and the Merkle root commit to every record)")
    p.add_argument("--checkpoint", action="append", metavar="FILE",
                   help="a checkpoint published earlier (note, or `audit checkpoint --json` output): the log must "
                        "contain its tree (repeatable)")
    p.add_argument("--witness", action="append", metavar="URL",
                   help="a witness's latest cosigned checkpoint of this log: the log must contain its tree (its "
                        "cosignature is checked when the witness is configured in FACETRAIL_WITNESSES)")
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
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    _add_filters(p)
    p.set_defaults(handler=_export)

    p = sub.add_parser("excerpt", parents=[*common, _export_context()],
                       help="write a verifiable excerpt (records, signed checkpoint, inclusion proofs)")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    _add_filters(p)
    p.set_defaults(handler=_excerpt)

    p = sub.add_parser("verify-excerpt", parents=parents, help="check an excerpt with only the public key")
    p.add_argument("file")
    p.add_argument("--public-key", required=True,
                   help="public key file (from `facetrail audit public-key`): PEM, or verifier keys one a line")
    p.add_argument("--trusted", metavar="CHECKPOINT_FILE", default=None,
                   help="a checkpoint of the log you already hold: the excerpt must be of a history consistent "
                        "with it")
    p.add_argument("--proof", metavar="FILE", default=None,
                   help="`facetrail audit prove-consistency --json` output, when the excerpt has no proof for the "
                        "trusted checkpoint's size")
    p.set_defaults(handler=_verify_excerpt)

    p = sub.add_parser("public-key", parents=common, help="print or write the audit public key (PEM or vkey)")
    p.add_argument("--out", default=None)
    p.add_argument("--vkey", action="store_true", help="the verifier key string (origin+key id+key) instead of PEM")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=_public_key)

    p = sub.add_parser("checkpoint", parents=common,
                       help="the signed checkpoint at the head (C2SP signed note), with witness cosignatures")
    p.set_defaults(handler=_checkpoint)

    p = sub.add_parser("prove-consistency", parents=common,
                       help="RFC 6962 consistency proof between two tree sizes of the log")
    p.add_argument("--from", dest="from_size", type=int, required=True, help="the older tree size")
    p.add_argument("--to", type=int, default=None, help="the newer tree size (default: the head)")
    p.set_defaults(handler=_prove_consistency)

    p = sub.add_parser("rotate-key", parents=common,
                       help="replace the signing key (admin; recorded; the old public key is kept for history)")
    p.add_argument("--purpose", default=None, help="why (recorded)")
    p.set_defaults(handler=_rotate_key)

    p = sub.add_parser("publish", parents=common, help="push the head's checkpoint to the configured witnesses now")
    p.set_defaults(handler=_publish)

    p = subparsers.add_parser("review", parents=common,
                              help="record a human review of a match as the signed-in reviewer (two-person rule)")
    p.add_argument("seq", type=int, help="the query's record seq")
    p.add_argument("--reviewer", default=Settings.from_env().operator,
                   help="if given, must be the signed-in account, or the review is refused ($FACETRAIL_OPERATOR)")
    p.add_argument("--decision", choices=["confirm", "reject"], required=True)
    p.add_argument("--note", default=None)
    p.add_argument("--face-id", default=None, help="which candidate (needed when the query has several)")
    p.add_argument("--reason", choices=REASON_CODES, default=None,
                   help="why (a reason code; 'other (explained in the note)' needs --note)")
    p.add_argument("--reverse", action="store_true",
                   help="reverse your own decision on this candidate (recorded as a reversal; a second review "
                        "without it is refused)")
    p.set_defaults(handler=_review)

