"""The counting of a report: DuckDB SQL over the log's stored canonical JSON (the reports package's only SQL).

The log's records are read once: :func:`count_log` parses the stored bytes of records
``1..tree_size`` with DuckDB's ``json_transform`` into a temporary table of the fields a
report needs, then aggregates it with SQL (never a Python loop over decoded records), so a
report over a million records costs a few seconds. It reads the ``audit_log`` table
only; it writes nothing but its temporary tables, dropped at the end.

What is counted, and how (the same rules as the rest of the trail):

* **usage**: ``search``, ``verify`` and ``search_video`` records whose ``started_at`` lies in
  the period, by UTC month, purpose, gallery and operator;
* **review**: every candidate of a search with outcome ``ok`` (and the pair of a ``verify``
  with outcome ``ok``) in the period (a video candidate named ``<track_id>:<face_id>``, as its
  reviews name it), with its status under the two-person rule as of
  record ``tree_size`` (:mod:`audit.trail.review`: a review counts when a person signed in
  with their own password, is not the query's operator, and confirms or rejects once
  however often they do; two distinct confirmations confirm, any rejection is final).
  ``vetoed`` is a rejection of a candidate another reviewer confirmed (before or after); the time to review is
  from the query's end to the review that decided it;
* **anomalies**: refusals by attempted action and code; queries without a case reference
  and refusals for a missing one; self-review attempts (a refused review of one's own
  query); lockouts begun and sign-ins refused while locked; searches looser than the threshold
  policy (:mod:`audit.policy`: run with a written reason) and searches it refused; exports that carried
  candidates not confirmed at the time; subjects returned by several searches and probes
  searched several times; queries per UTC quarter hour (the caller converts to local time).

Subject ids, face ids and gallery image hashes are stored sealed (:mod:`audit.trail.sealed`):
one value is one token, so the SQL groups and joins them as stored, and the subjects listed
by name are opened at the end (``"erased"`` for an erased subject).

Names are compared as :func:`audit.accounts.normalize_name` makes them: the distinct names
of the log are normalised once in Python and joined as a small table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from audit.accounts import normalize_name
from audit.trail.sealed import FieldKeys
from core.keystore import KeyStore
from core.storage.connection import Database

__all__ = ["LogCounts", "MATCH_LIST", "QUERY_ACTIONS", "count_log"]

#: Queries with candidates listed one by one (the rest are counted; the full list is an excerpt).
MATCH_LIST = 200

#: Actions counted as uses of the system.
QUERY_ACTIONS = ("search", "verify", "search_video")

#: Sign-in methods of a person with their own password (review.py's rule).
_PERSON_METHODS = ("password_session", "dashboard_session")

# The fields a report reads, as DuckDB's json_transform structure (absent keys become NULL).
_STRUCTURE = (
    '{"started_at":"VARCHAR","ended_at":"VARCHAR","action":"VARCHAR","outcome":"VARCHAR","operator":"VARCHAR",'
    '"purpose":"VARCHAR","case_ref":"VARCHAR","gallery":{"name":"VARCHAR","size":"BIGINT","fingerprint":"VARCHAR"},'
    '"model_config":{"embedding_key":"VARCHAR","model":"VARCHAR","detector":"VARCHAR","alignment":"VARCHAR",'
    '"threshold":"VARCHAR","threshold_source":{"kind":"VARCHAR"}},'
    '"probe_sha256":["VARCHAR"],"candidates":[{"subject_id":"VARCHAR","face_id":"VARCHAR","rank":"BIGINT"}],'
    '"details":{"threshold":"VARCHAR","threshold_policy":{"status":"VARCHAR"},"attempted":"VARCHAR","reason":"VARCHAR","account":"VARCHAR",'
    '"locked_until":"VARCHAR","auth":{"method":"VARCHAR"},"expected_fpir":{"fpir":"VARCHAR","method":"VARCHAR"},'
    '"format":"VARCHAR","tracks":[{"track_id":"BIGINT","candidates":["VARCHAR"]}],"filters":{"operator":"VARCHAR","case_ref":"VARCHAR","gallery":"VARCHAR","action":"VARCHAR",'
    '"since":"VARCHAR","until":"VARCHAR"}},'
    '"target_seq":"BIGINT","target_face_id":"VARCHAR","reviewer":"VARCHAR","decision":"VARCHAR"}'
)

_TS = "strptime({}, '%Y-%m-%dT%H:%M:%S.%fZ')"
_QUERIES = "('search', 'verify', 'search_video')"


@dataclass(frozen=True, eq=False)
class LogCounts:
    """What :func:`count_log` counted (tidy frames; the sections turn them into tables)."""

    tree_size: int
    """Records ``1..tree_size`` were read."""
    records_in_period: int
    """Records of any action that started in the period."""
    usage: pd.DataFrame
    """``month, action, outcome, operator, purpose, gallery, uses``: queries in the period (the finest grain)."""
    hours: pd.DataFrame
    """``hour`` (UTC ``YYYY-MM-DDTHH:MM``, MM 00/15/30/45), ``action``, ``uses``: queries per UTC quarter hour
    (every time zone's offset is a whole number of quarter hours, so local working hours are exact)."""
    items: pd.DataFrame
    """One row per reviewable candidate of a query in the period, with its status and decision time."""
    refusals: pd.DataFrame
    """``attempted, outcome, refusals``: refused attempts in the period."""
    anomalies: dict[str, int]
    """Counts of the single-number anomalies (see :func:`count_log`)."""
    thresholds: pd.DataFrame
    """Queries in the period by configuration, gallery, threshold and threshold source (``uses``)."""
    configs: pd.DataFrame
    """Configurations used in the period (``embedding_key, model, detector, alignment, uses, example_seq``)."""
    gallery_sizes: pd.DataFrame
    """Searches by gallery, size, threshold and recorded expected FPIR (``searches``)."""
    repeated_subjects: pd.DataFrame
    """``subject_id, searches``: subjects returned as candidates by at least the given number of searches."""
    repeated_probes: pd.DataFrame
    """``probe_sha256, searches``: probe images searched at least that many times."""
    exports: pd.DataFrame
    """``seq, format, unconfirmed``: exports in the period and the unconfirmed candidates each carried."""
    matches: pd.DataFrame
    """The first :data:`MATCH_LIST` queries with candidates (EU AI Act Art. 12(3)): when, database, input, reviewers."""
    match_count: int
    """Queries in the period with candidates (the list above holds at most :data:`MATCH_LIST`)."""


def _names(con: Any) -> None:
    raw = [r[0] for r in con.execute(
        "SELECT DISTINCT n FROM (SELECT operator AS n FROM report_rows UNION ALL SELECT reviewer FROM report_rows) "
        "WHERE n IS NOT NULL").fetchall()]
    frame = pd.DataFrame({"raw": raw, "norm": [normalize_name(n) for n in raw]}, columns=["raw", "norm"])
    con.register("report_names_frame", frame)
    con.execute("CREATE TEMP TABLE report_names AS SELECT raw::VARCHAR AS raw, norm::VARCHAR AS norm "
                "FROM report_names_frame")
    con.unregister("report_names_frame")


def _items(con: Any) -> None:
    """Reviewable candidates of queries in the period, their eligible reviews, their status (temp tables)."""
    con.execute(f"""
        CREATE TEMP TABLE report_reviews AS
        SELECT r.seq AS review_seq, r.started_at AS reviewed_at, r.target_seq, r.target_face_id,
               nr.norm AS reviewer, r.decision
        FROM report_rows r
        JOIN report_names nr ON nr.raw = r.reviewer
        JOIN report_names nop ON nop.raw = r.operator
        JOIN report_rows q ON q.seq = r.target_seq
        LEFT JOIN report_names nq ON nq.raw = q.operator
        WHERE r.action = 'review' AND r.decision IN ('confirm', 'reject') AND r.seq > r.target_seq
          AND r.details.auth.method IN {_PERSON_METHODS} AND nr.norm = nop.norm
          AND (nq.norm IS NULL OR nr.norm <> nq.norm)""")
    con.execute("""
        CREATE TEMP TABLE report_items AS
        WITH raw AS (
            SELECT seq, action, started_at, ended_at, operator, case_ref, gallery.name AS gallery,
                   unnest(candidates) AS c,
                   unnest(CASE WHEN action = 'search_video'
                               THEN flatten(list_transform(details.tracks, lambda t: list_transform(t.candidates,
                                    lambda f: t.track_id::VARCHAR || ':' || f)))
                               ELSE list_transform(candidates, lambda x: x.face_id) END) AS named
            FROM report_rows WHERE in_period AND action IN ('search', 'search_video') AND outcome = 'ok'
        ), items AS (
            SELECT seq, action, started_at, ended_at, operator, case_ref, gallery, named AS face_id,
                   c.subject_id AS subject_id, c.rank AS rank FROM raw
            UNION ALL
            SELECT seq, action, started_at, ended_at, operator, case_ref, gallery.name, NULL, NULL, 1
            FROM report_rows WHERE in_period AND action = 'verify' AND outcome = 'ok'
        ), firsts AS (
            SELECT target_seq, target_face_id, reviewer, decision, min(review_seq) AS first_seq
            FROM report_reviews GROUP BY ALL
        ), decided AS (
            SELECT target_seq, target_face_id,
                   count(*) FILTER (WHERE decision = 'confirm') AS confirmations,
                   count(*) FILTER (WHERE decision = 'reject') AS rejections,
                   list_sort(list(first_seq) FILTER (WHERE decision = 'confirm'))[2] AS confirmed_seq,
                   min(first_seq) FILTER (WHERE decision = 'reject') AS rejected_seq
            FROM firsts GROUP BY ALL
        )
        SELECT i.*, coalesce(d.confirmations, 0) AS confirmations, coalesce(d.rejections, 0) AS rejections,
               d.confirmed_seq, d.rejected_seq,
               CASE WHEN d.rejections > 0 AND d.confirmations > 0 THEN 'vetoed'
                    WHEN d.rejections > 0 THEN 'rejected'
                    WHEN d.confirmations >= 2 THEN 'confirmed' ELSE 'pending' END AS status
        FROM items i LEFT JOIN decided d
          ON d.target_seq = i.seq AND d.target_face_id IS NOT DISTINCT FROM i.face_id""")


def _item_frame(con: Any) -> pd.DataFrame:
    ts = _TS.format
    return con.execute(f"""
        SELECT i.seq, i.action, i.operator, i.gallery, i.face_id, i.subject_id, i.rank, i.status,
               i.confirmations, i.rejections,
               CASE WHEN i.status IN ('rejected', 'vetoed') THEN i.rejected_seq
                    WHEN i.status = 'confirmed' THEN i.confirmed_seq END AS decided_seq,
               epoch({ts('d.started_at')}) - epoch({ts('i.ended_at')}) AS review_seconds
        FROM report_items i
        LEFT JOIN report_rows d ON d.seq = CASE WHEN i.status IN ('rejected', 'vetoed') THEN i.rejected_seq
                                             WHEN i.status = 'confirmed' THEN i.confirmed_seq END
        ORDER BY i.seq, i.rank""").df()


def _anomalies(con: Any) -> dict[str, int]:
    one = {
        "queries_without_case": f"action IN {_QUERIES} AND in_period AND coalesce(trim(case_ref), '') = ''",
        "refused_missing_case": "action = 'refused' AND in_period AND outcome = 'missing_context' "
                                "AND details.reason LIKE '%case reference%'",
        "lockouts_begun": "action = 'refused' AND in_period AND details.attempted = 'sign_in' "
                          "AND details.locked_until IS NOT NULL",
        "refused_while_locked": "action = 'refused' AND in_period AND outcome = 'locked_out'",
        "failed_sign_ins": "action = 'refused' AND in_period AND details.attempted = 'sign_in'",
        "user_thresholds": f"action IN {_QUERIES} AND in_period AND model_config.threshold_source.kind = 'user'",
        "policy_looser": f"action IN {_QUERIES} AND in_period AND details.threshold_policy.status = 'looser'",
        "policy_refused": "action = 'refused' AND in_period AND outcome IN ('threshold_beyond_limit', "
                          "'threshold_reason_required')",
        "reports": "action = 'report' AND in_period",
        "retention_runs": "action = 'retention' AND in_period AND outcome = 'ok'",
        "evidence_records": "action = 'evidence' AND in_period AND outcome = 'ok'",
        "deletions": "action = 'delete' AND in_period AND outcome = 'ok'",
        "gallery_drops": "action = 'drop_gallery' AND in_period AND outcome = 'ok'",
    }
    sql = "SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond}) AS {name}" for name, cond in one.items())
    row = con.execute(sql + " FROM report_rows").fetchone()
    out = {name: int(v) for name, v in zip(one, row, strict=True)}
    out["self_review_attempts"] = int(con.execute("""
        SELECT count(*) FROM report_rows r
        JOIN report_rows q ON q.seq = r.target_seq
        JOIN report_names a ON a.raw = r.operator JOIN report_names b ON b.raw = q.operator
        WHERE r.action = 'refused' AND r.in_period AND r.details.attempted = 'review' AND a.norm = b.norm
    """).fetchone()[0])
    return out


def _exports(con: Any) -> pd.DataFrame:
    return con.execute("""
        SELECT e.seq, e.details.format AS format, count(i.seq) AS unconfirmed
        FROM report_rows e
        LEFT JOIN report_items i
          ON i.seq < e.seq AND (i.confirmed_seq IS NULL OR i.confirmed_seq > e.seq)
         AND (e.details.filters.operator IS NULL OR i.operator = e.details.filters.operator)
         AND (e.details.filters.case_ref IS NULL OR i.case_ref = e.details.filters.case_ref)
         AND (e.details.filters.gallery IS NULL OR i.gallery = e.details.filters.gallery)
         AND (e.details.filters.action IS NULL OR i.action = e.details.filters.action)
         AND (e.details.filters.since IS NULL OR i.started_at >= e.details.filters.since)
         AND (e.details.filters.until IS NULL OR i.started_at < e.details.filters.until)
        WHERE e.action = 'export' AND e.outcome = 'ok' AND e.in_period
        GROUP BY e.seq, e.details.format ORDER BY e.seq""").df()


def _frames(con: Any, repeated: int) -> dict[str, pd.DataFrame]:
    q = f"FROM report_rows WHERE in_period AND action IN {_QUERIES}"
    return {
        "usage": con.execute(
            "SELECT substr(started_at, 1, 7) AS month, action, outcome, operator, purpose, gallery.name AS gallery, "
            f"count(*) AS uses {q} GROUP BY ALL ORDER BY ALL").df(),
        "hours": con.execute("SELECT substr(started_at, 1, 14) || lpad((CAST(substr(started_at, 15, 2) AS INTEGER) "
                             f"// 15 * 15)::VARCHAR, 2, '0') AS hour, action, count(*) AS uses {q} "
                             "GROUP BY ALL ORDER BY ALL").df(),
        "refusals": con.execute(
            "SELECT coalesce(details.attempted, '?') AS attempted, outcome, count(*) AS refusals FROM report_rows "
            "WHERE in_period AND action = 'refused' GROUP BY ALL ORDER BY ALL").df(),
        "thresholds": con.execute(
            "SELECT action, model_config.embedding_key AS embedding_key, gallery.name AS gallery, "
            "gallery.size AS gallery_size, gallery.fingerprint AS fingerprint, model_config.threshold AS threshold, "
            f"model_config.threshold_source.kind AS source, count(*) AS uses, min(seq) AS example_seq {q} "
            "AND model_config.threshold IS NOT NULL GROUP BY ALL ORDER BY ALL").df(),
        "configs": con.execute(
            "SELECT model_config.embedding_key AS embedding_key, model_config.model AS model, "
            "model_config.detector AS detector, model_config.alignment AS alignment, count(*) AS uses, "
            f"min(seq) AS example_seq {q} AND model_config.embedding_key IS NOT NULL GROUP BY ALL ORDER BY ALL").df(),
        "gallery_sizes": con.execute(
            "SELECT gallery.name AS gallery, gallery.size AS gallery_size, model_config.embedding_key AS embedding_key, "
            "model_config.threshold AS threshold, details.expected_fpir.fpir AS expected_fpir, "
            "details.expected_fpir.method AS fpir_method, count(*) AS searches "
            "FROM report_rows WHERE in_period AND action = 'search' AND outcome IN ('ok', 'no_match') "
            "GROUP BY ALL ORDER BY ALL").df(),
        "repeated_subjects": con.execute(
            "SELECT subject_id, count(DISTINCT seq) AS searches FROM report_items WHERE subject_id IS NOT NULL "
            "GROUP BY ALL HAVING count(DISTINCT seq) >= ? ORDER BY searches DESC, subject_id", [repeated]).df(),
        "repeated_probes": con.execute(
            "SELECT probe_sha256[1] AS probe_sha256, count(*) AS searches FROM report_rows WHERE in_period "
            "AND action = 'search' AND len(probe_sha256) = 1 GROUP BY ALL HAVING count(*) >= ? "
            "ORDER BY searches DESC, probe_sha256", [repeated]).df(),
    }


def _matches(con: Any) -> tuple[pd.DataFrame, int]:
    total = int(con.execute("SELECT count(DISTINCT seq) FROM report_items").fetchone()[0])
    frame = con.execute("""
        SELECT q.seq, q.action, q.started_at, q.ended_at, q.gallery.name AS gallery,
               q.gallery.fingerprint AS fingerprint, array_to_string(q.probe_sha256, ' ') AS probe_sha256,
               q.case_ref, q.operator,
               (SELECT string_agg(DISTINCT r.reviewer || ' ' || r.decision || 's', ', ' ORDER BY r.reviewer || ' ' || r.decision || 's')
                FROM report_reviews r WHERE r.target_seq = q.seq) AS reviewers
        FROM report_rows q WHERE q.seq IN (SELECT DISTINCT seq FROM report_items)
        ORDER BY q.seq LIMIT ?""", [MATCH_LIST]).df()
    return frame, total


def count_log(db: Database, tree_size: int, since: str, until: str, *, repeated: int = 3) -> LogCounts:
    """Count what a report needs over records ``1..tree_size`` (see the module docstring).

    Parameters
    ----------
    db
        The database holding the log.
    tree_size
        The last record read (the state the report is computed from).
    since, until
        The period: records with ``since <= started_at < until`` (UTC ISO strings).
    repeated
        Flag subjects returned by, and probes searched in, at least this many searches.
    """
    temp = ("report_rows", "report_names", "report_reviews", "report_items")
    with db.connect() as con:
        try:
            con.execute(
                "CREATE TEMP TABLE report_rows AS SELECT seq, j.*, "
                "(j.started_at >= ? AND j.started_at < ?) AS in_period "
                f"FROM (SELECT seq, json_transform(decode(record), '{_STRUCTURE}') AS j FROM audit_log "
                "WHERE seq <= ?)", [since, until, tree_size])
            _names(con)
            _items(con)
            in_period = int(con.execute("SELECT count(*) FROM report_rows WHERE in_period").fetchone()[0])  # type: ignore[index]
            frames = _frames(con, repeated)
            # subject ids are sealed in the stored records (audit.trail.sealed): counted as stored, shown opened
            keys = FieldKeys(KeyStore.for_database(db, db.path))
            subjects = frames["repeated_subjects"]
            subjects["subject_id"] = [keys.open_value(s) for s in subjects["subject_id"]]
            matches, match_count = _matches(con)
            return LogCounts(tree_size=tree_size, records_in_period=in_period, items=_item_frame(con),
                             anomalies=_anomalies(con), exports=_exports(con), matches=matches,
                             match_count=match_count, **frames)
        finally:
            for name in reversed(temp):
                con.execute(f"DROP TABLE IF EXISTS temp.{name}")
