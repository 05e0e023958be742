"""The ``facetrail`` command line.

Scriptable: ``--json`` prints machine-readable output on stdout; exit code 0 on
success, 2 on bad input (unreadable image, no face, unknown gallery, missing
column ...), 1 on other failures (an integrity fault, say). Human-readable
messages go to stderr. ``--db PATH`` works on every command (default
``$FACETRAIL_DB``, else ``data/facetrail.duckdb``).

Command groups live beside this module (``engine``, ``video``, ``audit``, ``evaluate``,
``accounts``, ``app``); each offers ``register(subparsers, parents)``.

Who acts is the signed-in account: ``facetrail login NAME --password-stdin`` keeps a
session token in a 0600 file under the user's config directory (one per database,
``$FACETRAIL_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/facetrail``, else
``~/.config/facetrail``); ``$FACETRAIL_TOKEN`` (a session or an admin-issued API token)
overrides it. :func:`runtime` hands that token to the command's runtime, which checks it
at the command's first audited action (a refusal is recorded and exits 2).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit import Actor, AuditContext, Runtime
    from core import Settings

__all__ = [
    "main",
    "emit",
    "fail",
    "common_parent",
    "context",
    "context_parent",
    "runtime",
    "config_args",
    "forget_session",
    "save_session",
    "saved_session",
    "session_file",
    "SIGN_IN_HINT",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

_GROUPS = ("dashboard.cli.engine", "dashboard.cli.video", "dashboard.cli.audit", "dashboard.cli.evaluate",
           "dashboard.cli.accounts", "dashboard.cli.report", "dashboard.cli.app", "dashboard.cli.review",
           "dashboard.cli.witness", "dashboard.cli.privacy")

#: What to do when a command needs a signed-in account and there is none.
SIGN_IN_HINT = "run `facetrail login NAME --password-stdin` or set FACETRAIL_TOKEN"


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
    group = parent.add_argument_group("audit context (recorded with every action; who acts is the signed-in "
                                      "account: facetrail login)")
    group.add_argument("--operator", default=settings.operator,
                       help="if given, must be the signed-in account, or the action is refused ($FACETRAIL_OPERATOR)")
    group.add_argument("--purpose", default=settings.purpose, help="why ($FACETRAIL_PURPOSE)")
    group.add_argument("--case", default=settings.case_ref, help="case reference ($FACETRAIL_CASE)")
    group.add_argument("--legal-basis", default=settings.legal_basis, help="legal basis ($FACETRAIL_LEGAL_BASIS)")
    return parent


def runtime(args: argparse.Namespace) -> Runtime:
    """Return the command's one composition root (built on first use, on ``--db``)."""
    built = getattr(args, "_runtime", None)
    if built is None:
        from audit import Runtime  # noqa: PLC0415 (keeps `facetrail --help` light)
        from core import Settings  # noqa: PLC0415

        settings = Settings.from_env().with_db(args.db)
        built = Runtime(settings)
        token, why = settings.token, None
        if token is None:
            token, why = saved_session(settings)
        built.use_token(token, hint=SIGN_IN_HINT, unauthenticated=why)
        args._runtime = built
    return built


def context(args: argparse.Namespace) -> AuditContext:
    """Return the audit context of ``--purpose``/``--case``/``--legal-basis``; ``--operator`` is a claim checked by the gate."""
    from audit import AuditContext  # noqa: PLC0415

    return AuditContext(purpose=args.purpose, case_ref=args.case, legal_basis=args.legal_basis,
                        claimed_operator=args.operator)


# -- the saved CLI session ------------------------------------------------------------------------------


def session_file(settings: Settings) -> Path:
    """Where ``facetrail login`` keeps the session of ``settings.db`` (one file per database)."""
    db = settings.db if settings.db == ":memory:" else str(Path(settings.db).expanduser().resolve())
    return settings.config_dir / "sessions" / (hashlib.sha256(db.encode("utf-8")).hexdigest()[:32] + ".json")


def saved_session(settings: Settings) -> tuple[str | None, str | None]:
    """Return the saved session token of ``settings.db`` and, when there is none to use, why (or ``None``)."""
    path = session_file(settings)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"cannot read the saved session {path}: {err}"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None, (f"the saved session {path} is readable by other users (mode {stat.filemode(mode)}); "
                      "it is not used: delete it and sign in again")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        token = saved["token"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        return None, f"the saved session {path} cannot be read ({err}): sign in again"
    return (token, None) if isinstance(token, str) else (None, f"the saved session {path} holds no token")


def save_session(settings: Settings, actor: Actor) -> Path:
    """Keep ``actor``'s session token in a file only its owner can read (0600, in a 0700 folder)."""
    path = session_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    db = settings.db if settings.db == ":memory:" else str(Path(settings.db).expanduser().resolve())
    payload = json.dumps({"db": db, "name": actor.name, "credential_id": actor.credential_id,
                          "expires_at": actor.expires_at, "token": actor.token})
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def forget_session(settings: Settings) -> bool:
    """Delete the saved session of ``settings.db``; return whether there was one."""
    try:
        session_file(settings).unlink()
    except FileNotFoundError:
        return False
    return True


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
        module = importlib.import_module(name)
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

