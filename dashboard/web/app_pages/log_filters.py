"""The Match log's search: filters, the table of records, its export, and the links that name them.

The address is the state: every filter and the open record are query parameters
(:data:`audit.LINK_PARAMS`, plus ``record=SEQ``), written back at every run, so a
reload, a bookmark or a shared link shows the same records (after signing in, for a
new browser). The search itself is :func:`audit.find_page`: the table shows one page
(:data:`audit.PER_PAGE` records, the newest page first; ``page=N`` in the address), and
only that page's records are decoded and their sealed fields opened, so the page costs
the same in a log of any size. The records are found, and the filters' choices
listed, from the unsealed facts of the records (:class:`audit.LogFacts`, one SQL read),
which the session keeps and reads on from where it was: a record never changes and the
log only grows, so a run reads only the records appended since the last. The export of what the filters
on screen find (every page, opened only when asked for) is :func:`audit.export_view` (recorded, safe cells). Times are shown in the
viewer's time zone (``common.time_column``: the heading names the zone); the export keeps
UTC, and says so in its heading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from audit import (
    LINK_PARAMS,
    AuditContext,
    AuditLog,
    LogFacts,
    RecordNotFound,
    RecordPage,
    RecordQuery,
    export_view,
    find_page,
    find_records,
)
from core import BadInput
from dashboard.web.app_pages.common import (
    ERRORS,
    keep_address,
    local_time,
    match_statuses,
    runtime,
    time_column,
    zone_text,
)
from dashboard.web.views import records_frame

__all__ = ["COLUMN_LABELS", "filtered_record"]

#: The action the Match log shows when a link names none (``action=any``: every action).
DEFAULT_ACTION = "search"
ANY = "(any)"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: records_frame column -> the heading people read (on screen and in the export).
COLUMN_LABELS = {
    "seq": "Record", "time": "Time (UTC)", "action": "Action", "outcome": "Outcome", "operator": "Operator",
    "purpose": "Purpose", "case_ref": "Case reference", "gallery": "Gallery", "candidates": "Candidates",
    "top_subject": "Top candidate", "top_similarity": "Top similarity", "threshold": "Threshold (distance)",
    "threshold_policy": "Threshold policy", "target_seq": "Reviews record", "reviewer": "Reviewer",
    "decision": "Decision", "latency_ms": "Latency (ms)",
}

#: widget key -> the RecordQuery field it sets
_WIDGETS = {
    "matchlog_since": "since", "matchlog_until": "until", "matchlog_operator": "operator",
    "matchlog_reviewer": "reviewer", "matchlog_gallery": "gallery", "matchlog_subject": "subject",
    "matchlog_action": "action", "matchlog_case": "case_ref", "matchlog_outcome": "outcome",
    "matchlog_review": "review", "matchlog_policy": "policy", "matchlog_threshold": "threshold", "matchlog_q": "q",
    "matchlog_probe_group": "probe_group",
}
_CHOICES = {"matchlog_operator", "matchlog_reviewer", "matchlog_gallery", "matchlog_action", "matchlog_case",
            "matchlog_outcome", "matchlog_review", "matchlog_policy"}
_TEXTS = {"matchlog_subject", "matchlog_q", "matchlog_probe_group"}
URL_KEY = "matchlog_url"
#: The Match log's url path (its address is kept across navigation: common.keep_address).
PAGE = "match_log"
LINKED_KEY = "matchlog_linked"
PAGE_KEY = "matchlog_page"
LINKED_PAGE_KEY = "matchlog_linked_page"
FACTS_KEY = "matchlog_facts"
EXPORT_KEY = "matchlog_export"


def _address() -> dict[str, str]:
    return {k: str(st.query_params[k]) for k in st.query_params}


def _load(params: Mapping[str, str]) -> None:
    """Set the filters (and the open record) from the address: a link, a bookmark, a reload."""
    try:
        query = RecordQuery.from_params(params, action=DEFAULT_ACTION)
    except BadInput as err:
        st.error(f"This link's filters cannot be used ({err}); showing the Match log's defaults instead.")
        query = RecordQuery(action=DEFAULT_ACTION)
    for key, name in _WIDGETS.items():
        value = getattr(query, name)
        if key in _CHOICES:
            value = ANY if value is None else value
        elif key in _TEXTS:
            value = value or ""
        elif key == "matchlog_threshold":  # a text box: an empty number input has no value for screen readers
            value = "" if value is None else f"{value:g}"
        st.session_state[key] = value
    st.session_state.pop(LINKED_KEY, None)
    st.session_state.pop("matchlog_open", None)
    st.session_state.pop(PAGE_KEY, None)  # no page named: the newest
    st.session_state.pop(LINKED_PAGE_KEY, None)
    page = params.get("page")
    if page is not None:
        if page.isdigit() and int(page) > 0:
            st.session_state[PAGE_KEY] = st.session_state[LINKED_PAGE_KEY] = int(page)
        else:
            st.error(f"page: {page[:40]!r} is not a page number (a whole number from 1); showing the newest page.")
    record = params.get("record")
    if record is not None:
        if record.isdigit() and int(record) > 0:
            st.session_state["matchlog_open"] = st.session_state[LINKED_KEY] = int(record)
        else:
            st.error(f"record: {record[:40]!r} is not a record number (a whole number from 1).")
    unknown = sorted(set(params) - set(LINK_PARAMS) - {"record", "page"})
    if unknown:
        st.warning(f"This link's parameter(s) {', '.join(unknown)} are not Match log filters and were ignored.")


def _choice(where: Any, label: str, key: str, values: list[str], **kwargs: Any) -> str | None:
    current = st.session_state.get(key)
    options = [ANY, *sorted({*values, *([current] if isinstance(current, str) and current != ANY else [])})]
    chosen = where.selectbox(label, options, key=key, **kwargs)
    return None if chosen == ANY else str(chosen)


def _text(where: Any, label: str, key: str, **kwargs: Any) -> str | None:
    value = where.text_input(label, key=key, **kwargs)
    return value.strip() or None


def _number(text: str | None) -> float | None:
    """Return the threshold typed in (None when empty); stop the page naming what is wrong with it."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 2.0:  # nan fails too
        st.error(f"Threshold at most: {text[:40]!r} is not a distance from 0 to 2 (for example 0.07).")
        st.stop()
    return value


def _filters(choices: Mapping[str, list[str]]) -> RecordQuery:
    """Return the filter widgets (set from the address by :func:`_load`) as one query; stop on a bad one."""
    def values(column: str) -> list[str]:
        return list(choices.get(column, []))

    with st.expander("Filters", expanded=True):
        c = list(st.columns(7))
        since: date | None = c[0].date_input("From (UTC date)", key="matchlog_since", format="YYYY-MM-DD")
        until: date | None = c[1].date_input("To (UTC date, inclusive)", key="matchlog_until", format="YYYY-MM-DD")
        operator = _choice(c[2], "Operator", "matchlog_operator", values("operator"))
        reviewer = _choice(c[3], "Reviewer", "matchlog_reviewer", values("reviewer"),
                           help="Queries this reviewer reviewed, and their own review records")
        gallery = _choice(c[4], "Gallery", "matchlog_gallery", values("gallery"))
        subject = _text(c[5], "Subject id", "matchlog_subject", help="Records with this subject among the candidates")
        probe_group = _text(c[6], "Probe's group", "matchlog_probe_group", placeholder="e.g. sex=F",
                            help="Searches whose operator stated this probe's group (a label of the designated "
                                 "evaluation); the Demographic performance page links each group here")
        c = list(st.columns(7))
        action = _choice(c[0], "Action", "matchlog_action", values("action"))
        case_ref = _choice(c[1], "Case reference", "matchlog_case", values("case_ref"))
        outcome = _choice(c[2], "Outcome", "matchlog_outcome", ["candidates", "none"],
                          help="candidates: the query returned at least one; none: it ran and returned none")
        review = _choice(c[3], "Review status", "matchlog_review", ["pending", "confirmed", "rejected"],
                         help="Queries with at least one candidate in this two-person-rule status")
        policy = _choice(c[4], "Threshold policy", "matchlog_policy", ["within", "looser", "beyond_limit"],
                         help="looser: run at a threshold looser than the deployment's policy, with a written "
                              "reason; beyond_limit: refused")
        threshold = _number(_text(c[5], "Threshold at most", "matchlog_threshold", placeholder="e.g. 0.07",
                                  help="Only records run at this decision threshold (a distance) or stricter"))
        q = _text(c[6], "Text", "matchlog_q", help="Any of: purpose, case, legal basis, operator, reviewer, note, "
                                                   "gallery, action, outcome, candidate subject id")
    try:
        return RecordQuery(operator=operator, gallery=gallery, action=action, case_ref=case_ref,
                           outcome=outcome,  # type: ignore[arg-type]
                           review=review,  # type: ignore[arg-type]
                           policy=policy,  # type: ignore[arg-type]
                           since=since, until=until, reviewer=reviewer, subject=subject,
                           threshold=threshold, q=q, probe_group=probe_group)
    except BadInput as err:
        st.error(f"These filters cannot be used: {err}.")
        st.stop()
        raise  # st.stop() does not return


def _statuses(seqs: list[int]) -> dict[int, frozenset[str]]:
    out: dict[int, frozenset[str]] = {}
    for s in match_statuses(seqs):  # MatchStatus.to_dict(): {"seq": ..., "candidates": [{"status": ...}, ...]}
        candidates = s["candidates"]
        out[int(str(s["seq"]))] = frozenset(str(c["status"]) for c in candidates) \
            if isinstance(candidates, list) else frozenset()
    return out


def _shown(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the table's cells as the page shows them (UTC times, similarities to 4 places) under its headings."""
    rows = []
    for row in table.to_dict("records"):
        cells: dict[str, Any] = {}
        for column, label in COLUMN_LABELS.items():
            value = row[column]
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                cells[label] = ""
            elif column == "time":
                cells[label] = pd.Timestamp(value).tz_convert("UTC").strftime(TIME_FORMAT)
            elif column == "top_similarity":
                cells[label] = f"{float(value):.4f}"
            else:
                cells[label] = value
        rows.append(cells)
    return rows


def _export(log: AuditLog, query: RecordQuery, total: int, user: Any) -> None:
    """Export every record the filters on screen find, on every page (auditors), recorded.

    The records are opened only when the auditor asks for the file; the prepared file is
    offered while the same filters find the same number of records.
    """
    with st.expander(f"Export the {total} record(s) these filters find as CSV (every page)"):
        purpose = st.text_input("Purpose of this export (required, recorded)", key="matchlog_export_purpose")
        if st.button("Prepare CSV of these records", key="matchlog_export_button"):
            session = runtime().session(AuditContext(purpose=purpose.strip() or None), user)
            every = records_frame(find_records(log, query, _statuses))
            seqs = [int(s) for s in every["seq"]] if not every.empty else []
            try:
                done = export_view(session, query, list(COLUMN_LABELS.values()), _shown(every), seqs,
                                   source="match_log")
            except ERRORS as err:
                st.error(f"Export refused or failed: {err}")
            else:
                st.session_state[EXPORT_KEY] = (query, total, done.result, done.seq)
        prepared = st.session_state.get(EXPORT_KEY)
        if prepared is not None and prepared[0] == query and prepared[1] == total:
            result, seq = prepared[2], prepared[3]
            st.success(f"{result.records} record(s), SHA-256 `{result.sha256[:16]}…`; the export is audit record "
                       f"#{seq}.")
            st.download_button(f"Download {result.file_name}", result.data, file_name=result.file_name,
                               mime="text/csv", key="matchlog_download")


def _label(table: pd.DataFrame, log: AuditLog) -> Any:
    rows = {int(r["seq"]): r for r in table.to_dict("records")}

    def label(seq: int) -> str:
        r = rows.get(seq)
        if r is None:
            return f"#{seq}"
        return f"#{seq} · {r['action']} · {r['operator'] or '–'} · {local_time(r['time'])}"
    return label


def _facts() -> LogFacts:
    """Return this session's :class:`audit.LogFacts` (the unsealed facts of the records it read; the log only grows).

    Kept in the session's own state, never shared: another session reads its own.
    """
    known = st.session_state.get(FACTS_KEY)
    if not isinstance(known, LogFacts):
        known = st.session_state[FACTS_KEY] = LogFacts()
    return known


def _page(log: AuditLog, query: RecordQuery) -> RecordPage:
    """Return the page of records the page chooser (or the address) names; the newest when it names none."""
    wanted = st.session_state.get(PAGE_KEY)
    try:
        return find_page(log, query, wanted if isinstance(wanted, int) else None, statuses=_statuses,
                         known=_facts())
    except BadInput as err:  # a page past the end: a link's, or the filters now match fewer records
        if st.session_state.get(LINKED_PAGE_KEY) == wanted:
            st.warning(f"The link's {err}; showing the newest page.")
        st.session_state.pop(PAGE_KEY, None)
        st.session_state.pop(LINKED_PAGE_KEY, None)
        return find_page(log, query, None, statuses=_statuses, known=_facts())


def filtered_record(log: AuditLog, user: Any) -> int:
    """Render the filters, the table and its export; return the seq of the record to open (stops if there is none)."""
    if log.size() == 0:
        st.info("Nothing recorded yet. Searches appear here as soon as an operator runs one.")
        st.stop()
    address = _address()
    if address != st.session_state.get(URL_KEY) or any(k not in st.session_state for k in _WIDGETS):
        _load(address)  # the address changed from outside (a link, a bookmark, a reload) or the page is new
    query = _filters(_facts().choices(log))
    shown = _page(log, query)
    table = records_frame(list(shown.entries))
    st.dataframe(table, hide_index=True, column_config={
        **{c: label for c, label in COLUMN_LABELS.items()},
        "time": time_column(),  # the viewer's zone, named in the heading (the export keeps UTC)
        "top_similarity": st.column_config.NumberColumn(COLUMN_LABELS["top_similarity"], format="%.4f"),
    })
    if shown.pages > 1:
        st.session_state[PAGE_KEY] = shown.page
        st.number_input(f"Page (of {shown.pages}; {shown.per_page} records a page, the newest on the last)",
                        min_value=1, max_value=shown.pages, step=1, key=PAGE_KEY)
    first = (shown.page - 1) * shown.per_page
    st.caption(f"{shown.total} record(s)" + (f"; records {first + 1}-{first + len(table)} of them on this page"
                                             if shown.pages > 1 else "")
               + f". Times in your time zone, {zone_text()}. Click a column header to sort this page. The address "
               "bar holds these filters, the page and the open record: bookmark it or share it (it holds no secret; "
               "whoever opens it signs in).")
    if user.can("export") and not table.empty:
        _export(log, query, shown.total, user)
    seqs = [int(s) for s in table["seq"]] if not table.empty else []
    linked = st.session_state.get(LINKED_KEY)
    opened = st.session_state.get("matchlog_open")
    if opened is not None and opened not in seqs and opened != linked:
        del st.session_state["matchlog_open"]  # the filters changed under it: open the first of the new list
    if isinstance(linked, int) and linked not in seqs:
        try:
            log.get(linked)
        except RecordNotFound:
            st.error(f"Record #{linked}, named by the link, does not exist (the log has {log.size()} records).")
            st.session_state.pop(LINKED_KEY, None)
            st.session_state.pop("matchlog_open", None)
        else:
            seqs = [linked, *seqs]
            st.info(f"Record #{linked} is opened because the link names it; it is not among the filtered records.")
    params = query.to_params(action=DEFAULT_ACTION)
    if shown.page != shown.pages:
        params["page"] = str(shown.page)
    if not seqs:
        keep_address(PAGE, params)
        st.session_state[URL_KEY] = params
        st.info("No record matches these filters.")
        st.stop()
    seq = int(st.selectbox("Open record", seqs, key="matchlog_open", format_func=_label(table, log)))
    if seq != linked:
        st.session_state.pop(LINKED_KEY, None)  # the user opened another record: the link's one goes back in line
    params["record"] = str(seq)
    keep_address(PAGE, params)
    st.session_state[URL_KEY] = params
    return seq
