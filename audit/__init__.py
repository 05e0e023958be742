"""facetrail's accountability: the audit trail, who acts, the audited engine, and measured error rates.

- :mod:`audit.trail`: the append-only, hash-chained, signed log, review, exports.
- :mod:`audit.accounts`: users, roles, permissions, credentials, the authenticated :class:`Actor`.
- :mod:`audit.access`: :class:`AccountService`: sign-in, sessions, API tokens, account changes (recorded).
- :mod:`audit.session`: :class:`AuditSession`, the one gate every action passes.
- :mod:`audit.audited`: :class:`AuditedEngine`, the engine and galleries behind the gate.
- :mod:`audit.evaluation`: NIST-style error rates per group, calibration, stored runs.
- :mod:`audit.runtime`: :class:`Runtime`, the composition root the interfaces build once.

``audit`` never imports streamlit or ``dashboard``.
"""

from audit import evaluation as _evaluation
from audit import trail as _trail
from audit.access import AccountService, IssuedToken
from audit.accounts import (
    ACTION_PERMISSIONS,
    PERMISSIONS,
    ROLES,
    AccountDisabled,
    Actor,
    Credential,
    Forbidden,
    LockedOut,
    NotAuthenticated,
    OperatorMismatch,
    SignInRefused,
    User,
    can,
    normalize_name,
)
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
    "ACTION_PERMISSIONS",
    "PERMISSIONS",
    "ROLES",
    "AccountDisabled",
    "AccountService",
    "Actor",
    "AuditContext",
    "AuditError",
    "AuditSession",
    "Audited",
    "AuditedEngine",
    "ChainIntegrityError",
    "Credential",
    "ExcerptError",
    "Forbidden",
    "IssuedToken",
    "KeyFileError",
    "LockedOut",
    "MissingContext",
    "NotAuthenticated",
    "OperatorMismatch",
    "RecordNotFound",
    "ReviewRefused",
    "Runtime",
    "SignInRefused",
    "User",
    "audited_export",
    "can",
    "normalize_name",
    *_evaluation.__all__,
    *_trail.__all__,
]
