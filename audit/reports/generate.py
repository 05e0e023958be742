"""Generate a report as an audited action: checked by the gate, built, rendered, written, recorded as ``report``.

:func:`generate_report` is what the CLI (``facetrail report``) and the dashboard's Reports page
call. The gate (:meth:`audit.session.AuditSession.check`) refuses, and records the refusal,
unless the signed-in account holds the ``report`` permission (auditors). The report is then
built over a verified, checkpointed state of the log (:func:`audit.reports.build.build_report`),
rendered (:mod:`audit.reports.render`) and, with ``out``, written through
:func:`write_output`. The ``report`` record that follows states the template, the period, the
format, whether it is public, the log state it was computed from (tree size, root, verified)
and the SHA-256 of the bytes produced, so a copy of the report found later can be matched to
its record. That record comes after the counted state, so a report never counts itself.

Output files: :func:`write_output` is this package's one call site for writing a report file.
It refuses to overwrite an existing file unless ``force`` is given, and never writes over the
database, its write-ahead log, or a key file of the log (signing key, public key, pseudonym key),
whatever the spelling of the path (symlinks resolved). The project-wide output guard of the
signed-checkpoint work (``audit/outputs.py``) replaces it when that lands: only this function
changes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.evaluation.store import EvaluationStore
from audit.reports.build import ReportRequest, build_report
from audit.reports.model import Report
from audit.reports.privacy import Privacy
from audit.reports.render import FORMATS, render
from audit.session import Audited, AuditSession
from audit.trail.export import load_pseudonym_key, pseudonym_key_path
from audit.trail.log import AuditLog

__all__ = ["GeneratedReport", "ReportOutputRefused", "generate_report", "protected_paths", "write_output"]


class ReportOutputRefused(AuditError):
    """The output file exists (and ``force`` was not given) or is the database or a key file."""

    code = "output_refused"


@dataclass(frozen=True)
class GeneratedReport:
    """A report as generated: its model, the bytes of the chosen format, and where they went."""

    report: Report
    """The report's content (sections, blocks, the log state it counts)."""
    format: str
    """``json``, ``html`` or ``pdf``."""
    data: bytes
    """The rendered report."""
    sha256: str
    """SHA-256 of ``data`` (hex), also in the ``report`` record."""
    path: str | None
    """Where it was written (``None``: not written, e.g. a dashboard download)."""

    def summary(self) -> dict[str, Any]:
        """Return what the ``report`` record and ``--json`` say about it."""
        about = self.report.about
        return {"template": self.report.template, "period": dict(about["period"]), "format": self.format,
                "public": bool(about["privacy"].get("public")), "tree_size": about["tree_size"],
                "root": about["root"], "verified": about["verified"], "sha256": self.sha256,
                "bytes": len(self.data), "out": None if self.path is None else Path(self.path).name}


def protected_paths(log: AuditLog) -> set[Path]:
    """Return the files a report must never overwrite: the database (its WAL, its key store), the log's keys."""
    out = {log.key_path, Path(str(log.key_path) + ".pub"), pseudonym_key_path(log)}
    if log.db.path != ":memory:":
        db = Path(log.db.path).expanduser()
        out |= {db, Path(str(db) + ".wal"), Path(str(db) + ".keys")}
    return {p.resolve() for p in out}


def write_output(path: str | os.PathLike[str], data: bytes, *, force: bool, protected: set[Path]) -> Path:
    """Write ``data`` to ``path`` atomically: never a half-written file, never over a protected or existing one.

    Raises
    ------
    ReportOutputRefused
        ``path`` is protected, is a directory, or exists and ``force`` is false.
    OSError
        The folder cannot be written.
    """
    target = Path(path).expanduser()
    resolved = target.resolve()
    if resolved in protected:
        raise ReportOutputRefused(f"refusing to write the report over {target.name}: it is the database or a key "
                                  "file of the audit log")
    if resolved.is_dir():
        raise ReportOutputRefused(f"{target} is a folder; give a file name")
    if resolved.exists() and not force:
        raise ReportOutputRefused(f"{target.name} exists; pass --force to replace it")
    fd, temporary = tempfile.mkstemp(prefix=".report-", dir=resolved.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, resolved)
        else:
            try:
                os.link(temporary, resolved)  # fails if the file appeared meanwhile: never overwrite
            except FileExistsError as err:
                raise ReportOutputRefused(f"{target.name} exists; pass --force to replace it") from err
    finally:
        Path(temporary).unlink(missing_ok=True)
    return resolved


def generate_report(
    session: AuditSession, evaluations: EvaluationStore, request: ReportRequest, fmt: str, *,
    public: bool = False, k: int = 5, epsilon: float | None = None, out: str | os.PathLike[str] | None = None,
    force: bool = False, pseudonym_key: str | None = None, chromium: str | None = None,
) -> Audited[GeneratedReport]:
    """Check, build, render, write and record one report (see the module docstring).

    Parameters
    ----------
    session
        The gate (the signed-in account, and why: its context's purpose).
    evaluations
        The stored evaluations (accuracy sections).
    request
        Period, template and the deployer's ``report.toml``.
    fmt
        ``json``, ``html`` or ``pdf``.
    public
        Pseudonymise operators and subjects and suppress counts below ``k``.
    epsilon
        Privacy budget of differentially private usage counts (public reports only).
    out
        Write the report here (``None``: only return it).
    force
        Replace ``out`` if it exists.
    pseudonym_key
        Pseudonymisation key file (default: beside the signing key).

    Raises
    ------
    ValueError
        An unknown format, or privacy parameters that do not fit (refused and recorded).
    NotAuthenticated, Forbidden, MissingContext
        The gate refused (recorded).
    ReportOutputRefused, RenderError, AuditError, OSError
        The report could not be made or written (recorded with its code).
    """
    log = session.log
    asked = {"template": request.template, "period": {"from": request.since.isoformat(),
                                                      "to": request.until.isoformat()},
             "format": fmt, "public": public, "k": k, "epsilon": epsilon,
             "out": None if out is None else Path(out).name}
    session.check("report", asked)
    try:
        if fmt not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; use {', '.join(FORMATS)}")
        Privacy(public=public, k=k, epsilon=epsilon, key=b"checked only" if public else None)
    except ValueError as err:
        session.refuse("report", "bad_input", str(err), asked)
        raise

    def call() -> GeneratedReport:
        key = load_pseudonym_key(log, pseudonym_key) if public else None
        privacy = Privacy(public=public, k=k, epsilon=epsilon, key=key)
        report = build_report(log, request, privacy, evaluations)
        data = render(report, fmt, chromium=chromium)
        written = None if out is None else write_output(out, data, force=force, protected=protected_paths(log))
        return GeneratedReport(report, fmt, data, hashlib.sha256(data).hexdigest(),
                               None if written is None else str(written))

    return session.run("report", call, lambda g: {"details": g.summary()}, lambda _: {"details": asked})
