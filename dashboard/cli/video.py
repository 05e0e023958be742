"""Video command: ``search-video``, stored footage searched against a gallery, face track by face track.

``facetrail search-video VIDEO --gallery G [--fps F] [--top-k K] [--threshold T]
[--max-duration S] [--json]`` acts as the signed-in operator (``facetrail login``, or
``$FACETRAIL_TOKEN``) and appends one ``search_video`` record to the audit trail, whose
sequence number is the output's ``audit_seq``. With ``--json`` stdout holds one JSON
object with the keys ``video``, ``video_sha256``, ``duration_ms``, ``frames_sampled``,
``faces_detected``, ``tracks`` (each ``track_id``, ``start_ms``, ``end_ms``, ``faces``,
``best_ms``, ``candidates``) and ``audit_seq``; the progress bar is always on stderr.

Exit codes as for ``search``: 0 done (with or without candidates), 2 bad input (not a
video, truncated or damaged, no frames, too long, frames too large, not a regular file,
an unknown gallery, a refusal) with the error recorded, 1 any other failure.
A threshold looser than the deployment's policy needs ``--threshold-reason`` (as for ``search``).
"""

from __future__ import annotations

import argparse
from typing import Any

from audit import AuditError
from core import DEFAULT_MAX_DURATION_S, RecognitionError, StorageError, VideoSearchResult
from dashboard.cli.common import EXIT_OK, context, context_parent, emit, fail, runtime
from dashboard.cli.engine import warn_threshold

__all__ = ["register"]

_ERRORS = (RecognitionError, AuditError, StorageError)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``search-video`` to the ``facetrail`` parser."""
    p = subparsers.add_parser(
        "search-video", parents=[*parents, context_parent()],
        help="search a stored video (MP4/MOV, AVI, Matroska/WebM) against a gallery, face track by face track",
    )
    p.add_argument("video", metavar="VIDEO", help="the video file (a regular file; never kept)")
    p.add_argument("--gallery", required=True)
    p.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video (default 2)")
    p.add_argument("--top-k", type=int, default=10, help="candidates kept per track (default 10)")
    p.add_argument("--threshold", type=float, help="cosine distance threshold (default: the config's)")
    p.add_argument("--threshold-reason", metavar="TEXT",
                   help="why a threshold looser than the deployment's policy is needed (recorded)")
    p.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION_S,
                   help=f"refuse videos longer than this many seconds (default {DEFAULT_MAX_DURATION_S:g})")
    p.set_defaults(handler=_search_video)


def _clock(ms: int) -> str:
    seconds, milli = divmod(int(ms), 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{milli // 100}" if hours else f"{minutes:02d}:{seconds:02d}.{milli // 100}"


def _text(result: VideoSearchResult, seq: int) -> str:
    found = sum(1 for t in result.tracks if t.candidates)
    lines = [f"{result.video}: {_clock(result.duration_ms)}, {result.frames_sampled} frames sampled, "
             f"{result.faces_detected} face(s) in {len(result.tracks)} track(s), {found} with candidates "
             f"(audit record #{seq})"]
    for t in result.tracks:
        shown = ", ".join(f"#{c.rank} {c.subject_id} (similarity {c.similarity:.3f})" for c in t.candidates)
        lines.append(f"  track {t.track_id} {_clock(t.start_ms)}-{_clock(t.end_ms)} ({t.faces} faces): "
                     f"{shown or 'no candidate within the threshold'}")
    return "\n".join(lines)


def _search_video(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        rt.session(context(args)).check("search_video", {"gallery_name": args.gallery})  # who, before any read
        service = rt.audited(rt.engine_for_gallery(args.gallery), context(args))
        warn_threshold(service, args.gallery, args.threshold)
        audited = service.search_video(args.gallery, args.video, fps=args.fps, top_k=args.top_k,
                                       threshold=args.threshold, max_duration=args.max_duration, progress=True,
                                       threshold_reason=args.threshold_reason)
    except _ERRORS as err:
        return fail(args, err)
    result = audited.result
    emit(args, {**result.to_dict(), "audit_seq": audited.seq}, _text(result, audited.seq))
    return EXIT_OK
