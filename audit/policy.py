"""The threshold policy: the loosest decision threshold operators may search at, and the limit past it.

Loosening a search's threshold (a larger cosine distance) returns more candidates, and
more of them false: at twice the calibrated threshold a search of someone who is not in
the gallery almost always names somebody. So the deployment decides, once, how loose an
operator may go, and every search says where it stood:

``within``
    The threshold is the default or stricter, or no looser than the policy's
    ``loosest``. The search runs as asked.
``looser``
    Looser than ``loosest`` but not past ``hard_limit``. The search runs only with a
    written reason (``--threshold-reason`` on the CLI, a text field on the pages); the
    record holds the reason and the warning the operator was shown (:attr:`ThresholdCheck.warning`,
    the one text every interface shows, made here).
``beyond_limit``
    Past ``hard_limit``: refused whatever the reason, with a ``refused`` record (code ``threshold_beyond_limit``).
    A looser search without a reason is refused the same way (``threshold_reason_required``).

Every search and video search records its check as ``details.threshold_policy``
(:meth:`ThresholdCheck.to_dict`), which the match log shows and filters on.

Where the policy comes from
---------------------------
An administrator sets it (:meth:`audit.audited.AuditedEngine.set_threshold_policy`,
``facetrail policy threshold``): the policy *is* the latest ``threshold_policy`` record of
the audit log for the gallery (or, failing one, for every gallery), so who set what, when
and why is in the signed trail, and no table beside the log can say otherwise. Values:

- ``loosest``: a cosine distance, or none: the gallery's default threshold (its FPIR
  calibration, else the configuration's calibrated 1:1 threshold), whatever it is at
  the time of the search;
- ``hard_limit``: a cosine distance, or none: :data:`DEFAULT_HARD_FACTOR` times the
  loosest threshold.

With no record, the built-in policy applies: ``loosest`` the default threshold, the hard
limit 1.25 times it.

A policy set by another process governs the next search there. :func:`current_policy`
reads the log rows appended since its last read; the audited search (``reuse``) skips
even that while this process has held the database file without a break since the last
read and appended no policy record itself: no other process can open the file meanwhile
(:meth:`core.storage.connection.Database.lease_generation`), so none can have added one.

The same record designates the evaluation (``evaluation``: a stored run id) whose error
rates the pages quote as the chance of a false candidate, on Search and on Verify alike:
operators do not pick the evaluation, so the chance they are shown cannot be shopped for.
No designation: the pages say so and quote no chance.

Verify (1:1) follows the policy for every gallery (``gallery_name`` None): its threshold
is the configuration's calibrated 1:1 threshold, and looser ones need a reason, past the
hard limit are refused, and are recorded and flagged as a search's are.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from audit.errors import AuditError, ChainIntegrityError
from audit.trail.log import APPENDS, AuditLog
from audit.trail.records import decode_record

__all__ = [
    "DEFAULT_HARD_FACTOR",
    "POLICY_ACTION",
    "ThresholdBeyondLimit",
    "ThresholdCheck",
    "ThresholdPolicy",
    "ThresholdReasonRequired",
    "check_policy_values",
    "check_threshold_policy",
    "current_policy",
    "policy_fields",
]

#: The record action that sets a threshold policy.
POLICY_ACTION = "threshold_policy"
#: With no hard limit named, searches looser than this many times the loosest threshold are refused.
DEFAULT_HARD_FACTOR = 1.25
#: A written reason has at least this many characters (a word or two is not a reason).
MIN_REASON_CHARS = 15
#: Thresholds closer than this are the same (decimal6 in records; the pages' sliders round to 3 places).
_SAME = 5e-7

PolicyStatus = Literal["within", "looser", "beyond_limit"]


class ThresholdReasonRequired(AuditError):
    """A search looser than the policy's loosest threshold came without a written reason (refused, recorded)."""

    code = "threshold_reason_required"


class ThresholdBeyondLimit(AuditError):
    """A search looser than the policy's hard limit (refused whatever the reason, recorded)."""

    code = "threshold_beyond_limit"


@dataclass(frozen=True)
class ThresholdPolicy:
    """The policy in force: the loosest threshold without a reason, and the hard limit (module docstring)."""

    loosest: float | None = None
    """A cosine distance, or None: the gallery's default threshold."""
    hard_limit: float | None = None
    """A cosine distance, or None: :data:`DEFAULT_HARD_FACTOR` times the loosest threshold."""
    gallery_name: str | None = None
    """The gallery it is for, or None: every gallery without a policy of its own."""
    seq: int | None = None
    """The ``threshold_policy`` record that set it; None: the built-in policy."""
    set_by: str | None = None
    """Who set it."""
    reason: str | None = None
    """Why (the record's ``details.reason``)."""
    evaluation: str | None = None
    """The run id of the evaluation whose error rates the pages quote (None: none designated)."""

    def bounds(self, default: float) -> tuple[float, float]:
        """Return ``(loosest, hard_limit)`` as cosine distances for a search whose default threshold is ``default``."""
        loosest = default if self.loosest is None else self.loosest
        hard = loosest * DEFAULT_HARD_FACTOR if self.hard_limit is None else self.hard_limit
        return loosest, max(hard, loosest)

    def describe(self) -> str:
        """One line a reader understands: where the policy comes from."""
        loosest = "the gallery's default threshold" if self.loosest is None else f"{self.loosest:.3f}"
        hard = (f"{DEFAULT_HARD_FACTOR:g} x the loosest" if self.hard_limit is None else f"{self.hard_limit:.3f}")
        where = ("the built-in policy" if self.seq is None
                 else f"policy record #{self.seq} by {self.set_by or 'an administrator'}")
        return f"loosest without a reason: {loosest}; refused past {hard} ({where})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (as a policy record's details hold it)."""
        return {"loosest": self.loosest, "hard_limit": self.hard_limit, "gallery_name": self.gallery_name,
                "seq": self.seq, "set_by": self.set_by, "reason": self.reason, "evaluation": self.evaluation}


@dataclass(frozen=True)
class ThresholdCheck:
    """Where one search's threshold stands against the policy (``details.threshold_policy`` of its record)."""

    status: PolicyStatus
    threshold: float
    """The threshold the search runs at (the default when none was asked)."""
    default: float
    """The gallery's default threshold, and where it comes from."""
    default_source: str
    loosest: float
    hard_limit: float
    policy: ThresholdPolicy
    reason: str | None
    """The operator's written reason (looser searches only)."""
    warning: str | None
    """The text every interface shows the operator before a looser search (None when within)."""

    def require(self, reason: str | None) -> ThresholdCheck:
        """Return this check with the operator's reason if the search may run; else raise (the caller records it).

        Raises
        ------
        ThresholdBeyondLimit
            Looser than the hard limit.
        ThresholdReasonRequired
            Looser than the loosest threshold, without a reason of :data:`MIN_REASON_CHARS` characters.
        """
        if self.status == "within":
            return self
        if self.status == "beyond_limit":
            raise ThresholdBeyondLimit(
                f"threshold {self.threshold:.3f} is past this deployment's hard limit {self.hard_limit:.3f} and is "
                f"refused whatever the reason ({self.policy.describe()})")
        written = (reason or "").strip()
        if len(written) < MIN_REASON_CHARS:
            raise ThresholdReasonRequired(
                f"threshold {self.threshold:.3f} is looser than {self.loosest:.3f} and needs a written reason of at "
                f"least {MIN_REASON_CHARS} characters (--threshold-reason on the command line), recorded with the "
                "warning shown")
        return replace(self, reason=written)

    def to_dict(self) -> dict[str, Any]:
        """Return the record's ``details.threshold_policy``."""
        return {"status": self.status, "threshold": self.threshold, "default": self.default,
                "default_source": self.default_source, "loosest": self.loosest, "hard_limit": self.hard_limit,
                "policy_seq": self.policy.seq, "reason": self.reason, "warning": self.warning}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


class _PolicyRecords:
    """The policy records of one log read so far, and the last row read (its seq and entry hash)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0
        self.tail_hash = b""
        self.policies: list[ThresholdPolicy] = []  # in seq order, every scope
        # (lease generation, this process's policy appends) when last read: unchanged, nobody can have added one
        self.stamp: tuple[int, int] | None = None


_READ: weakref.WeakKeyDictionary[AuditLog, _PolicyRecords] = weakref.WeakKeyDictionary()


def _policy_records(log: AuditLog, reuse: bool = False) -> list[ThresholdPolicy]:
    """Return every ``ok`` policy record of ``log``, reading only the rows appended since the last call.

    Each call reads the log from the last row it saw (that row included): a record
    appended by another process or another :class:`AuditLog` on the same file is seen by
    the next search. If that row is gone or changed (the file restored or rewritten),
    everything is read again.

    With ``reuse`` (the audited search), nothing is read while this process has held the
    file all along since the last read and appended no policy record
    (:meth:`~core.storage.connection.Database.lease_generation`, :data:`audit.trail.log.APPENDS`):
    no other process can open the file meanwhile, so none can have added one. A record
    written in this process by other means than an :class:`AuditLog` (raw SQL) is not seen then.
    """
    state = _READ.setdefault(log, _PolicyRecords())
    with state.lock, log.db.connect():  # the lease held from the stamp to the end of the read
        stamp = (log.db.lease_generation(), APPENDS.of(POLICY_ACTION))
        if reuse and state.stamp == stamp:
            return list(state.policies)
        state.stamp = None
        rows = log.store.tail_of_action(state.seq, POLICY_ACTION)
        if state.seq:
            if rows and rows[0][0] == state.seq and rows[0][1] == state.tail_hash:
                rows = rows[1:]
            else:
                state.seq, state.tail_hash, state.policies = 0, b"", []
                rows = log.store.tail_of_action(0, POLICY_ACTION)
        for seq, entry_hash, blob in rows:
            if blob is not None:
                try:
                    r = decode_record(blob)
                except ValueError as err:
                    raise ChainIntegrityError(seq, "bad_record", detail=str(err)) from err
                if r.seq != seq:
                    raise ChainIntegrityError(seq, "bad_record", str(seq), str(r.seq),
                                              detail="stored seq differs from the record's seq")
                if r.action == POLICY_ACTION and r.outcome == "ok":
                    d = r.details
                    state.policies.append(ThresholdPolicy(_number(d.get("loosest")), _number(d.get("hard_limit")),
                                                          d.get("gallery_name"), r.seq, r.operator, d.get("reason"),
                                                          d.get("evaluation")))
            state.seq, state.tail_hash = seq, entry_hash
        state.stamp = None if log.db.in_transaction else stamp  # an uncommitted record could be rolled back
        return list(state.policies)


def current_policy(log: AuditLog, gallery_name: str | None, *, reuse: bool = False) -> ThresholdPolicy:
    """Return the policy in force for ``gallery_name``: its latest policy record, else the latest for every gallery.

    ``reuse``: keep the records read while no process can have added one (:func:`_policy_records`).
    """
    found: dict[str | None, ThresholdPolicy] = {}
    for p in _policy_records(log, reuse):
        if p.gallery_name in (None, gallery_name):
            found[p.gallery_name] = p
    return found.get(gallery_name) or found.get(None) or ThresholdPolicy()


def check_policy_values(loosest: float | None, hard_limit: float | None) -> None:
    """Refuse policy values that are not cosine distances in (0, 2], or a hard limit below the loosest.

    Raises
    ------
    ValueError
        With the reason.
    """
    for name, value in (("loosest", loosest), ("hard_limit", hard_limit)):
        if value is not None and not (math.isfinite(value) and 0.0 < value <= 2.0):
            raise ValueError(f"{name} must be a cosine distance in (0, 2], got {value!r}")
    if loosest is not None and hard_limit is not None and hard_limit < loosest:
        raise ValueError(f"hard_limit {hard_limit:g} is stricter than loosest {loosest:g}")


def _chance(expected: Mapping[str, Any] | None, action: str = "search") -> str:
    if action == "verify":
        if not expected:
            return "no designated evaluation says how often two different people are declared the same at it"
        return (f"about {float(expected['fpir']):.2%} of comparisons of two different people are declared the same "
                f"person at it ({expected['method']})")
    if not expected:
        return "no calibration of this gallery says how often"
    return (f"about {float(expected['fpir']):.1%} of searches of someone not in the gallery return a false "
            f"candidate at it ({expected['method']})")


def check_threshold_policy(
    policy: ThresholdPolicy, requested: float | None, default: float, default_source: str,
    expected_fpir: Mapping[str, Any] | None = None, action: str = "search",
) -> ThresholdCheck:
    """Place a search's threshold against ``policy`` (module docstring), before any reason is asked for.

    ``expected_fpir`` is the expected FPIR at the threshold (:meth:`core.thresholds.ExpectedFpir.to_dict`),
    quoted in the warning; for ``action`` ``"verify"``, the false-match rate (``fpir``) and where it
    comes from (``method``). :meth:`ThresholdCheck.require` then refuses or accepts the search.
    """
    threshold = default if requested is None else requested
    noun, false = ("verification", "matches") if action == "verify" else ("search", "candidates")
    loosest, hard = policy.bounds(default)
    if threshold <= loosest + _SAME:
        return ThresholdCheck("within", threshold, default, default_source, loosest, hard, policy, None, None)
    if threshold > hard + _SAME:
        warning = (f"Threshold {threshold:.3f} is past this deployment's hard limit {hard:.3f}: the {noun} is "
                   f"refused whatever the reason ({policy.describe()}). {_cap(_chance(expected_fpir, action))}.")
        return ThresholdCheck("beyond_limit", threshold, default, default_source, loosest, hard, policy, None,
                              warning)
    warning = (f"Threshold {threshold:.3f} is looser than this deployment allows without a reason (loosest "
               f"{loosest:.3f}; the default is {default:.3f}: {default_source}). Looser thresholds return more "
               f"false {false}: {_chance(expected_fpir, action)}. The {noun} needs a written reason, which is "
               f"recorded with this warning; past {hard:.3f} {noun}s are refused.")
    return ThresholdCheck("looser", threshold, default, default_source, loosest, hard, policy, None, warning)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def policy_fields(loosest: float | None, hard_limit: float | None, gallery_name: str | None,
                  reason: str, evaluation: str | None = None) -> dict[str, Any]:
    """Return the record fields of a ``threshold_policy`` record."""
    return {"outcome": "ok", "details": {"loosest": loosest, "hard_limit": hard_limit,
                                         "gallery_name": gallery_name, "reason": reason, "evaluation": evaluation}}
