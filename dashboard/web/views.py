"""Tidy tables of audit records for display (no streamlit, no decisions).

These functions only reshape what ``audit`` returns into pandas frames the pages
show: they add nothing to a record and decide nothing about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from audit import AuditEntry, MatchStatus

__all__ = ["records_frame", "status_frame", "QUERY_ACTIONS"]

QUERY_ACTIONS = ("search", "verify")

_COLUMNS = (
    "seq", "time", "action", "outcome", "operator", "purpose", "case_ref", "gallery", "candidates",
    "top_subject", "top_similarity", "threshold", "target_seq", "reviewer", "decision", "latency_ms",
)


def records_frame(entries: Sequence[AuditEntry]) -> pd.DataFrame:
    """One row per record: when, who, why, what came back."""
    rows: list[dict[str, Any]] = []
    for e in entries:
        r = e.record
        top = r.candidates[0] if r.candidates else None
        threshold = (r.details or {}).get("threshold")
        rows.append({
            "seq": r.seq,
            "time": pd.Timestamp(r.started_at),
            "action": r.action,
            "outcome": r.outcome,
            "operator": r.operator,
            "purpose": r.purpose,
            "case_ref": r.case_ref,
            "gallery": r.gallery.name if r.gallery else None,
            "candidates": len(r.candidates),
            "top_subject": top.subject_id if top else None,
            "top_similarity": float(top.similarity) if top else None,
            "threshold": float(threshold) if isinstance(threshold, str) else None,
            "target_seq": r.target_seq,
            "reviewer": r.reviewer,
            "decision": r.decision,
            "latency_ms": float(r.latency_ms) if r.latency_ms else None,
        })
    return pd.DataFrame(rows, columns=list(_COLUMNS))


def status_frame(statuses: Sequence[MatchStatus]) -> pd.DataFrame:
    """One row per reviewable candidate with its two-person-rule status."""
    rows = [
        {
            "seq": s.seq,
            "operator": s.operator,
            "rank": c.rank,
            "subject_id": c.subject_id,
            "face_id": c.face_id,
            "status": c.status,
            "confirmations": ", ".join(c.confirmations),
            "rejections": ", ".join(c.rejections),
        }
        for s in statuses
        for c in s.candidates
    ]
    return pd.DataFrame(
        rows, columns=["seq", "operator", "rank", "subject_id", "face_id", "status", "confirmations", "rejections"]
    )
