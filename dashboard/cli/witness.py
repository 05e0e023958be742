"""``facetrail witness ...``: run an independent witness of an audit log (C2SP tlog-witness over HTTP).

``facetrail witness serve --state DIR --port P [--log-key VKEY ...]`` runs the witness in
the foreground (its own process, its own key and state in ``DIR``), bound to 127.0.0.1
unless ``--host`` says otherwise; it prints its verifier key first, the value the log's
``FACETRAIL_WITNESSES`` needs (``URL=VKEY``). ``facetrail witness key --state DIR`` prints it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from audit import AuditError, WitnessServer, WitnessState
from dashboard.cli.common import EXIT_OK, emit, fail

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    try:
        state = WitnessState(args.state, list(args.log_key or ()))
        server = WitnessServer(state, args.host, args.port)
    except (AuditError, OSError) as err:
        return fail(args, err)
    print(f"witness {state.name} vkey {state.vkey()} listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("witness stopped", file=sys.stderr)
    finally:
        server.httpd.server_close()
    return EXIT_OK


def _key(args: argparse.Namespace) -> int:
    try:
        state = WitnessState(args.state, list(args.log_key or ()))
    except (AuditError, OSError) as err:
        return fail(args, err)
    emit(args, {"name": state.name, "vkey": state.vkey(), "logs": sorted(state.log_keys)}, state.vkey())
    return EXIT_OK


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``witness serve`` and ``witness key`` to the ``facetrail`` parser."""
    witness = subparsers.add_parser("witness", help="run an independent witness that cosigns an audit log's "
                                                    "checkpoints along one consistent history")
    sub = witness.add_subparsers(dest="witness_command", metavar="WITNESS_COMMAND")
    sub.required = True
    for name, handler, text in (("serve", _serve, "serve add-checkpoint over HTTP (foreground)"),
                                ("key", _key, "print the witness's verifier key")):
        p = sub.add_parser(name, parents=parents, help=text)
        p.add_argument("--state", required=True, help="the witness's folder (its key and state)")
        p.add_argument("--log-key", action="append", metavar="VKEY",
                       help="a log's verifier key (`facetrail audit public-key --vkey`) to witness (repeatable; "
                            "remembered in the state)")
        if name == "serve":
            p.add_argument("--port", type=int, default=8123)
            p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
        p.set_defaults(handler=handler)
