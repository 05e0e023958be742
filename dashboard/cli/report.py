"""``facetrail report``: an accountability report from the live record (JSON, HTML or PDF).

``facetrail report --from 2026-01-01 --to 2026-12-31 --template rcw-43.386|eu-ai-act-26|oakland-9.64|full
--format html|pdf|json --out FILE [--public [--suppress-below K] [--epsilon E]] [--config report.toml]``

The signed-in account needs the ``report`` permission (auditors); the report is an audited
action (a ``report`` record with the SHA-256 of the file written). What no log knows comes
from the deployer's ``report.toml`` (``--config``; ``docs/report.toml`` lists every key):
anything it does not give is printed as missing. An existing ``--out`` file is kept unless
``--force``; the database and the log's key files are never written over.

Exit codes: 0 written; 2 bad input (dates, ``report.toml``, a refusal, an existing file);
1 other failures, and when the audit log fails verification (the report is written and
says so on its first page). This module parses, calls :func:`audit.generate_report` and
formats; it counts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from audit import (
    REPORT_FORMATS,
    REPORT_TEMPLATES,
    AuditContext,
    AuditError,
    EvaluationStore,
    RenderError,
    ReportRequest,
    generate_report,
    load_report_config,
)
from core import RecognitionError, Settings, StorageError
from dashboard.cli.common import EXIT_FAILURE, EXIT_OK, emit, fail, runtime

__all__ = ["register"]

#: The purpose recorded when none is given.
DEFAULT_PURPOSE = "accountability report"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from err


def _report(args: argparse.Namespace) -> int:
    try:
        request = ReportRequest(args.since, args.until, args.template, load_report_config(args.config))
    except (AuditError, ValueError) as err:
        return fail(args, err)
    rt = runtime(args)
    context = AuditContext(purpose=args.purpose or DEFAULT_PURPOSE, legal_basis=args.legal_basis,
                           claimed_operator=args.operator)
    try:
        done = generate_report(rt.session(context), EvaluationStore(rt.db), request, args.format,
                               public=args.public, k=args.suppress_below, epsilon=args.epsilon, out=args.out,
                               force=args.force, pseudonym_key=args.pseudonym_key)
    except RenderError as err:
        return fail(args, err, EXIT_FAILURE)
    except (AuditError, RecognitionError, ValueError) as err:
        return fail(args, err)
    except (StorageError, OSError) as err:
        return fail(args, err, EXIT_FAILURE)
    summary: dict[str, Any] = {**done.result.summary(), "path": done.result.path, "audit_seq": done.entry.seq}
    verified = summary["verified"]
    text = (f"wrote {summary['template']} report ({summary['format']}, {summary['bytes']:,} bytes"
            f"{', public' if summary['public'] else ''}) to {done.result.path}; records 1 to {summary['tree_size']}, "
            f"root {summary['root'] or 'none'}; recorded as #{done.entry.seq}")
    if not verified:
        text += "\nWARNING: the audit log FAILS verification; the report says so on its first page"
    emit(args, summary, text)
    return EXIT_OK if verified else EXIT_FAILURE


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``facetrail report``."""
    settings = Settings.from_env()
    p = subparsers.add_parser("report", parents=parents,
                              help="an accountability report (RCW 43.386, EU AI Act 26, OMC 9.64) from the log")
    p.add_argument("--from", dest="since", type=_date, required=True, help="first day of the period (UTC)")
    p.add_argument("--to", dest="until", type=_date, required=True, help="last day of the period, inclusive (UTC)")
    p.add_argument("--template", choices=list(REPORT_TEMPLATES), required=True)
    p.add_argument("--format", choices=list(REPORT_FORMATS), required=True)
    p.add_argument("--out", required=True, help="file to write (kept if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--config", default=None, help="the deployer's report.toml (default: none; all its items missing)")
    p.add_argument("--public", action="store_true",
                   help="public version: operators and subjects pseudonymised, small counts suppressed")
    p.add_argument("--suppress-below", type=int, default=5, metavar="K",
                   help="public version: counts from 1 to K-1 read '< K' (default 5)")
    p.add_argument("--epsilon", type=float, default=None,
                   help="public version: differentially private usage counts with this privacy budget (OpenDP)")
    p.add_argument("--pseudonym-key", default=None, help="pseudonymisation key file (default: <signing key>.pseudonym)")
    g = p.add_argument_group("who reports and why (recorded as a report record)")
    g.add_argument("--operator", default=settings.operator,
                   help="if given, must be the signed-in account ($FACETRAIL_OPERATOR)")
    g.add_argument("--purpose", default=settings.purpose, help=f"why (default {DEFAULT_PURPOSE!r})")
    g.add_argument("--legal-basis", default=settings.legal_basis, help="legal basis ($FACETRAIL_LEGAL_BASIS)")
    p.set_defaults(handler=_report)
