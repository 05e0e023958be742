"""Video search (operators): stored footage against a gallery, face track by face track, for a purpose and a case.

The upload is copied to a private temporary file (mode 0600) for the job and deleted when
the job ends, whatever its outcome: the footage is never kept, and the record names it only
by its SHA-256. The page shows the job's record (its tracks on a timeline, each track's
candidates) and, from the in-memory result of this job only, the best crop of each track
that has candidates; "Forget this result" drops them from the session. The audited service
keeps a sealed copy of those crops for the reviewers (:mod:`audit.evidence`), destroyed
when the review ends or after its retention period. A candidate is a lead for two
reviewers (Match log), not an identification. A threshold looser than the deployment's
policy shows the policy's warning and needs a written reason (:mod:`audit.policy`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly.express as px
import streamlit as st

from dashboard.web.app_pages.common import ERRORS, chart, choose_gallery, require, runtime, search_context_inputs
from dashboard.web.views import video_candidates_frame, video_tracks_frame

user = require("search")
rt = runtime()
st.title("Video search")
st.caption("Search stored footage (MP4/MOV, AVI, Matroska/WebM) against a gallery. Faces are tracked across "
           "sampled frames and each track is searched with its best faces. The video is deleted as soon as the "
           "job ends; the audit record keeps its SHA-256, the tracks' times and their candidates.")


@contextlib.contextmanager
def private_copy(upload: Any) -> Iterator[Path]:
    """Yield the upload as a private temporary file (0600), deleted on the way out whatever happens."""
    fd, name = tempfile.mkstemp(prefix="facetrail-video-", suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.seek(0)
            shutil.copyfileobj(upload, out, length=1 << 20)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


info, engine = choose_gallery("video_gallery")
gallery_name = info.name
config = engine.config

c1, c2, c3 = st.columns(3)
threshold = c1.slider(
    "Decision threshold (cosine distance: lower is stricter)", min_value=0.01, max_value=0.30,
    value=float(round(config.threshold, 3)), step=0.005, format="%.3f", key="video_threshold",
    help=f"Default {config.threshold:.3f}: {config.threshold_source.description}",
)
top_k = c2.number_input("Candidates per track at most", 1, 50, 5, key="video_top_k")
fps = c3.number_input("Frames sampled per second", 0.5, 10.0, 2.0, step=0.5, key="video_fps",
                      help="More frames find briefer appearances and cost more time.")
threshold = round(threshold, 3)
named = None if threshold == round(config.threshold, 3) else threshold  # keep the default's provenance
policy = rt.audited(engine, None, user).threshold_check(gallery_name, named)  # the deployment's threshold policy
if policy.status == "beyond_limit":
    st.error(policy.warning, icon=":material/block:")
elif policy.status == "looser":
    st.warning(policy.warning, icon=":material/warning:")

with st.form("video_form"):
    context = search_context_inputs("video")
    upload = st.file_uploader("Video", type=["mp4", "mov", "m4v", "avi", "mkv", "webm"], key="video_upload")
    reason = (st.text_area("Reason for the looser threshold (required; recorded with the warning above)",
                           key="video_threshold_reason") if policy.status == "looser" else None)
    submitted = st.form_submit_button("Search the video", type="primary")

if submitted:
    if upload is None:
        st.error("Choose a video to search.")
    else:
        bar = st.progress(0.0, text="Decoding and searching the video…")

        def progress(done: int, expected: int) -> None:
            """Move the bar to ``done`` of about ``expected`` sampled frames."""
            bar.progress(min(1.0, done / max(expected, 1)), text=f"{done} of about {expected} frames sampled")

        st.session_state.pop("video_last", None)
        with private_copy(upload) as path:
            try:  # a missing purpose, case or reason is refused by the audited service, which records the refusal
                audited = rt.audited(engine, context, user).search_video(
                    gallery_name, path, fps=float(fps), top_k=int(top_k), threshold=named, on_progress=progress,
                    threshold_reason=reason)
            except ERRORS as err:
                st.error(f"Video search refused or failed (recorded): {str(err).replace(str(path), 'the upload')}")
            else:
                st.session_state["video_last"] = audited
        bar.empty()

last = st.session_state.get("video_last")
if last is not None:
    result, record = last.result, last.entry.record
    status = rt.log.match_status(last.seq)
    tracks = video_tracks_frame(record, status)
    candidates = video_candidates_frame(record, status)
    st.subheader(f"Result — audit record #{last.seq}")
    with_candidates = int((tracks["candidates"] > 0).sum())
    st.caption(f"{result.duration_ms / 1000:.1f} s of video, {result.frames_sampled} frames sampled, "
               f"{result.faces_detected} face(s) in {len(tracks)} track(s), {with_candidates} with candidates; "
               f"{result.searches} gallery searches at threshold {result.threshold:.3f}. Every candidate needs two "
               "reviewers before it counts.")
    if tracks.empty:
        st.success("No face was found in the sampled frames.")
    else:
        figure = px.bar(tracks, x="duration_s", base="start_s", y="track", color="chart_label", orientation="h",
                        height=120 + 28 * len(tracks), labels={"duration_s": "seconds", "chart_label": "candidate"},
                        hover_data={"start_s": ":.1f", "end_s": ":.1f", "faces": True, "track": False,
                                    "duration_s": False})
        figure.add_scatter(x=tracks["best_s"], y=tracks["track"], mode="markers", name="best face",
                           marker={"symbol": "diamond", "size": 9, "color": "black"})
        figure.update_yaxes(autorange="reversed", title=None, categoryorder="array",
                            categoryarray=tracks["track"].tolist())  # track 1 on top, whatever its candidate
        figure.update_xaxes(title="time in the video (s)", range=[0, result.duration_ms / 1000])
        chart(figure)
        with st.expander("The timeline's numbers (a table, for screen readers and for copying)"):
            numbers = tracks[["track", "start_s", "end_s", "best_s", "faces"]].assign(
                candidate=tracks["top_subject"].fillna("(no candidate)"))  # the raw subject id, shown as text
            st.dataframe(numbers.rename(columns={"start_s": "starts (s)", "end_s": "ends (s)",
                                                 "best_s": "best face at (s)"}), hide_index=True,
                         key="video_timeline_table")
    if candidates.empty:
        st.success("No track has a candidate within the threshold.")
    else:
        st.markdown("**Candidates by track** (pending until two reviewers confirm)")
        st.dataframe(candidates.drop(columns=["confirmations", "rejections"]), hide_index=True,
                     column_config={"similarity": st.column_config.NumberColumn(format="%.4f"),
                                    "distance": st.column_config.NumberColumn(format="%.4f")})
        kept = record.details.get("retained") or {}
        st.markdown("**Best face of each track with candidates** (shown from this job's result in memory; "
                    f"{int(kept.get('crops') or 0)} sealed for the reviewers until their review ends, at the "
                    "latest the retention date)")
        crops = [t for t in result.tracks if t.crop is not None]
        for row in range(0, len(crops), 6):
            for column, track in zip(st.columns(6), crops[row : row + 6], strict=False):
                column.image(track.crop, caption=f"Track {track.track_id} at {track.best_ms / 1000:.1f} s")
    if st.button("Forget this result", key="video_forget", help="Drop the crops and the result from this session"):
        st.session_state.pop("video_last", None)
        st.rerun()
