"""Privacy commands: ``privacy inventory``, ``privacy purge-evaluation-cache``, ``retention run``.

``facetrail privacy inventory [--json]`` (auditors, admins) lists every table and file of
this deployment that keeps personal or biometric data: ``place``, ``kind``, ``rows``,
``subjects``, ``oldest``, ``retention``, ``protection`` (``--json``: one JSON list).

``facetrail privacy purge-evaluation-cache [--all] [--dry-run] [--json]`` (auditors,
admins) deletes the evaluation embeddings older than ``FACETRAIL_EVALUATION_CACHE_DAYS``
(``--all``: every one) and destroys their day keys; ``--dry-run`` only counts. Prints
``entries``, ``keys_destroyed``, ``oldest_kept`` and ``dry_run``. Running it twice purges
nothing the second time.

``facetrail retention run [--dry-run] [--json]`` (auditors, admins) applies every retention
rule now (expired evaluation embeddings; review evidence whose review ended or whose 30 days
passed) and is recorded as one ``retention`` record (``audit_seq``); ``--dry-run`` lists what
is due (``evaluation_cache``, ``evidence``) and changes nothing. A second run purges nothing.

Exit codes: 0 done, 2 refused (not signed in, a role without the permission), 1 any other failure.
"""

from __future__ import annotations

import argparse
from typing import Any

from audit import AuditError, privacy_inventory, purge_evaluation_cache, retention_run
from core import RecognitionError, StorageError
from dashboard.cli.common import EXIT_OK, context, context_parent, emit, fail, runtime

__all__ = ["register"]

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
    retention = subparsers.add_parser("retention", help="apply the retention schedules (audited)")
    rsub = retention.add_subparsers(dest="retention_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("run", parents=[*parents, context_parent()],
                        help="destroy what is due: expired evaluation embeddings, review evidence (recorded)")
    p.add_argument("--dry-run", action="store_true", help="list what is due; change nothing")
    p.set_defaults(handler=_retention)


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
        done = retention_run(runtime(args), context(args) if args.purpose else None, dry_run=args.dry_run)
    except _ERRORS as err:
        return fail(args, err)
    cache, evidence = done["evaluation_cache"], done["evidence"]
    verb = "due" if args.dry_run else "destroyed"
    text = (f"{verb}: {cache['entries']:,} evaluation-cache entr{'y' if cache['entries'] == 1 else 'ies'} "
            f"({cache['keys_destroyed']} day key(s)), {len(evidence)} evidence item(s)"
            + ("" if args.dry_run else f" (audit record #{done['audit_seq']})"))
    emit(args, done, text)
    return EXIT_OK
