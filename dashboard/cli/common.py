"""The ``facetrail`` command line.

Scriptable: ``--json`` prints machine-readable output on stdout; exit code 0 on
success, 2 on bad input (unreadable image, no face, unknown gallery, missing
column ...), 1 on other failures (an integrity fault, say). Human-readable
messages go to stderr. ``--db PATH`` works on every command (default
``$FACETRAIL_DB``, else ``data/facetrail.duckdb``).

Command groups live beside this module (``cli_engine``, ``cli_audit``,
``cli_eval``, ``cli_app``); each offers ``register(subparsers, parents)``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit import AuditContext, Runtime

__all__ = [
    "main",
    "emit",
    "fail",
    "common_parent",
    "context",
    "context_parent",
    "runtime",
    "config_args",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

_GROUPS = ("dashboard.cli.engine", "dashboard.cli.audit", "dashboard.cli.evaluate", "dashboard.cli.app")


def common_parent() -> argparse.ArgumentParser:
    """Options every command takes: ``--db`` and ``--json``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="database file (default: $FACETRAIL_DB, else data/facetrail.duckdb)",
    )
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return parent


def context_parent() -> argparse.ArgumentParser:
    """Who runs an engine action and why (recorded in the audit trail); defaults from the settings."""
    from core import Settings  # noqa: PLC0415

    settings = Settings.from_env()
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("audit context (recorded with every action)")
    group.add_argument("--operator", default=settings.operator, help="who runs it ($FACETRAIL_OPERATOR)")
    group.add_argument("--purpose", default=settings.purpose, help="why ($FACETRAIL_PURPOSE)")
    group.add_argument("--case", default=settings.case_ref, help="case reference ($FACETRAIL_CASE)")
    group.add_argument("--legal-basis", default=settings.legal_basis, help="legal basis ($FACETRAIL_LEGAL_BASIS)")
    return parent


def runtime(args: argparse.Namespace) -> Runtime:
    """The command's one composition root (built on first use, on ``--db``)."""
    built = getattr(args, "_runtime", None)
    if built is None:
        from audit import Runtime  # noqa: PLC0415 (keeps `facetrail --help` light)
        from core import Settings  # noqa: PLC0415

        built = Runtime(Settings.from_env().with_db(args.db))
        args._runtime = built
    return built


def context(args: argparse.Namespace) -> AuditContext:
    """The audit context named by ``--operator``/``--purpose``/``--case``/``--legal-basis``."""
    from audit import AuditContext  # noqa: PLC0415

    return AuditContext(args.operator, args.purpose, args.case, args.legal_basis)


def config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--detector`` and ``--alignment`` (defaults: the engine's default configuration)."""
    from core import ALIGNMENTS, DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, DETECTORS, MODELS  # noqa: PLC0415

    parser.add_argument("--model", default="Dlib", choices=sorted(MODELS))
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS)
    parser.add_argument("--alignment", default=DEFAULT_ALIGNMENT, choices=ALIGNMENTS)


def emit(args: argparse.Namespace, payload: Any, text: str | None = None) -> None:
    """Print ``payload`` as JSON with ``--json``, else ``text`` (or pretty JSON)."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    elif text is not None:
        sys.stdout.write(text.rstrip("\n") + "\n")
    else:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(args: argparse.Namespace, err: BaseException, code: int = EXIT_BAD_INPUT) -> int:
    """Report an error (JSON on stdout with ``--json``, always a line on stderr); return the exit code."""
    error_code = getattr(err, "code", type(err).__name__)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": str(err), "code": error_code}) + "\n")
    sys.stderr.write(f"facetrail: error: {err}\n")
    return code


def _build_parser() -> tuple[argparse.ArgumentParser, list[Any]]:
    parser = argparse.ArgumentParser(
        prog="facetrail",
        description="Accountable face recognition: audited search, tamper-evident logs, demographic error rates.",
        parents=[common_parent()],
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    modules = []
    for name in _GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers, [common_parent()])
        modules.append(module)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``facetrail`` command; return its exit code."""
    logging.basicConfig(level=logging.WARNING, format="facetrail: %(levelname)s: %(message)s", stream=sys.stderr)
    parser, _ = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) and EXIT_BAD_INPUT
    if not hasattr(args, "db"):
        args.db = None
    if not hasattr(args, "json"):
        args.json = False
    if args.db is None:
        from core import Settings  # noqa: PLC0415

        args.db = Settings.from_env().db
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)

