"""facetrail's accountability: the audit trail, who acts, the audited engine, and measured error rates.

- :mod:`audit.trail`: the append-only, hash-chained, signed log, review, exports.
- :mod:`audit.accounts`: users and roles (who is accountable).
- :mod:`audit.session`: :class:`AuditSession`, the one gate every action passes.
- :mod:`audit.audited`: :class:`AuditedEngine`, the engine and galleries behind the gate.
- :mod:`audit.evaluation`: NIST-style error rates per group, calibration, stored runs.
- :mod:`audit.runtime`: :class:`Runtime`, the composition root the interfaces build once.

``audit`` never imports streamlit or ``dashboard``.
"""

from audit import evaluation as _evaluation
from audit import trail as _trail
from audit.accounts import PERMISSIONS, ROLES, User, UserStore, can
from audit.audited import AuditedEngine, audited_export
from audit.errors import (
    AuditError,
    ChainIntegrityError,
    ExcerptError,
    KeyFileError,
    MissingContext,
    RecordNotFound,
    ReviewRefused,
)
from audit.evaluation import *  # noqa: F403 (the evaluation package's public names)
from audit.runtime import Runtime
from audit.session import AuditContext, Audited, AuditSession
from audit.trail import *  # noqa: F403 (the trail's public names)

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "AuditContext",
    "AuditError",
    "AuditSession",
    "Audited",
    "AuditedEngine",
    "ChainIntegrityError",
    "ExcerptError",
    "KeyFileError",
    "MissingContext",
    "RecordNotFound",
    "ReviewRefused",
    "Runtime",
    "User",
    "UserStore",
    "audited_export",
    "can",
    *_evaluation.__all__,
    *_trail.__all__,
]
