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

Output files go through the one ``--out`` guard (:func:`audit.outputs.check_out_path`): never the
database, its write-ahead log or a key file of the log; an existing file only with ``force``.
:func:`write_output` then writes atomically (a temporary file linked into place, so a file that
appears meanwhile is not overwritten either).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.evaluation.store import EvaluationStore
from audit.outputs import OutputRefused, check_out_path
from audit.reports.build import ReportRequest, build_report
from audit.reports.model import Report
from audit.reports.privacy import Privacy
from audit.reports.render import FORMATS, render
from audit.session import Audited, AuditSession
from audit.trail.export import load_pseudonym_key
from audit.trail.log import AuditLog

__all__ = ["GeneratedReport", "generate_report", "write_output"]


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


def write_output(path: str | os.PathLike[str], data: bytes, *, force: bool, log: AuditLog) -> Path:
    """Write ``data`` to ``path`` atomically, after the one ``--out`` guard (:func:`audit.outputs.check_out_path`).

    Raises
    ------
    OutputRefused
        ``path`` is the database, its WAL or a key file, a folder, or exists and ``force`` is false.
    OSError
        The folder cannot be written.
    """
    target = check_out_path(path, log.protected_paths(), force=force).resolve()
    fd, temporary = tempfile.mkstemp(prefix=".report-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails if the file appeared since the check: never overwrite
            except FileExistsError as err:
                raise OutputRefused(f"refusing to overwrite the existing file {str(path)!r}; pass --force to "
                                    "replace it") from err
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


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
    OutputRefused, RenderError, AuditError, OSError
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
        written = None if out is None else write_output(out, data, force=force, log=log)
        return GeneratedReport(report, fmt, data, hashlib.sha256(data).hexdigest(),
                               None if written is None else str(written))

    return session.run("report", call, lambda g: {"details": g.summary()}, lambda _: {"details": asked})
