"""Tidy tables of audit records for display (no streamlit, no decisions).

These functions only reshape what ``audit`` returns into pandas frames the pages
show: they add nothing to a record and decide nothing about it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from audit import AuditEntry, AuditRecord, MatchStatus

__all__ = ["plain", "records_frame", "status_frame", "video_candidates_frame", "video_tracks_frame", "QUERY_ACTIONS"]

QUERY_ACTIONS = ("search", "verify", "search_video")

_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text: object) -> str:
    """Return ``text`` with every markdown character escaped: data shown as data, never as markup."""
    return _MARKUP.sub(r"\\\1", str(text))

_COLUMNS = (
    "seq", "time", "action", "outcome", "operator", "purpose", "case_ref", "gallery", "candidates",
    "top_subject", "top_similarity", "threshold", "threshold_policy", "target_seq", "reviewer", "decision",
    "latency_ms",
)


#: What a verification shows where a search shows its gallery and top candidate (never ``None``).
_PAIR_GALLERY = "(1:1, no gallery)"
_PAIR = "(the pair compared)"


def records_frame(entries: Sequence[AuditEntry]) -> pd.DataFrame:
    """One row per record: when, who, why, what came back, and where its threshold stood against the policy.

    A verification (1:1) has no gallery and no candidate: its row says so, and its
    ``top_similarity`` is the pair's score.
    """
    rows: list[dict[str, Any]] = []
    for e in entries:
        r = e.record
        top = max(r.candidates, key=lambda c: float(c.similarity)) if r.candidates else None  # a video's: any track
        threshold = (r.details or {}).get("threshold")
        policy = (r.details or {}).get("threshold_policy")  # audit.policy: within, looser, beyond_limit
        pair = r.action == "verify"  # a 1:1 comparison: no gallery, no subject, its score in details
        score = (r.details or {}).get("similarity") if pair else (top.similarity if top else None)
        rows.append({
            "seq": r.seq,
            "time": pd.Timestamp(r.started_at),
            "action": r.action,
            "outcome": r.outcome,
            "operator": r.operator,
            "purpose": r.purpose,
            "case_ref": r.case_ref,
            "gallery": r.gallery.name if r.gallery else (_PAIR_GALLERY if pair else None),
            "candidates": len(r.candidates),
            "top_subject": top.subject_id if top else (_PAIR if pair and r.outcome == "ok" else None),
            "top_similarity": float(score) if isinstance(score, str | float | int) else None,
            "threshold": float(threshold) if isinstance(threshold, str) else None,
            "threshold_policy": policy.get("status") if isinstance(policy, dict) else None,
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
            "subject_id": c.subject_id if c.subject_id is not None else _PAIR,
            "face_id": c.face_id if c.face_id is not None else _PAIR,
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


def video_tracks_frame(record: AuditRecord, status: MatchStatus) -> pd.DataFrame:
    """One row per track of a ``search_video`` record: its time range in seconds and its first candidate.

    ``chart_label`` is that candidate's subject id, HTML-escaped for chart legends (plotly reads
    tags in labels), or ``(no candidate)``.
    """
    first: dict[int, str | None] = {}
    for c in status.candidates:  # each track's candidates in rank order
        if c.track_id is not None:
            first.setdefault(c.track_id, c.subject_id)
    rows = []
    for t in record.details.get("tracks") or []:
        top = first.get(t["track_id"])
        rows.append({
            "track": f"track {t['track_id']}",
            "track_id": t["track_id"],
            "start_s": t["start_ms"] / 1000.0,
            "end_s": t["end_ms"] / 1000.0,
            "duration_s": (t["end_ms"] - t["start_ms"]) / 1000.0,
            "best_s": t["best_ms"] / 1000.0,
            "faces": t["faces"],
            "searches": t["searches"],
            "candidates": len(t["candidates"]),
            "top_subject": top,
            "chart_label": "(no candidate)" if top is None else html.escape(top),
        })
    columns = ["track", "track_id", "start_s", "end_s", "duration_s", "best_s", "faces", "searches", "candidates",
               "top_subject", "chart_label"]
    return pd.DataFrame(rows, columns=columns)


def video_candidates_frame(record: AuditRecord, status: MatchStatus) -> pd.DataFrame:
    """One row per track candidate of a ``search_video`` record, with its two-person-rule status.

    ``candidate_id`` is what a review names the candidate (``"<track_id>:<face_id>"``).
    """
    rows = [
        {
            "track_id": s.track_id,
            "rank": s.rank,
            "subject_id": s.subject_id,
            "similarity": float(c.similarity),
            "distance": float(c.distance),
            "status": s.status,
            "confirmations": ", ".join(s.confirmations),
            "rejections": ", ".join(s.rejections),
            "candidate_id": s.candidate_id,
        }
        for s, c in zip(status.candidates, record.candidates, strict=True)
    ]
    columns = ["track_id", "rank", "subject_id", "similarity", "distance", "status", "confirmations", "rejections",
               "candidate_id"]
    return pd.DataFrame(rows, columns=columns)
