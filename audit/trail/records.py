r"""Audit records and their canonical encoding.

One :class:`AuditRecord` describes one audited action: a query (``verify``,
``search``), a change (``enroll``, ``delete``), an ``export``, an ``evaluate``
run, a human ``review`` of a query, or a ``refused`` attempt. The fields cover
EU AI Act Art. 12(3) and Washington RCW 43.386.070 records of use.

Canonical encoding
------------------
The hash chain covers the *canonical encoding* of a record, defined as:

* the JSON object of **all** fields of :meth:`AuditRecord.to_dict` (absent
  values are ``null``, never omitted), including ``"v": 1`` (format version);
* keys sorted (``sort_keys=True``), separators ``","`` and ``":"`` (no
  whitespace), UTF-8, non-ASCII characters written as themselves
  (``ensure_ascii=False``); control characters, ``"`` and ``\`` are escaped as
  Python's :mod:`json` does (``\n``, ``\"``, ``\u001f``, ...);
* **no floats**. Every fractional number is a decimal *string* with fixed
  precision: distances, similarities and thresholds (and any float found in
  ``model_config`` or ``details``) with 6 decimals (``format(x, ".6f")``,
  e.g. ``"0.412300"``), ``latency_ms`` with 3 decimals (microsecond resolution).
  Integers stay JSON integers; booleans stay ``true``/``false``. NaN and
  infinities are rejected. Tuples encode as arrays.
* timestamps are UTC ISO 8601 strings with microseconds and a ``Z`` suffix,
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

The store keeps these bytes verbatim beside the hash, so verification hashes
the stored bytes and never depends on re-encoding; :func:`decode_record`
checks that the bytes are the canonical encoding of what they decode to.
Image bytes never enter a record: probes are identified by their SHA-256.

Personal fields (subject ids, face ids, gallery image hashes) are sealed before a record
is built (:mod:`audit.trail.sealed`): the canonical bytes hold a string token in their
place (``sealed.<kind>.<key id>.<base64url>``), and a ``probe_sha256`` entry may be such a
token (``sealed.i...``) or, once opened after an erasure, ``"erased"``.

The record's own types
----------------------
:class:`Candidate` and :class:`GalleryRef` are this wire format, not the engine's
types: a change to :mod:`core.results` never changes what was signed. They are
filled in exactly two ways: from the engine's types by :mod:`audit.trail.convert`,
and from their own ``to_dict()`` output when a record is decoded. Anything else
(an object with look-alike attributes, a dict with float distances) is refused
with a message that names the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ACTIONS",
    "DECISIONS",
    "FORMAT_VERSION",
    "Candidate",
    "GalleryRef",
    "AuditRecord",
    "canonical_bytes",
    "canonical_value",
    "decimal6",
    "decode_record",
    "utc_now_iso",
]

#: Version of the canonical record format (the ``"v"`` field).
FORMAT_VERSION = 1

#: Actions a record may describe.
ACTIONS = frozenset(
    {"verify", "search", "search_video", "enroll", "delete", "export", "evaluate", "review", "refused", "checkpoint",
     # galleries created and dropped, and accounts (audit.access): sign-in, sign-out, changes, API tokens
     "create_gallery", "drop_gallery", "sign_in", "sign_out", "add_user", "change_role", "change_password",
     "disable_user", "enable_user", "issue_token", "revoke_token", "report",
     "evidence", "retention",  # review evidence destroyed (audit.evidence), retention run (audit.privacy)
     "rotate_key", "publish",  # the log's own key rotation, a checkpoint published to witnesses
     "blind_batch", "blind_serve", "blind_review", "blind_reveal", "review_rates",  # blind review (audit.blind)
     "threshold_policy",  # the loosest threshold operators may search at (audit.policy)
     "retention_schedule",  # a gallery's retention schedule (audit.retention)
     "read_evidence"}  # a reviewer or auditor shown a review's photos (audit.reviewing)
)

#: Review decisions.
DECISIONS = frozenset({"confirm", "reject"})

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# A gallery image's SHA-256 sealed under its subject's key (audit.trail.sealed), or what it reads once erased.
_SEALED_SHA256 = re.compile(r"^sealed\.i\.[0-9a-f]{32}\.[A-Za-z0-9_-]+$|^erased$")
_DECIMAL = re.compile(r"^-?[0-9]+\.[0-9]+$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def utc_now_iso() -> str:
    """Return the current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decimal6(x: float) -> str:
    """Encode a float as a fixed 6-decimal string (``0.4123 -> "0.412300"``).

    Raises
    ------
    ValueError
        If ``x`` is NaN or infinite.
    """
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"cannot record a non-finite number ({value!r}) in an audit record")
    text = format(value, ".6f")
    return "0.000000" if text == "-0.000000" else text


def _canonical_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    """Return a mapping's canonical form (:func:`canonical_value` of each item); its keys must be strings."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"audit record keys must be strings, got {key!r}")
        out[key] = canonical_value(item)
    return out


def canonical_value(value: Any) -> Any:
    """Convert ``value`` to the canonical JSON value domain (floats become 6-decimal strings).

    Parameters
    ----------
    value
        None, bool, int, float, str, or a list/tuple/dict of those (dict keys must be strings).
        Objects with a ``to_dict()`` method are converted through it.

    Raises
    ------
    ValueError
        For a value that has no canonical encoding (bytes, sets, non-string keys, NaN).
    """
    kind = type(value)  # the exact JSON types first (a record's values are mostly these), then the general rules
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return _canonical_mapping(value)
    if kind is list:
        return [canonical_value(item) for item in value]
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return decimal6(value)
    if isinstance(value, Mapping):
        return _canonical_mapping(value)
    if isinstance(value, (list, tuple)):
        return [canonical_value(item) for item in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return canonical_value(to_dict())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return canonical_value(value.item())
    raise ValueError(f"cannot encode {type(value).__name__} in an audit record: {value!r}")


def _reject_floats(value: Any, path: str) -> None:
    """Raise ValueError naming the first float in ``value`` (dicts and lists walked); the paths made only then."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if isinstance(item, float):
            _name_float(value, path)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _name_float(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise ValueError(f"float at {path} is not allowed in the canonical encoding; use decimal6()")
    if isinstance(value, dict):
        for key, item in value.items():
            _name_float(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _name_float(item, f"{path}[{i}]")


def canonical_bytes(obj: Mapping[str, Any]) -> bytes:
    """Return the canonical encoding of a JSON object (see the module docstring).

    Raises
    ------
    ValueError
        If ``obj`` contains a float, NaN, or a value JSON cannot encode.
    """
    _reject_floats(obj if isinstance(obj, dict) else dict(obj), "$")
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, UnicodeEncodeError) as err:
        raise ValueError(f"cannot encode audit record canonically: {err}") from err


def _exact_keys(what: str, data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    if set(data) != set(keys):
        raise ValueError(f"{what} must have exactly the fields {list(keys)}, got {sorted(data)}; "
                         "engine results enter records through audit.trail.convert")


def _text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def _count(what: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class GalleryRef:
    """The reference database as it was when the action ran.

    Filled from :class:`core.results.GalleryRef` by :func:`audit.trail.convert.record_gallery`,
    or from its own :meth:`to_dict` output when a record is decoded (:meth:`from_dict`).
    """

    name: str
    """Gallery name."""
    fingerprint: str
    """Content fingerprint of the gallery (changes with every enrol/delete)."""
    size: int
    """Number of faces in the gallery."""

    def __post_init__(self) -> None:
        _text("gallery name", self.name)
        _text("gallery fingerprint", self.fingerprint)
        _count("gallery size", self.size, 0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GalleryRef:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``data`` is not exactly the :meth:`to_dict` form.
        """
        _exact_keys("a record's gallery", data, ("name", "fingerprint", "size"))
        return cls(data["name"], data["fingerprint"], data["size"])

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict."""
        return {"name": self.name, "fingerprint": self.fingerprint, "size": self.size}


@dataclass(frozen=True)
class Candidate:
    """One candidate returned by a query. Distances are 6-decimal strings (no floats).

    Filled from :class:`core.results.Candidate` by :func:`audit.trail.convert.record_candidate`,
    or from its own :meth:`to_dict` output when a record is decoded (:meth:`from_dict`).
    """

    subject_id: str
    """Enrolled subject identifier."""
    face_id: str
    """Identifier of the enrolled face that matched."""
    distance: str
    """Distance as a 6-decimal string."""
    similarity: str
    """Similarity as a 6-decimal string."""
    rank: int
    """1-based rank in the result list."""

    def __post_init__(self) -> None:
        _text("candidate subject_id", self.subject_id)
        _text("candidate face_id", self.face_id)
        for name in ("distance", "similarity"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _DECIMAL.match(value):
                raise ValueError(f"candidate {name} must be a decimal string like '0.412300', got {value!r}")
        _count("candidate rank", self.rank, 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If ``data`` is not exactly the :meth:`to_dict` form (floats included: convert
            engine results with :mod:`audit.trail.convert`).
        """
        _exact_keys("a record's candidate", data, ("subject_id", "face_id", "distance", "similarity", "rank"))
        return cls(data["subject_id"], data["face_id"], data["distance"], data["similarity"], data["rank"])

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical dict."""
        return {
            "subject_id": self.subject_id,
            "face_id": self.face_id,
            "distance": self.distance,
            "similarity": self.similarity,
            "rank": self.rank,
        }


def _gallery(value: GalleryRef | Mapping[str, Any] | None) -> GalleryRef | None:
    if value is None or isinstance(value, GalleryRef):
        return value
    if isinstance(value, Mapping):
        return GalleryRef.from_dict(value)
    raise ValueError(f"a record's gallery must be an audit.trail.records.GalleryRef or its dict, got "
                     f"{type(value).__name__}; convert engine results with audit.trail.convert")


def _candidate(value: Candidate | Mapping[str, Any]) -> Candidate:
    if isinstance(value, Candidate):
        return value
    if isinstance(value, Mapping):
        return Candidate.from_dict(value)
    raise ValueError(f"a record's candidate must be an audit.trail.records.Candidate or its dict, got "
                     f"{type(value).__name__}; convert engine results with audit.trail.convert")


def _latency(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not _DECIMAL.match(value):
            raise ValueError(f"latency_ms must be a decimal string like '1.250', got {value!r}")
        return value
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"latency_ms must be a non-negative finite number, got {value!r}")
    return format(number, ".3f")


@dataclass(frozen=True)
class AuditRecord:
    """One audited action. Build with :meth:`from_dict`, encode with :meth:`canonical`."""

    seq: int
    """Sequence number, 1, 2, 3, ... without gaps."""
    started_at: str
    """UTC start time, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    ended_at: str
    """UTC end time, same format."""
    action: str
    """One of :data:`ACTIONS`."""
    outcome: str
    """``"ok"``, ``"no_match"`` or an error code (``"no_face"``, ``"missing_context"``, ...)."""
    operator: str | None = None
    """Who ran the action."""
    purpose: str | None = None
    """Why (free text, required for every action but ``refused``)."""
    case_ref: str | None = None
    """Case or file reference."""
    legal_basis: str | None = None
    """Legal basis, optional."""
    gallery: GalleryRef | None = None
    """Reference database as it was, or None."""
    model_config: dict[str, Any] | None = None
    """Full model configuration (model, detector, alignment, metric, threshold, versions)."""
    probe_sha256: tuple[str, ...] | None = None
    """SHA-256 hex digests of the probe image(s); never the image."""
    faces_found: int | None = None
    """Faces found in the probe(s)."""
    candidates: tuple[Candidate, ...] = ()
    """Candidates returned, in rank order."""
    latency_ms: str | None = None
    """Latency of the action as a 3-decimal string."""
    details: dict[str, Any] = field(default_factory=dict)
    """Action-specific facts (canonical values only)."""
    target_seq: int | None = None
    """For reviews and refusals of reviews: the query reviewed."""
    target_face_id: str | None = None
    """For reviews: the candidate (face id) reviewed, None for a verify pair."""
    reviewer: str | None = None
    """For reviews: who reviewed."""
    decision: str | None = None
    """For reviews: ``"confirm"`` or ``"reject"``."""
    note: str | None = None
    """For reviews: free-text note."""

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"seq must be a positive integer, got {self.seq!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}; expected one of {sorted(ACTIONS)}")
        if not isinstance(self.outcome, str) or not self.outcome:
            raise ValueError("outcome must be a non-empty string ('ok', 'no_match' or an error code)")
        for name in ("started_at", "ended_at"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _TIMESTAMP.match(value):
                raise ValueError(f"{name} must look like 2026-01-31T12:00:00.000000Z, got {value!r}")
        if self.probe_sha256 is not None:
            for digest in self.probe_sha256:
                if not isinstance(digest, str) or not (_SHA256_HEX.match(digest) or _SEALED_SHA256.match(digest)):
                    raise ValueError(f"probe_sha256 must hold lowercase SHA-256 hex digests (or sealed ones), "
                                     f"got {digest!r}")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"review decision must be 'confirm' or 'reject', got {self.decision!r}")
        if self.action == "review" and (self.target_seq is None or not self.reviewer or not self.decision):
            raise ValueError("a review record needs target_seq, reviewer and decision")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Build and validate a record from a mapping (floats are converted to decimal strings).

        Raises
        ------
        ValueError
            If a field is missing, unknown, or has the wrong shape.
        """
        unknown = data.keys() - cls.__dataclass_fields__.keys() - {"v"}
        if unknown:
            raise ValueError(f"unknown audit record field(s): {sorted(unknown)}")
        if "v" in data and data["v"] != FORMAT_VERSION:
            raise ValueError(f"unsupported audit record format version {data['v']!r}")
        probe = data.get("probe_sha256")
        model_config = data.get("model_config")
        faces = data.get("faces_found")
        target = data.get("target_seq")
        return cls(
            seq=data["seq"],
            started_at=data["started_at"],
            ended_at=data["ended_at"],
            action=data["action"],
            outcome=data["outcome"],
            operator=data.get("operator"),
            purpose=data.get("purpose"),
            case_ref=data.get("case_ref"),
            legal_basis=data.get("legal_basis"),
            gallery=_gallery(data.get("gallery")),
            model_config=None if model_config is None else canonical_value(model_config),
            probe_sha256=None if probe is None else tuple(str(p) for p in probe),
            faces_found=None if faces is None else int(faces),
            candidates=tuple(_candidate(c) for c in data.get("candidates") or ()),
            latency_ms=_latency(data.get("latency_ms")),
            details=canonical_value(dict(data.get("details") or {})),
            target_seq=None if target is None else int(target),
            target_face_id=data.get("target_face_id"),
            reviewer=data.get("reviewer"),
            decision=data.get("decision"),
            note=data.get("note"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the record as the JSON object that is canonically encoded (all keys present)."""
        return {
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "action": self.action,
            "outcome": self.outcome,
            "operator": self.operator,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "legal_basis": self.legal_basis,
            "gallery": None if self.gallery is None else self.gallery.to_dict(),
            "model_config": self.model_config,
            "probe_sha256": None if self.probe_sha256 is None else list(self.probe_sha256),
            "faces_found": self.faces_found,
            "candidates": [c.to_dict() for c in self.candidates],
            "latency_ms": self.latency_ms,
            "details": self.details,
            "target_seq": self.target_seq,
            "target_face_id": self.target_face_id,
            "reviewer": self.reviewer,
            "decision": self.decision,
            "note": self.note,
        }

    def canonical(self) -> bytes:
        """Return the canonical encoding (the bytes the chain hashes)."""
        return canonical_bytes(self.to_dict())


def decode_record(data: bytes) -> AuditRecord:
    """Decode canonical bytes into a record, checking that they are canonical.

    Raises
    ------
    ValueError
        If the bytes are not JSON, not a valid record, or not in canonical form.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"audit record is not UTF-8 JSON: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError("audit record is not a JSON object")
    record = AuditRecord.from_dict(obj)
    if record.canonical() != data:
        raise ValueError(f"audit record {record.seq} is not in canonical form")
    return record
