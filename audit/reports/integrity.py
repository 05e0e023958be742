"""The state of the log a report is computed from: verified, then pinned by a signed checkpoint.

:func:`pin_log_state` verifies the whole log (:meth:`audit.trail.log.AuditLog.verify`, the one
verifier) and, if it verifies, takes the signed checkpoint at its head
(:meth:`~audit.trail.log.AuditLog.checkpoint`: every record carries the C2SP checkpoint note of
the tree it ends; a log written before that gets one first), with the witnesses'
cosignatures of that checkpoint (:meth:`~audit.trail.log.AuditLog.cosignatures`). The report
counts records ``1..tree_size`` of that checkpoint and prints its tree size and Merkle root,
so a reader holding the log's public key (or a published checkpoint) can check that the
numbers come from that state of the log. A log that fails verification is never signed
over: the report then counts every stored record, names the first fault, and says that
its numbers rest on records that do not verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.errors import AuditError
from audit.reports.model import not_available
from audit.trail.log import AuditLog

__all__ = ["LogState", "pin_log_state"]

_ATTEMPTS = 3


@dataclass(frozen=True)
class LogState:
    """What the report was computed from."""

    tree_size: int
    """Records ``1..tree_size`` were counted."""
    verified: bool
    """Whether the log verified (every record, hash and checkpoint)."""
    verify: dict[str, Any]
    """:meth:`VerifyReport.to_dict` of the verification run."""
    checkpoint: dict[str, Any] | None
    """The signed checkpoint at ``tree_size`` (or, for a log that fails, the last stored one)."""
    root: str | None
    """The Merkle root (hex) of records ``1..tree_size`` as the checkpoint signs it."""
    cosignatures: list[dict[str, Any]] | str
    """The witnesses' cosignatures of the checkpoint (witness, signature line, received at), or why there are none."""


def _root(cp: dict[str, Any]) -> str | None:
    """Return the checkpoint's root in hex (checkpoints name it ``root_hex`` since signed notes, ``root`` before)."""
    value = cp.get("root_hex", cp.get("root"))
    return None if value is None else str(value)


def _cosignatures(log: AuditLog, size: int | None) -> list[dict[str, Any]] | str:
    """Return the witnesses' cosignatures of the checkpoint at ``size``, or why there are none (never a blank)."""
    if size is None:
        return not_available("witness cosignatures: there is no signed checkpoint to cosign")
    found = log.cosignatures(size)
    if found:
        return [{"witness": c["witness"], "signature": c["signature"], "received_at": c["received_at"]}
                for c in found]
    return not_available(f"witness cosignatures: no witness has cosigned the checkpoint at tree size {size} "
                         "(set FACETRAIL_WITNESSES and run `facetrail audit publish`); check it against the "
                         "log's public key meanwhile")


def pin_log_state(log: AuditLog) -> LogState:
    """Verify the log and sign a checkpoint at its head; return the state a report counts.

    Raises
    ------
    AuditError
        The log kept growing while it was verified (three times in a row).
    KeyFileError
        The signing key cannot be read.
    """
    for _ in range(_ATTEMPTS):
        report = log.verify()
        if not report.ok:
            stored = log.checkpoints()
            last = stored[-1].to_dict() if stored else None
            return LogState(tree_size=log.size(), verified=False, verify=report.to_dict(), checkpoint=last,
                            root=None if last is None else _root(last),
                            cosignatures=_cosignatures(log, stored[-1].seq if stored else None))
        if report.records == 0:
            return LogState(0, True, report.to_dict(), None, None, not_available("checkpoints of an empty log"))
        cp = log.checkpoint()
        if cp.seq == report.records:
            signed = cp.to_dict()
            return LogState(tree_size=cp.seq, verified=True, verify=report.to_dict(), checkpoint=signed,
                            root=_root(signed), cosignatures=_cosignatures(log, cp.seq))
    raise AuditError("the audit log kept growing while it was verified; generate the report again")
