"""The probe's group, as the operator states it at search time (never inferred from the face).

A reviewer weighs a candidate against how often people like the probe and like the candidate
are falsely matched. The candidate's group comes from the gallery's labels; nothing records the
probe's, and facetrail does not guess demographics from a face. So the operator may state it,
optionally, choosing one of the group labels the designated evaluation measured
(:func:`group_labels`, e.g. ``sex=F``); the search records it in ``details.probe_group`` and the
review screen quotes the false-match rate at the score for that group too ("not stated" when
absent). A label the evaluation did not measure, or a label with no evaluation designated, is
refused (:class:`ProbeGroupUnknown`, recorded by the search) naming the labels that are valid.
"""

from __future__ import annotations

from typing import Any

from audit.errors import AuditError
from audit.evaluation.report import EvaluationReport

__all__ = ["ProbeGroupUnknown", "check_probe_group", "group_key", "group_labels", "stated"]


class ProbeGroupUnknown(AuditError):
    """The probe's group stated is not one of the designated evaluation's group labels (the refusal is recorded)."""

    code = "probe_group_unknown"


def group_labels(report: EvaluationReport) -> tuple[str, ...]:
    """Return the single-label groups the evaluation measured, as ``grouping=value`` (``sex=F``), sorted."""
    labels = set()
    for row in report.histogram_rows:
        group = dict(row["group"])
        if len(group) == 1:
            ((name, value),) = group.items()
            labels.add(f"{name}={value}")
    return tuple(sorted(labels))


def group_key(label: str) -> dict[str, str]:
    """Return the group ``{grouping: value}`` a label ``grouping=value`` names (a checked label: see below)."""
    name, _, value = label.partition("=")
    return {name: value}


def check_probe_group(label: str | None, designated: tuple[str, EvaluationReport] | None) -> str | None:
    """Return the probe's group label to record (None: not stated), or raise naming the valid labels.

    Parameters
    ----------
    label
        What the operator stated (surrounding spaces ignored; empty means not stated).
    designated
        ``(run id, report)`` of the evaluation the deployment designates, None if it designates none.

    Raises
    ------
    ProbeGroupUnknown
        No evaluation is designated (so there are no labels to state it from), or the label is
        not one it measured.
    """
    if label is None or not label.strip():
        return None
    label = label.strip()
    if designated is None:
        raise ProbeGroupUnknown(f"probe group {label!r}: this deployment designates no evaluation, so there are no "
                                "group labels to state the probe's group from; leave it not stated")
    run_id, report = designated
    valid = group_labels(report)
    if label not in valid:
        raise ProbeGroupUnknown(f"probe group {label!r} is not a group of the designated evaluation {run_id}; valid: "
                                + (", ".join(valid) if valid else "none (the evaluation measured no groups)"))
    return label


def stated(details: dict[str, Any] | None) -> str | None:
    """Return the probe's group a query's record states (``details.probe_group``), None if not stated."""
    value = (details or {}).get("probe_group")
    return value if isinstance(value, str) and value else None
