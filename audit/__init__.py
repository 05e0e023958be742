"""facetrail's accountability: the audit trail, who acts, the audited engine, and measured error rates.

- :mod:`audit.trail`: the append-only, hash-chained, signed log, review, exports.
- :mod:`audit.accounts`: users, roles, permissions, credentials, the authenticated :class:`Actor`.
- :mod:`audit.access`: :class:`AccountService`: sign-in, sessions, API tokens, account changes (recorded).
- :mod:`audit.session`: :class:`AuditSession`, the one gate every action passes.
- :mod:`audit.audited`: :class:`AuditedEngine`, the engine and galleries behind the gate.
- :mod:`audit.blind`: blind review with fillers (batches, one item at a time, the reveal);
  :mod:`audit.evaluation.reviewers`: each reviewer's own error rates.
- :mod:`audit.evaluation`: NIST-style error rates per group, calibration, stored runs.
- :mod:`audit.reports`: accountability reports from the live record (``generate_report``).
- :mod:`audit.runtime`: :class:`Runtime`, the composition root the interfaces build once.

``audit`` never imports streamlit or ``dashboard``.
"""

from audit import evaluation as _evaluation
from audit import reports as _reports
from audit import retention as _retention
from audit import trail as _trail
from audit import witness as _witness
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
from audit.blind import (
    BLIND_MODE,
    NON_BLIND_MODE,
    BlindBatch,
    BlindItem,
    BlindRevealMismatch,
    BlindReviewRefused,
    blind_batches,
    open_batch,
    reveal,
    verify_reveal,
)
from audit.blind import decide as blind_decide
from audit.blind import face_image as blind_face_image
from audit.blind import next_item as blind_next
from audit.blind import probe_image as blind_probe_image
from audit.blind import submit_decision as blind_submit
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
from audit.evaluation.findings import (
    METRIC_WORDS,
    Finding,
    chance_finding,
    disparity_view,
    false_candidate_curves,
    false_match_words,
    group_cells,
    rate_finding,
)
from audit.evaluation.reviewers import ReviewerRate, ReviewerRates, audited_reviewer_rates, reviewer_rates
from audit.numbers import (
    comparison_text,
    count_text,
    log_ticks,
    one_in,
    percent_text,
    rate_text,
    ratio_text,
    similarity_text,
)
from audit.outputs import OutputRefused, check_out_path, protected_paths
from audit.overview import AGE_BANDS, DeployedRates, OverviewCounts, deployed_rates, overview_counts
from audit.privacy import DataHolding, privacy_inventory, purge_evaluation_cache, retention_run
from audit.probe_group import ProbeGroupUnknown, group_labels
from audit.reports import *  # noqa: F403 (accountability reports)
from audit.retention import *  # noqa: F403 (retention schedules and signed receipts)
from audit.reviewing import (
    QueueItem,
    RateAtScore,
    ReviewEvidence,
    designated_evaluation,
    rates_at_score,
    review_evidence,
    review_queue,
)
from audit.runtime import Runtime
from audit.search import (
    LINK_PARAMS,
    PER_PAGE,
    LogFacts,
    RecordPage,
    RecordQuery,
    ViewExport,
    export_history,
    export_view,
    find_page,
    find_records,
)
from audit.session import AuditContext, Audited, AuditSession
from audit.trail import *  # noqa: F403 (the trail's public names)
from audit.trail.review import REASON_CODES, submit_review
from audit.witness import *  # noqa: F403 (the witness and the log's witness client)

__all__ = [
    "ACTION_PERMISSIONS",
    "AGE_BANDS",
    "DeployedRates",
    "Finding",
    "METRIC_WORDS",
    "OverviewCounts",
    "chance_finding",
    "comparison_text",
    "count_text",
    "group_cells",
    "group_labels",
    "deployed_rates",
    "disparity_view",
    "false_candidate_curves",
    "false_match_words",
    "log_ticks",
    "one_in",
    "overview_counts",
    "percent_text",
    "rate_finding",
    "rate_text",
    "ratio_text",
    "similarity_text",
    "QueueItem",
    "REASON_CODES",
    "ProbeGroupUnknown",
    "RateAtScore",
    "ReviewEvidence",
    "designated_evaluation",
    "rates_at_score",
    "review_evidence",
    "review_queue",
    "submit_review",
    "DataHolding",
    "privacy_inventory",
    "purge_evaluation_cache",
    "retention_run",
    "BLIND_MODE",
    "NON_BLIND_MODE",
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
    "BlindBatch",
    "BlindItem",
    "BlindReviewRefused",
    "BlindRevealMismatch",
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
    "ReviewerRate",
    "ReviewerRates",
    "ReviewRefused",
    "Runtime",
    "SignInRefused",
    "User",
    "audited_export",
    "audited_reviewer_rates",
    "blind_batches",
    "blind_decide",
    "blind_face_image",
    "blind_next",
    "blind_probe_image",
    "blind_submit",
    "can",
    "normalize_name",
    "open_batch",
    "reveal",
    "reviewer_rates",
    "verify_reveal",
    *_evaluation.__all__,
    *_reports.__all__,
    *_retention.__all__,
    *_trail.__all__,
    *_witness.__all__,
    "LINK_PARAMS",
    "PER_PAGE",
    "LogFacts",
    "RecordPage",
    "RecordQuery",
    "ViewExport",
    "export_history",
    "export_view",
    "find_page",
    "find_records",
    "OutputRefused",
    "check_out_path",
    "protected_paths",
]
