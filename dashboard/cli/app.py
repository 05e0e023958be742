"""App commands: ``demo``, ``dashboard``, ``datasets fetch lfw`` (accounts: :mod:`dashboard.cli.accounts`)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from audit import AuditError
from core import BadInput, RecognitionError, Settings, StorageError
from dashboard.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, emit, fail, runtime

__all__ = ["register", "serve"]

_ERRORS = (RecognitionError, AuditError, StorageError)
_APP = Path(__file__).resolve().parents[1] / "web" / "streamlit_app.py"


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the app commands to the ``facetrail`` parser."""
    demo = subparsers.add_parser(
        "demo", parents=parents,
        help="build the demo scene (ACLU-style test, reviews, evaluations) and serve the dashboard",
    )
    demo.add_argument("--data", help="data folder with lfw_small/ and congress_small/ "
                                     "(default: $FACETRAIL_DATA, else ../shared/datasets)")
    demo.add_argument("--no-serve", action="store_true", help="build the scene only")
    demo.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    demo.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    demo.add_argument("--workers", type=int, help="processes for embedding (default: all cores)")
    demo.add_argument("--gallery-limit", type=int, help=argparse.SUPPRESS)
    demo.add_argument("--probe-limit", type=int, help=argparse.SUPPRESS)
    demo.add_argument("--no-evaluate", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(handler=_demo)

    dash = subparsers.add_parser("dashboard", parents=parents, help="serve the dashboard on an existing database")
    dash.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    dash.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    dash.set_defaults(handler=_dashboard)

    datasets = subparsers.add_parser("datasets", help="download evaluation datasets")
    dsub = datasets.add_subparsers(dest="datasets_command", metavar="ACTION")
    dsub.required = True
    fetch = dsub.add_parser("fetch", parents=parents, help="download a dataset with checksums")
    fetch.add_argument("name", choices=("lfw",))
    fetch.add_argument("--url-base", help="mirror holding the files under the same names (default: public sources)")
    fetch.add_argument("--dest", default=str(Settings.from_env().data_dir or "data/datasets"),
                       help="folder to write lfw_small/ into (default: $FACETRAIL_DATA, else data/datasets)")
    fetch.set_defaults(handler=_datasets_fetch)


def serve(db: str, port: int, data: str | None = None, address: str = "127.0.0.1") -> int:
    """Run the Streamlit dashboard on ``db`` in the foreground; return its exit code."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(_APP),
        "--server.headless", "true", "--server.port", str(port), "--server.address", address,
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        "--", "--db", db,
    ]
    env = dict(os.environ)
    if data:
        env["FACETRAIL_DATA"] = data
    sys.stderr.write(f"facetrail: dashboard on http://{address}:{port}  (database {db}; Ctrl-C stops)\n")
    with subprocess.Popen(command, env=env) as proc:
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop the server with us
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            return EXIT_OK
        finally:
            signal.signal(signal.SIGTERM, previous)


def _demo(args: argparse.Namespace) -> int:
    from dashboard.demo import build_scene  # noqa: PLC0415  (loads TensorFlow: only when asked)

    try:
        report = build_scene(
            runtime(args), args.data, gallery_limit=args.gallery_limit, probe_limit=args.probe_limit,
            evaluate=not args.no_evaluate, workers=args.workers, progress=not args.json,
            echo=lambda line: sys.stderr.write(line + "\n"),
        )
    except _ERRORS as err:
        return fail(args, err)
    emit(args, report.to_dict(), f"demo scene ready in {args.db}")
    if args.no_serve:
        return EXIT_OK
    return serve(args.db, args.port, report.data_dir, args.address)


def _dashboard(args: argparse.Namespace) -> int:
    if not Path(args.db).expanduser().is_file():
        return fail(args, BadInput(f"no database at {args.db}; build one with `facetrail demo --no-serve`"))
    return serve(args.db, args.port, address=args.address)


def _datasets_fetch(args: argparse.Namespace) -> int:
    from audit import fetch_lfw  # noqa: PLC0415

    try:
        result = fetch_lfw(Path(args.dest), url_base=args.url_base,
                           echo=lambda line: sys.stderr.write(line + "\n"))
    except RecognitionError as err:
        return fail(args, err, EXIT_BAD_INPUT)
    except OSError as err:
        return fail(args, err, EXIT_FAILURE)
    emit(args, result, f"lfw_small ready in {result['folder']} ({result['images']} images)")
    return EXIT_OK
