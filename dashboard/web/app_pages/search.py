"""Search (operators): one probe photo against a gallery, with a purpose and a case reference.

Before the search the page states the chance that a gallery of this size returns
a false candidate at the chosen threshold; after it, every candidate carries the
false-match rate measured at its score, overall and per group. Candidates are
shown as subject ids and scores only: no gallery photos.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit import false_match_words, group_labels, similarity_text
from dashboard.web.app_pages.common import (
    ERRORS,
    choose_gallery,
    designated_run,
    evaluations,
    require,
    runtime,
    search_context_inputs,
)

user = require("search")
rt = runtime()
st.title("Search a gallery")

info, engine = choose_gallery("search_gallery")
gallery_name = info.name
config = engine.config

threshold = st.slider(
    "Decision threshold (cosine distance: lower is stricter)", min_value=0.01, max_value=0.30,
    value=float(round(config.threshold, 3)), step=0.005, format="%.3f", key="search_threshold",
    help=f"Default {config.threshold:.3f}: {config.threshold_source.description}",
)
top_k = st.number_input("Candidates to return at most", 1, 50, 5, key="search_top_k")

threshold = round(threshold, 3)
named = None if threshold == round(config.threshold, 3) else threshold  # keep the default's provenance
policy = rt.audited(engine, None, user).threshold_check(gallery_name, named)  # the deployment's threshold policy
if policy.status == "beyond_limit":
    st.error(policy.warning, icon=":material/block:")
elif policy.status == "looser":
    st.warning(policy.warning, icon=":material/warning:")


report = None
found = designated_run(rt.audited(engine, None, user), gallery_name)  # the deployment designates it (audit.policy)
if isinstance(found, str):
    st.error(f"Error rates cannot be shown: {found}")
elif found is not None:
    report = found.report
    st.caption(f"Error rates from the evaluation this deployment designates: {found.label} (run {found.run_id[:12]}).")
    chance = report.chance_of_false_candidate(info.size, threshold)
    dataset = found.dataset
    how = (f"measured: the share of {dataset} probes, none "
           f"of them in a {info.size}-face gallery of this model, whose search returned a candidate"
           if chance.method == "measured"
           else f"estimated as 1 − (1 − FMR)^N with pairwise FMR {chance.fmr:.2e}; assumes independent comparisons")
    st.warning(
        f"**Before you search:** with {info.size} faces in the gallery at threshold {threshold:.3f}, a search "
        f"for someone who is **not** in the gallery returns at least one (false) candidate with probability "
        f"**{chance.value:.1%}** ({how}).",
        icon=":material/warning:",
    )
    ident = report.identification()
    if chance.method == "measured" and not ident.empty:
        by_group = ident[(ident["gallery_size"] == info.size) & ((ident["threshold"] - threshold).abs() < 1e-9)
                         & (ident["grouping"] != "all")]
        with st.expander("The same chance for each group of people searched"):
            st.dataframe(by_group[["group_name", "fpir", "fpir_lo", "fpir_hi", "nonmated_searches",
                                   "false_positive_searches"]], hide_index=True,
                         column_config={c: st.column_config.NumberColumn(format="percent")
                                        for c in ("fpir", "fpir_lo", "fpir_hi")})
            st.caption("fpir: share of searches returning a false candidate, with a 95% Wilson interval.")
elif not evaluations().for_model(config.embedding_key, info.size):
    st.info("No evaluation of this model configuration yet, so error rates cannot be shown. An auditor runs "
            "one with `facetrail evaluate` (the demo evaluates congress_small and lfw_small).")
else:
    st.info("This deployment designates no evaluation, so the chance of a false candidate is not shown. An "
            "admin designates one on the Administration page (recorded with the threshold policy).")

with st.form("search_form"):
    context = search_context_inputs("search")
    upload = st.file_uploader("Probe photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="search_upload")
    probe_group = (st.selectbox(  # stated by the operator, never inferred from the face (audit.probe_group)
        "Probe's group (optional)", group_labels(report), index=None, placeholder="not stated",
        key="search_probe_group",
        help="The group of the person in the probe photo, if you know it (from the case, not from the face), "
             "among the groups the designated evaluation measured. Reviewers are shown the false-match rate "
             "for it; it is recorded with the search.") if report is not None else None)
    reason = (st.text_area("Reason for the looser threshold (required; recorded with the warning above)",
                           key="search_threshold_reason") if policy.status == "looser" else None)
    submitted = st.form_submit_button("Search", type="primary")

if submitted:
    if upload is None:
        st.error("Choose a probe photo to search.")
    else:
        try:  # a missing purpose, case or reason is refused by the audited service, which records the refusal
            audited = rt.audited(engine, context, user).search(gallery_name, upload.getvalue(), top_k=int(top_k),
                                                               threshold=named, threshold_reason=reason,
                                                               probe_group=probe_group)
        except ERRORS as err:
            st.error(f"Search refused or failed: {err}")
        else:
            st.session_state["search_last"] = audited

last = st.session_state.get("search_last")
if last is not None:
    result = last.result
    st.subheader(f"Result — audit record #{last.seq}")
    st.caption(f"{result.faces_detected} face(s) detected in the probe; gallery {result.gallery.name} "
               f"({result.gallery.size} faces, fingerprint `{result.gallery.fingerprint}`), threshold "
               f"{result.threshold:.3f}; probe's group {last.entry.record.details.get('probe_group') or 'not stated'}. "
               "A candidate is a lead, not an identification: it needs two reviewers.")
    if not result.candidates:
        st.success("No candidate within the threshold.")
    else:
        rows = []
        groups = []
        if report is not None:
            seen = set()
            for h in report.histogram_rows:
                key = tuple(sorted(dict(h["group"]).items()))
                if len(key) == 1 and key not in seen:
                    seen.add(key)
                    groups.append(dict(key))
        for c in result.candidates:  # a similarity is a score (never a percent); false-match rates in words
            row = {"rank": c.rank, "subject_id": c.subject_id, "similarity": similarity_text(c.similarity),
                   "distance": round(c.distance, 4)}
            if report is not None:
                row["FMR at this score (overall)"] = false_match_words(report, c.similarity)
                for g in groups:
                    label = ", ".join(str(v) for v in g.values())
                    row[f"FMR ({label})"] = false_match_words(report, c.similarity, g)
            rows.append(row)
        frame = pd.DataFrame(rows)
        st.dataframe(frame, hide_index=True)
        pairs = int(report.run.get("impostor_pairs") or 0) if report is not None else 0
        st.caption("FMR at this score: the share of impostor pairs (different people) in the evaluation that score "
                   f"at least this similar; 'fewer than 1 in {pairs:,}' means none of its {pairs:,} impostor pairs "
                   "did. Per-group values use "
                   "pairs within that group (sex, race labels of the evaluation dataset).")
