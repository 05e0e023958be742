"""Evaluation commands: ``evaluate`` (demographic error rates) and ``calibrate``.

``facetrail evaluate --manifest CSV --subject-col COL --by sex,race,sex*race
[--threshold fmr=1e-3 --threshold 0.07 ...] [--bootstrap 1000] --json``
    Per-group FMR/FNMR over all genuine and impostor pairs, with subject-bootstrap
    intervals. ``--by`` takes comma-separated groupings; ``a*b`` is an intersection.
    With ``--gallery-manifest`` / ``--gallery-lfw`` it also runs 1:N searches of the
    manifest's images (``--probe-glob`` selects some) against that gallery.
``facetrail evaluate --lfw DIR --json``
    LFW protocol 10-fold accuracy on ``pairs.txt`` and per-group rates on its pairs
    (labels from ``DIR/labels.csv`` when present), plus all-pairs rates of its images.
    An image showing several people is embedded at its central face, LFW's definition
    of the subject (crops centred on the labelled face); ``--subject-face`` names another
    rule (a manifest's is the largest face). The run and its record say which rule was
    used and who declared it (``subject_face``, ``subject_face_reason``).
``facetrail evaluate --scores FILE --manifest CSV --subject-col COL --score-direction similarity
--system NAME [--system-version V] [--threshold score=80 --threshold fmr=1e-3] --json``
    A system facetrail does not run, from its own pair scores (CSV ``image_a,image_b,score``
    or bob.measure's 4- and 5-column files): the same rows, intervals, flags and
    calibrations as for facetrail's engine, thresholds in the system's units
    (``score=80``: match iff score >= 80 for similarity scores). ``--candidates FILE``
    (``probe,candidate_subject,rank,score``, with ``--gallery-manifest`` naming the
    gallery) adds rank-1, FNIR and FPIR per probe group. No model is loaded; a bad file
    is refused naming its line, and the refusal recorded.
``facetrail calibrate --manifest CSV --subject-col COL --target-fmr 1e-3 --json``
    A threshold at an exact overall FMR, with FNMR and per-group FMR; stored as the
    model config's default threshold with its provenance (``--no-save`` to skip).
``facetrail calibrate --target-fpir 0.01 --gallery G --manifest CSV --subject-col COL [--probe-glob P]
[--for-gallery-size N] --json``
    A 1:N search threshold: the manifest's people (not enrolled, or searched without
    their own faces) searched against the enrolled gallery G; the threshold at which at
    most that share of searches returns a candidate, per probe group too; stored as the
    default threshold of searches of G (``search`` uses it) with its provenance. With
    ``--for-gallery-size`` the target is for another size, extrapolated and labelled so.

JSON output of ``evaluate`` is a list of rows; verification rows carry ``group``,
``threshold``, ``genuine_pairs``, ``impostor_pairs``, ``fnmr``, ``fmr``, ``fnmr_lo``,
``fnmr_hi``, ``fmr_lo``, ``fmr_hi``, ``threshold_margin``, ``reproducible``
(``kind: "verification"``); other kinds are ``"inequity"`` (``grouping``,
``threshold_name``, ``measure``, ``metric``, ``value``, ``lo``, ``hi``, ``groups``),
``"identification"``, ``"lfw_10fold"`` and ``"lfw_pairs"``. Exit code 2 on bad input
(refused and recorded in the audit trail), 1 when the database is unavailable.

This module parses, builds a request, calls :func:`audit.run_evaluation` /
:func:`audit.run_calibration` (the one runner) and formats; it computes nothing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from audit import (
    AuditError,
    AuditSession,
    CalibrationRequest,
    CalibrationRun,
    DatasetSource,
    EvaluationRequest,
    EvaluationRun,
    EvaluationStores,
    IdentificationRequest,
    SearchCalibrationRequest,
    SearchCalibrationRun,
    SystemScores,
    parse_band,
    parse_groupings,
    parse_thresholds,
    run_calibration,
    run_evaluation,
    run_search_calibration,
)
from core import FACE_POLICIES, ManifestError, RecognitionError, StorageError
from dashboard.cli.common import EXIT_FAILURE, EXIT_OK, config_args, context, context_parent, emit, fail, runtime

__all__ = ["register", "parse_by"]

T = TypeVar("T")

#: The errors these commands report (exit 2; a database problem exits 1).
_ERRORS = (RecognitionError, AuditError)


def parse_by(values: list[str] | None) -> tuple[tuple[str, ...], ...]:
    """Parse ``--by`` values: comma-separated groupings, ``a*b`` for an intersection.

    Raises
    ------
    BadGrouping
        On an empty column name (a :class:`core.BadInput` and a ``ValueError``).
    """
    return parse_groupings(values)


def _config_args(parser: argparse.ArgumentParser) -> None:
    config_args(parser)
    parser.add_argument("--workers", type=int, help="processes for embedding (default: all cores)")


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subject-col", help="the manifest's subject column")
    parser.add_argument("--labels", help="comma-separated label columns to keep (default: all other columns)")
    parser.add_argument("--by", action="append", help="groupings, e.g. 'sex,race,sex*race' (repeatable)")
    parser.add_argument(
        "--band",
        action="append",
        default=[],
        help="numeric column to band, e.g. 'approx_age_at_photo=40,50,60,70' (adds <col>_band)",
    )
    parser.add_argument(
        "--multi-label",
        choices=("combined", "explode"),
        default="combined",
        help="multi-valued labels: own group (combined, default) or one per listed group (explode)",
    )
    parser.add_argument(
        "--subject-face",
        choices=FACE_POLICIES,
        help="which face of an image showing several is the labelled person (default: the dataset's own rule: "
        "central for --lfw, LFW's protocol of crops centred on their subject; largest for --manifest); recorded",
    )


def register(subparsers: Any, parents: list[argparse.ArgumentParser] | None = None) -> None:
    """Add ``evaluate`` and ``calibrate`` to the ``facetrail`` parser."""
    parents = parents or []
    ev = subparsers.add_parser(
        "evaluate", parents=[*parents, context_parent()], help="demographic error rates on a labelled dataset"
    )
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="CSV with image (relative to the CSV), subject and label columns")
    src.add_argument("--lfw", help="LFW folder: images/<Name>/<Name>_NNNN.jpg + pairs.txt [+ labels.csv]")
    _data_args(ev)
    ev.add_argument(
        "--threshold",
        action="append",
        default=[],
        help="'fmr=1e-3' (calibrated on this data) or a cosine distance; repeatable "
        "(default: the model's threshold, fmr=1e-3, fmr=1e-4)",
    )
    ev.add_argument("--bootstrap", type=int, default=1000, help="subject bootstrap resamples (0: no intervals)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--gallery-manifest", help="1:N: gallery manifest CSV (probes: the --manifest images)")
    ev.add_argument("--gallery-subject-col", help="the gallery manifest's subject column")
    ev.add_argument("--gallery-lfw", help="1:N: gallery from an LFW-layout folder (all its images)")
    ev.add_argument("--probe-glob", help="1:N: use only probe images whose path matches, e.g. '*/c118.jpg'")
    ev.add_argument("--no-store", action="store_true", help="do not record the run in the database")
    vendor = ev.add_argument_group("a system facetrail does not run, from its own scores (no model is loaded)")
    vendor.add_argument("--scores", help="pair score file: CSV image_a,image_b,score, or bob.measure 4/5 columns")
    vendor.add_argument("--score-format", choices=("csv", "4-column", "5-column"),
                        help="the score file's format (default: detected from its first line)")
    vendor.add_argument("--candidates", help="candidate lists: CSV probe,candidate_subject,rank,score "
                                             "(gallery: --gallery-manifest/--gallery-subject-col)")
    vendor.add_argument("--score-direction", choices=("similarity", "distance"),
                        help="higher scores mean more alike (similarity) or less alike (distance)")
    vendor.add_argument("--score-tolerance", type=float, default=0.0,
                        help="how far a score may be from the system's exact one (default 0: the digits are exact)")
    vendor.add_argument("--system", help="the evaluated system's name (stored with the run and in its record)")
    vendor.add_argument("--system-version", help="the evaluated system's version")
    _config_args(ev)
    ev.set_defaults(handler=_evaluate)

    cal = subparsers.add_parser(
        "calibrate",
        parents=[*parents, context_parent()],
        help="threshold at a target false-match rate on a labelled dataset",
    )
    cal.add_argument("--manifest", required=True)
    _data_args(cal)
    target = cal.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-fmr", type=float, help="1:1: the overall false-match rate to reach")
    target.add_argument("--target-fpir", type=float,
                        help="1:N: the share of non-mated searches of --gallery that may return a candidate")
    cal.add_argument("--gallery", help="1:N: the enrolled gallery the manifest's people are searched against")
    cal.add_argument("--for-gallery-size", type=int,
                     help="1:N: the gallery size the threshold is for (default: --gallery's; else extrapolated)")
    cal.add_argument("--probe-glob", help="1:N: use only probe images whose path matches, e.g. '*/c118.jpg'")
    cal.add_argument("--no-save", action="store_true", help="do not store it as the config's default threshold")
    _config_args(cal)
    cal.set_defaults(handler=_calibrate)


# -- parse: arguments -> requests (every value checked into a typed error)


def _source(args: argparse.Namespace) -> DatasetSource:
    labels = tuple(c.strip() for c in args.labels.split(",")) if args.labels else None
    bands = tuple(parse_band(b) for b in args.band)
    if getattr(args, "lfw", None):
        return DatasetSource(lfw=Path(args.lfw), label_columns=labels, bands=bands, subject_face=args.subject_face)
    if not args.subject_col:
        raise ManifestError("--subject-col is required with --manifest")
    return DatasetSource(manifest=Path(args.manifest), subject_column=args.subject_col, label_columns=labels,
                         bands=bands, subject_face=args.subject_face)


def _gallery(args: argparse.Namespace) -> IdentificationRequest | None:
    if args.gallery_lfw:
        return IdentificationRequest(DatasetSource(lfw=Path(args.gallery_lfw), pairs_only=False), args.probe_glob)
    if args.gallery_manifest:
        if not args.gallery_subject_col:
            raise ManifestError("--gallery-subject-col is required with --gallery-manifest")
        source = DatasetSource(manifest=Path(args.gallery_manifest), subject_column=args.gallery_subject_col)
        return IdentificationRequest(source, args.probe_glob)
    return None


def _system(args: argparse.Namespace) -> SystemScores | None:
    """Return the system named by ``--scores``/``--candidates`` (``None``: evaluate facetrail's engine)."""
    if not (args.scores or args.candidates):
        for flag in ("system", "score_direction", "score_format"):
            if getattr(args, flag):
                raise ManifestError(f"--{flag.replace('_', '-')} describes a system's score files: give --scores "
                                    "or --candidates")
        return None
    if not args.manifest:
        raise ManifestError("a system's scores are evaluated against a manifest: give --manifest and --subject-col")
    if not args.system:
        raise ManifestError("name the evaluated system with --system (and its version with --system-version)")
    if not args.score_direction:
        raise ManifestError("say what the scores are with --score-direction similarity|distance")
    gallery = None
    if args.candidates:
        if not (args.gallery_manifest and args.gallery_subject_col):
            raise ManifestError("--candidates needs the gallery's --gallery-manifest and --gallery-subject-col")
        gallery = DatasetSource(manifest=Path(args.gallery_manifest), subject_column=args.gallery_subject_col)
    return SystemScores(
        name=args.system, direction=args.score_direction, version=args.system_version,
        pairs=Path(args.scores) if args.scores else None, pair_format=args.score_format,
        candidates=Path(args.candidates) if args.candidates else None, gallery=gallery,
        probe_glob=args.probe_glob, tolerance=args.score_tolerance,
    )


def _evaluation_request(args: argparse.Namespace) -> EvaluationRequest:
    thresholds, include_default = parse_thresholds(args.threshold)
    system = _system(args)
    if system is not None and not any(v.strip().lower() == "default" for v in args.threshold):
        include_default = False  # a system's own default is not known to facetrail: name it as score=<value>
    return EvaluationRequest(
        dataset=_source(args),
        by=parse_by(args.by) if args.by else None,
        thresholds=thresholds,
        include_default=include_default,
        multi_label=args.multi_label,
        bootstrap=args.bootstrap,
        seed=args.seed,
        identification=None if system is not None else _gallery(args),
        store=not args.no_store,
        workers=args.workers,
        system=system,
    )


def _search_calibration_request(args: argparse.Namespace) -> SearchCalibrationRequest:
    if not args.gallery:
        raise ManifestError("--target-fpir calibrates searches of a gallery: name it with --gallery")
    return SearchCalibrationRequest(
        probes=_source(args),
        gallery=args.gallery,
        target_fpir=args.target_fpir,
        for_gallery_size=args.for_gallery_size,
        probe_glob=args.probe_glob,
        by=parse_by(args.by),
        multi_label=args.multi_label,
        save=not args.no_save,
        workers=args.workers,
    )


def _calibration_request(args: argparse.Namespace) -> CalibrationRequest:
    for flag in ("gallery", "for_gallery_size", "probe_glob"):
        if getattr(args, flag) is not None:
            raise ManifestError(f"--{flag.replace('_', '-')} is for a 1:N calibration (--target-fpir)")
    return CalibrationRequest(
        dataset=_source(args),
        target_fmr=args.target_fmr,
        by=parse_by(args.by),
        multi_label=args.multi_label,
        save_default=not args.no_save,
        workers=args.workers,
    )


def _parsed(session: AuditSession, args: argparse.Namespace, build: Callable[[argparse.Namespace], T]) -> T:
    """Build the request; refuse the command (recorded through the session) if an argument is unusable."""
    try:
        return build(args)
    except _ERRORS as err:
        attempt = {"command": args.command, "dataset": getattr(args, "manifest", None) or getattr(args, "lfw", None)}
        for flag in ("scores", "candidates", "system"):
            if getattr(args, flag, None):
                attempt[flag] = getattr(args, flag)
        session.refuse(args.command, err.code, str(err), attempt)
        raise


# -- call


def _evaluate(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        session = rt.session(context(args))
        request = _parsed(session, args, _evaluation_request)
        engine = None if request.system is not None else rt.engine(args.model, args.detector, args.alignment)
        run = run_evaluation(request, engine, EvaluationStores.on(rt.db), session)
    except StorageError as err:
        return fail(args, err, EXIT_FAILURE)
    except _ERRORS as err:
        return fail(args, err)
    rows = _rows(run)
    text = "" if args.json else _text(run, rows)
    emit(args, rows, text)
    return EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        session = rt.session(context(args))
        engine = rt.engine(args.model, args.detector, args.alignment)
        if args.target_fpir is not None:
            search_request = _parsed(session, args, _search_calibration_request)
            search_run = run_search_calibration(search_request, engine, EvaluationStores.on(rt.db), session)
        else:
            request = _parsed(session, args, _calibration_request)
            run = run_calibration(request, engine, EvaluationStores.on(rt.db), session)
    except StorageError as err:
        return fail(args, err, EXIT_FAILURE)
    except _ERRORS as err:
        return fail(args, err)
    if args.target_fpir is not None:
        emit(args, _search_calibration_payload(search_run), _search_calibration_text(search_run))
    else:
        emit(args, _calibration_payload(run), _calibration_text(run))
    return EXIT_OK


# -- format


def _rows(run: EvaluationRun) -> list[dict[str, Any]]:
    """Return the JSON rows: verification, inequity, LFW protocol, identification; each with run id and record."""
    report, run_id = run.report, run.run_id
    rows = [{**r, "kind": "verification", "run_id": run_id} for r in report.json_rows()]
    rows += [{**dict(r), "kind": "inequity", "run_id": run_id} for r in report.inequity_rows]
    ten_fold = report.lfw_accuracy()
    if ten_fold is not None:
        rows.append({"kind": "lfw_10fold", "run_id": run_id, "group": {}, **ten_fold,
                     "subject_face": report.run.get("subject_face", "largest")})
        rows += [{"kind": "lfw_pairs", "run_id": run_id, **r} for r in report.lfw_pair_rows()]
    rows += [{**dict(r), "kind": "identification", "run_id": run_id} for r in report.identification_rows]
    for r in rows:
        r["audit_seq"] = run.audit_seq
    return rows


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _rule(run_info: dict[str, Any] | Any) -> str:
    """Return the match rule's comparison for text rows (``d<=`` for cosine distances, ``score>=``/``score<=``)."""
    convention = str(run_info.get("threshold_convention", ""))
    if convention.startswith("the system's similarity"):
        return "score>="
    if convention.startswith("the system's distance"):
        return "score<="
    return "d<="


def _text(run: EvaluationRun, rows: list[dict[str, Any]]) -> str:
    report, run_info = run.report, run.report.run
    system = dict(run_info.get("system") or {})
    who = f" of {system['name']}{' ' + system['version'] if system.get('version') else ''}" if system else ""
    rule = _rule(run_info)
    lines = [
        f"dataset {run.dataset.name}{who}: {run_info['images']} images, {run_info['subjects']} subjects, "
        f"{run_info['genuine_pairs']:,} genuine and {run_info['impostor_pairs']:,} impostor pairs; "
        f"run {run.run_id}"
    ]
    if run_info.get("subject_face"):  # the engine's runs (a system's scores choose their own faces)
        lines.append(f"subject face: {run_info['subject_face']} ({run_info.get('subject_face_reason')})")
    for r in report.rates:
        if r["pairing"] == "cross":
            continue
        flag = "  LOW COUNT" if r["low_count"] else ""
        flag += "  NOT REPRODUCIBLE IN FLOAT32" if r.get("reproducible") is False else ""
        lines.append(
            f"{r['group_name']:38} {r['threshold_name']:>10} {rule}{_fmt(r['threshold'], '.7g')}  "
            f"FNMR {_fmt(r['fnmr'], '.4f')} [{_fmt(r['fnmr_lo'], '.4f')}, {_fmt(r['fnmr_hi'], '.4f')}] "
            f"({r['genuine_pairs']:,})  FMR {_fmt(r['fmr'], '.2e')} [{_fmt(r['fmr_lo'], '.2e')}, "
            f"{_fmt(r['fmr_hi'], '.2e')}] ({r['impostor_pairs']:,}){flag}"
        )
    summary = ("max_geomean_ratio", "garbe", "fdr")
    for r in rows:
        if r["kind"] == "inequity" and r["measure"] in summary and r["metric"] in ("false_match_rate", "combined"):
            lines.append(
                f"inequity {r['grouping']:26} {r['threshold_name']:>10} {r['measure']:>17} {r['metric']:>16} "
                f"{_fmt(r['value'], '.3g')} [{_fmt(r['lo'], '.3g')}, {_fmt(r['hi'], '.3g')}] over {r['groups']} groups"
            )
    for r in rows:
        if r["kind"] == "lfw_10fold":
            lines.append(f"LFW 10-fold accuracy {_fmt(r['accuracy'], '.4f')} ± {_fmt(r['accuracy_std'], '.4f')}")
        elif r["kind"] == "identification" and not r["group"]:
            lines.append(
                f"1:N {r['threshold_name']}: FPIR {_fmt(r['fpir'], '.3f')} over {r['nonmated_searches']} "
                f"non-mated searches of a {r['gallery_size']}-face gallery"
            )
    lines.append(f"stored as evaluation run {run.run_id}" if run.stored else "run not stored (--no-store)")
    lines[-1] += f"; audit record #{run.audit_seq}"
    return "\n".join(lines)


def _calibration_payload(run: CalibrationRun) -> dict[str, Any]:
    payload = run.calibration.to_dict()
    payload["dataset"] = run.dataset.name
    payload["failures_to_acquire"] = run.failures_to_acquire
    payload["images"] = run.images
    payload["saved"] = run.saved
    payload["audit_seq"] = run.audit_seq
    return payload


def _search_calibration_payload(run: SearchCalibrationRun) -> dict[str, Any]:
    c = run.calibration
    return {
        "kind": "search_calibration",
        "target_fpir": c.target_fpir,
        "for_gallery_size": c.for_gallery_size,
        "method": c.method,
        "threshold": c.threshold,
        "achieved_fpir": c.achieved_fpir,
        "measured_target_fpir": c.measured_target,
        "searches": c.searches,
        "false_positive_searches": c.false_positive_searches,
        "nearest_match": c.nearest_match,
        "nearest_non_match": c.nearest_non_match,
        "gallery": run.gallery,
        "gallery_fingerprint": run.gallery_fingerprint,
        "gallery_size": c.gallery_size,
        "dataset": run.dataset.name,
        "failures_to_acquire": run.failures_to_acquire,
        "per_group": [dict(r) for r in c.per_group],
        "saved": run.saved_id is not None,
        "search_calibration_id": run.saved_id,
        "audit_seq": run.audit_seq,
    }


def _search_calibration_text(run: SearchCalibrationRun) -> str:
    c = run.calibration
    lines = [
        f"search threshold {c.threshold:.7g} for FPIR <= {c.target_fpir:g} on a {c.for_gallery_size:,}-face gallery "
        f"({c.method}): {c.false_positive_searches:,} of {c.searches:,} non-mated searches of {run.dataset.name} "
        f"against {run.gallery} ({c.gallery_size:,} faces) return a candidate (FPIR {c.achieved_fpir:.4f})"
        + ("; saved as the default threshold of its searches" if run.saved_id is not None else "")
    ]
    for r in c.per_group:
        if r["group"]:
            lines.append(f"  {r['group_name']:36} FPIR {_fmt(r['fpir'], '.4f')} [{_fmt(r['fpir_lo'], '.4f')}, "
                         f"{_fmt(r['fpir_hi'], '.4f')}] ({r['false_positive_searches']}/{r['nonmated_searches']})")
    return "\n".join(lines)


def _calibration_text(run: CalibrationRun) -> str:
    r = run.calibration.result
    return (
        f"threshold {r.threshold:.6f} (similarity {r.similarity_threshold:.6f}) for FMR <= {r.target_fmr:g} "
        f"on {run.dataset.name}: achieved FMR {r.achieved_fmr:.3g} ({r.false_matches:,}/{r.impostor_pairs:,}), "
        f"FNMR {_fmt(r.achieved_fnmr, '.4f')} ({r.false_non_matches:,}/{r.genuine_pairs:,})"
        + ("; saved as the default threshold" if run.saved else "")
    )
