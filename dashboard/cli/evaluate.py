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
``facetrail calibrate --manifest CSV --subject-col COL --target-fmr 1e-3 --json``
    A threshold at an exact overall FMR, with FNMR and per-group FMR; stored as the
    model config's default threshold with its provenance (``--no-save`` to skip).

JSON output of ``evaluate`` is a list of rows; verification rows carry ``group``,
``threshold``, ``genuine_pairs``, ``impostor_pairs``, ``fnmr``, ``fmr``, ``fnmr_lo``,
``fnmr_hi``, ``fmr_lo``, ``fmr_hi`` (``kind: "verification"``); other kinds are
``"identification"``, ``"lfw_10fold"`` and ``"lfw_pairs"``. Exit code 2 on bad input.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from audit.evaluation.datasets import Dataset, load_lfw, load_manifest
from audit.errors import AuditError
from audit.evaluation.store import EvaluationStore
from audit.evaluation.evaluate import (
    EmbeddedDataset,
    EvaluationConfig,
    EvaluationReport,
    ThresholdSpec,
    calibrate,
    embed_dataset,
    evaluate_embedded,
    parse_threshold,
    ten_fold_accuracy,
)
from audit.evaluation.groups import add_bands
from audit.evaluation.identification import identification_rates, wilson_interval
from audit.evaluation.metrics import quantize
from core.errors import BadInput, ManifestError, RecognitionError
from dashboard.cli.common import EXIT_BAD_INPUT, EXIT_OK, config_args, context, context_parent, runtime

__all__ = ["register", "parse_by", "set_engine_factory"]

EngineFactory = Callable[[argparse.Namespace], Any]


def _runtime(args: argparse.Namespace) -> Any:
    """Return the command's one :class:`audit.runtime.Runtime` (one database, its stores, engines)."""
    return runtime(args)


def _database(args: argparse.Namespace) -> Any:
    """Return the command's one :class:`core.storage.connection.Database`."""
    return _runtime(args).db


def _runtime_engine(args: argparse.Namespace) -> Any:
    return _runtime(args).engine(args.model, args.detector, args.alignment)


_engine_factory: EngineFactory = _runtime_engine


def set_engine_factory(factory: EngineFactory | None) -> None:
    """Replace how commands build their engine (tests, notebooks); ``None`` restores the default."""
    global _engine_factory
    _engine_factory = factory or _runtime_engine


def parse_by(values: list[str] | None) -> tuple[tuple[str, ...], ...]:
    """Parse ``--by`` values: comma-separated groupings, ``a*b`` for an intersection.

    Raises
    ------
    ValueError
        On an empty column name.
    """
    out: list[tuple[str, ...]] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            cols = tuple(c.strip() for c in part.split("*"))
            if any(not c for c in cols):
                raise ValueError(f"bad grouping {part!r} in --by")
            if cols not in out:
                out.append(cols)
    return tuple(out)


def _config_args(parser: argparse.ArgumentParser) -> None:
    config_args(parser)
    parser.add_argument("--workers", type=int, help="processes for embedding (default: all cores)")


def _session(args: argparse.Namespace) -> Any:
    return _runtime(args).session(context(args))


def _require_context(args: argparse.Namespace, engine: Any) -> None:
    """Refuse (and record the refusal) before any work when operator or purpose is missing."""
    _session(args).check(args.command, {"dataset": args.manifest or args.lfw})


def _record(args: argparse.Namespace, engine: Any, details: dict[str, Any], model_config: Any) -> int:
    """Append the ``evaluate`` record of this run to the audit trail."""
    entry = _session(args).record(
        "evaluate", {"details": details, "model_config": dict(model_config) if model_config else None})
    return int(entry.seq)


def _summary(report: EvaluationReport, dataset: Dataset, command: str) -> dict[str, Any]:
    """Audit-record details: ids, counts and overall rates as 6-decimal strings (records hold no floats)."""
    from audit.trail.records import decimal6

    overall = {}
    for r in report.rates:
        if r["pairing"] == "all":
            overall[r["threshold_name"]] = {
                "threshold": decimal6(r["threshold"]),
                "fmr": None if r["fmr"] is None else f"{r['fmr']:.6e}",
                "fnmr": None if r["fnmr"] is None else decimal6(r["fnmr"]),
            }
    return {
        "command": command,
        "run_id": report.run["run_id"],
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "images": int(report.run["images"]),
        "subjects": int(report.run["subjects"]),
        "genuine_pairs": int(report.run["genuine_pairs"]),
        "impostor_pairs": int(report.run["impostor_pairs"]),
        "code_version": report.run["code_version"],
        "overall": overall,
    }


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
    _config_args(ev)
    ev.set_defaults(handler=_evaluate)

    cal = subparsers.add_parser(
        "calibrate",
        parents=[*parents, context_parent()],
        help="threshold at a target false-match rate on a labelled dataset",
    )
    cal.add_argument("--manifest", required=True)
    _data_args(cal)
    cal.add_argument("--target-fmr", type=float, required=True)
    cal.add_argument("--no-save", action="store_true", help="do not store it as the config's default threshold")
    _config_args(cal)
    cal.set_defaults(handler=_calibrate)


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    from dashboard.cli.common import emit

    emit(args, payload, text)


def _fail(args: argparse.Namespace, err: BaseException, code: int = EXIT_BAD_INPUT) -> int:
    from dashboard.cli.common import fail

    return fail(args, err, code)


def _load(args: argparse.Namespace) -> Dataset:
    labels = [c.strip() for c in args.labels.split(",")] if args.labels else None
    if getattr(args, "lfw", None):
        ds = load_lfw(args.lfw, label_columns=labels)
    else:
        if not args.subject_col:
            raise ManifestError("--subject-col is required with --manifest")
        ds = load_manifest(args.manifest, args.subject_col, labels)
    return _with_bands(ds, args.band)


def _with_bands(ds: Dataset, bands: list[str]) -> Dataset:
    if not bands:
        return ds
    table = ds.table
    cols = list(ds.label_columns)
    for spec in bands:
        col, _, edges = spec.partition("=")
        if not edges or col not in table.columns:
            raise ManifestError(f"--band {spec!r}: expected '<label column>=e1,e2,...' with a known column")
        try:
            values = [float(e) for e in edges.split(",")]
        except ValueError as err:
            raise ManifestError(f"--band {spec!r}: edges must be numbers") from err
        table = add_bands(table, col, values)
        cols.append(f"{col}_band")
    return Dataset(
        root=ds.root,
        table=table,
        subject_column=ds.subject_column,
        label_columns=tuple(cols),
        fingerprint=ds.fingerprint,
        validation=ds.validation,
        pairs=ds.pairs,
        name=ds.name,
    )


def _thresholds(values: list[str]) -> tuple[ThresholdSpec, ...]:
    if not values:
        return (parse_threshold("fmr=1e-3"), parse_threshold("fmr=1e-4"))
    return tuple(parse_threshold(v) for v in values if v.strip().lower() != "default")


def _embed(args: argparse.Namespace, engine: Any, ds: Dataset) -> EmbeddedDataset:
    kwargs: dict[str, Any] = {}
    if args.workers:
        kwargs["workers"] = args.workers
    if hasattr(engine, "config"):
        from core.cache import EmbeddingCache

        kwargs["cache"] = EmbeddingCache(_database(args))
    return embed_dataset(engine, ds, **kwargs)


def _check_columns(ds: Dataset, by: tuple[tuple[str, ...], ...]) -> None:
    missing = sorted({c for spec in by for c in spec} - set(ds.label_columns))
    if missing:
        raise ManifestError(f"--by column(s) {missing} are not label columns of the dataset ({list(ds.label_columns)})")


def _verification_rows(report: EvaluationReport) -> list[dict[str, Any]]:
    rows = report.json_rows()
    for r in rows:
        r["kind"] = "verification"
        r["run_id"] = report.run["run_id"]
    return rows


def _evaluate(args: argparse.Namespace) -> int:
    try:
        by = parse_by(args.by)
        thresholds = _thresholds(args.threshold)
        ds = _load(args)
        if args.lfw and not by:
            by = tuple((c,) for c in ds.label_columns)
        _check_columns(ds, by)
        if args.bootstrap < 0:
            raise BadInput("--bootstrap must be >= 0")
        if (args.gallery_manifest or args.gallery_lfw) and args.lfw:
            raise BadInput("1:N searches take --manifest probes, not --lfw")
        engine = _engine_factory(args)
        _require_context(args, engine)
        embedded = _embed(args, engine, ds)
        if embedded.embeddings.shape[0] < 2:
            raise BadInput(f"only {embedded.embeddings.shape[0]} image(s) of {len(ds)} yielded a face")
        cfg = EvaluationConfig(
            by=by, thresholds=thresholds, multi_label=args.multi_label, bootstrap=args.bootstrap, seed=args.seed
        )
        report = evaluate_embedded(embedded, cfg)
        extra: list[dict[str, Any]] = []
        if args.lfw and ds.pairs:
            extra = _lfw_rows(embedded, report)
        if args.gallery_manifest or args.gallery_lfw:
            ident = _identification(args, engine, embedded, report, by)
            report = report.with_identification(ident)
            extra += [{**r, "kind": "identification", "run_id": report.run["run_id"]} for r in ident]
        if not args.no_store:
            EvaluationStore(_database(args)).save(report, dataset_name=ds.name)
        seq = _record(args, engine, _summary(report, ds, "evaluate"), report.run.get("model_config"))
    except (RecognitionError, AuditError, ValueError, KeyError) as err:
        return _fail(args, err)
    rows = _verification_rows(report) + extra
    for r in rows:
        r["audit_seq"] = seq
    text = "" if args.json else _text(report, ds, extra)
    if not args.json:
        text += "\n" + (
            "run not stored (--no-store)" if args.no_store else f"stored as evaluation run {report.run['run_id']}"
        )
        text += "" if seq is None else f"; audit record #{seq}"
    _emit(args, rows, text)
    return EXIT_OK


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _text(report: EvaluationReport, ds: Dataset, extra: list[dict[str, Any]]) -> str:
    df = report.rates_frame()
    df = df[df["pairing"] != "cross"]
    lines = [
        f"dataset {ds.name}: {report.run['images']} images, {report.run['subjects']} subjects, "
        f"{report.run['genuine_pairs']:,} genuine and {report.run['impostor_pairs']:,} impostor pairs; "
        f"run {report.run['run_id']}"
    ]
    for r in df.itertuples():
        flag = "  LOW COUNT" if r.low_count else ""
        lines.append(
            f"{r.group_name:38} {r.threshold_name:>10} d<={_fmt(r.threshold, '.4f')}  "
            f"FNMR {_fmt(r.fnmr, '.4f')} [{_fmt(r.fnmr_lo, '.4f')}, {_fmt(r.fnmr_hi, '.4f')}] "
            f"({r.genuine_pairs:,})  FMR {_fmt(r.fmr, '.2e')} [{_fmt(r.fmr_lo, '.2e')}, {_fmt(r.fmr_hi, '.2e')}] "
            f"({r.impostor_pairs:,}){flag}"
        )
    for r in extra:
        if r["kind"] == "lfw_10fold":
            lines.append(f"LFW 10-fold accuracy {_fmt(r['accuracy'], '.4f')} ± {_fmt(r['accuracy_std'], '.4f')}")
        elif r["kind"] == "identification" and not r["group"]:
            lines.append(
                f"1:N {r['threshold_name']}: FPIR {_fmt(r['fpir'], '.3f')} over {r['nonmated_searches']} "
                f"non-mated searches of a {r['gallery_size']}-face gallery"
            )
    return "\n".join(lines)


def _lfw_rows(embedded: EmbeddedDataset, report: EvaluationReport) -> list[dict[str, Any]]:
    ds = embedded.dataset
    table = embedded.table
    xq, scale = quantize(embedded.embeddings)
    index = {img: i for i, img in enumerate(table["image"])}
    pairs = ds.pairs
    dist = np.full(len(pairs), np.inf)
    for k, p in enumerate(pairs):
        a, b = index.get(p.image_a), index.get(p.image_b)
        if a is not None and b is not None:
            dist[k] = 1.0 - float(np.dot(xq[a], xq[b])) * scale
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    acc = ten_fold_accuracy(dist, same, folds)
    thr = float(np.median(acc["thresholds"]))
    run_id = report.run["run_id"]
    rows: list[dict[str, Any]] = [
        {
            "kind": "lfw_10fold",
            "run_id": run_id,
            "group": {},
            "threshold": thr,
            **acc,
            "pairs": len(pairs),
            "pairs_with_failed_image": int(np.isinf(dist).sum()),
        }
    ]
    labels = ds.table.set_index("image")
    groupings: list[tuple[str, ...]] = [()] + [(c,) for c in ds.label_columns]
    for spec in groupings:
        keyed: dict[tuple[str, ...], dict[str, Any]] = {}
        for k, p in enumerate(pairs):
            ga = tuple(str(labels.at[p.image_a, c]) if p.image_a in labels.index else "unknown" for c in spec)
            gb = tuple(str(labels.at[p.image_b, c]) if p.image_b in labels.index else "unknown" for c in spec)
            if ga != gb:
                continue
            cell = keyed.setdefault(ga, {"gen": 0, "fnm": 0, "imp": 0, "fm": 0})
            match = bool(dist[k] <= thr)
            if same[k]:
                cell["gen"] += 1
                cell["fnm"] += not match
            else:
                cell["imp"] += 1
                cell["fm"] += match
        for values, c in sorted(keyed.items()):
            fnmr_lo, fnmr_hi = wilson_interval(c["fnm"], c["gen"])
            fmr_lo, fmr_hi = wilson_interval(c["fm"], c["imp"])
            rows.append(
                {
                    "kind": "lfw_pairs",
                    "run_id": run_id,
                    "group": dict(zip(spec, values, strict=True)),
                    "threshold": thr,
                    "similarity_threshold": 1.0 - thr,
                    "genuine_pairs": c["gen"],
                    "false_non_matches": c["fnm"],
                    "fnmr": c["fnm"] / c["gen"] if c["gen"] else None,
                    "fnmr_lo": fnmr_lo,
                    "fnmr_hi": fnmr_hi,
                    "impostor_pairs": c["imp"],
                    "false_matches": c["fm"],
                    "fmr": c["fm"] / c["imp"] if c["imp"] else None,
                    "fmr_lo": fmr_lo,
                    "fmr_hi": fmr_hi,
                    "interval": "Wilson over protocol pairs",
                }
            )
    for r in rows:
        for k, v in list(r.items()):
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
    return rows


def _identification(
    args: argparse.Namespace,
    engine: Any,
    probes: EmbeddedDataset,
    report: EvaluationReport,
    by: tuple[tuple[str, ...], ...],
) -> list[dict[str, Any]]:
    if args.gallery_lfw:
        gallery_ds = load_lfw(args.gallery_lfw, pairs_only=False)
    else:
        if not args.gallery_subject_col:
            raise ManifestError("--gallery-subject-col is required with --gallery-manifest")
        gallery_ds = load_manifest(args.gallery_manifest, args.gallery_subject_col)
    gallery = _embed(args, engine, gallery_ds)
    table = probes.table
    keep = np.ones(len(table), dtype=bool)
    if args.probe_glob:
        keep = np.array([fnmatch.fnmatch(str(p), args.probe_glob) for p in table["image"]])
        if not keep.any():
            raise BadInput(f"--probe-glob {args.probe_glob!r} matches no acquired probe image")
    names = report.thresholds()
    # subject ids of two different datasets live in different namespaces (nobody is mated)
    shared = gallery_ds.fingerprint == probes.dataset.fingerprint
    g_prefix = "probe:" if shared else "gallery:"
    return identification_rates(
        probes.embeddings[keep],
        [f"probe:{s}" for s in table.loc[keep, probes.dataset.subject_column]],
        gallery.embeddings,
        [f"{g_prefix}{s}" for s in gallery.table[gallery_ds.subject_column]],
        names,
        probe_labels=table.loc[keep, list(probes.dataset.label_columns)].reset_index(drop=True),
        by=by,
        multi_label=args.multi_label,
    )


def _calibrate(args: argparse.Namespace) -> int:
    try:
        ds = _load(args)
        by = parse_by(args.by)
        _check_columns(ds, by)
        if not 0.0 < args.target_fmr < 1.0:
            raise BadInput(f"--target-fmr must be in (0, 1), got {args.target_fmr}")
        engine = _engine_factory(args)
        _require_context(args, engine)
        embedded = _embed(args, engine, ds)
        cal = calibrate(
            embedded.embeddings,
            embedded.table[ds.subject_column].tolist(),
            args.target_fmr,
            embedded.table[list(ds.label_columns)],
            by=by,
            multi_label=args.multi_label,
            dataset_fingerprint=ds.fingerprint,
        )
        payload = cal.to_dict()
        payload["dataset"] = ds.name
        payload["failures_to_acquire"] = int((~embedded.ok).sum())
        payload["images"] = int(embedded.ok.sum())
        payload["saved"] = False
        if not args.no_save and hasattr(engine, "config"):
            payload["saved"] = _save_calibration(args, engine, cal, ds)
        r = cal.result
        payload["audit_seq"] = _record(
            args,
            engine,
            {
                "command": "calibrate",
                "dataset": ds.name,
                "dataset_fingerprint": ds.fingerprint,
                "target_fmr": f"{r.target_fmr:.6e}",
                "threshold": f"{r.threshold:.12f}",
                "achieved_fmr": f"{r.achieved_fmr:.6e}",
                "achieved_fnmr": None if math.isnan(r.achieved_fnmr) else f"{r.achieved_fnmr:.6f}",
                "impostor_pairs": r.impostor_pairs,
                "genuine_pairs": r.genuine_pairs,
                "saved_as_default": bool(payload["saved"]),
            },
            payload.get("model_config") or getattr(getattr(engine, "config", None), "to_dict", lambda: None)(),
        )
    except (RecognitionError, AuditError, ValueError, KeyError) as err:
        return _fail(args, err)
    r = cal.result
    text = (
        f"threshold {r.threshold:.6f} (similarity {r.similarity_threshold:.6f}) for FMR <= {r.target_fmr:g} "
        f"on {ds.name}: achieved FMR {r.achieved_fmr:.3g} ({r.false_matches:,}/{r.impostor_pairs:,}), "
        f"FNMR {r.achieved_fnmr:.4f} ({r.false_non_matches:,}/{r.genuine_pairs:,})"
        + ("; saved as the default threshold" if payload["saved"] else "")
    )
    _emit(args, payload, text)
    return EXIT_OK


def _save_calibration(args: argparse.Namespace, engine: Any, cal: Any, ds: Dataset) -> bool:
    from core.config import ThresholdSource
    from core.thresholds import ThresholdStore

    r = cal.result
    day = datetime.now(UTC).date().isoformat()
    per_group = tuple(
        (str(row["group_name"]), float(row["fmr"]))
        for row in cal.per_group
        if row["pairing"] == "within" and row["fmr"] is not None
    )
    source = ThresholdSource(
        kind="calibrated",
        description=f"FMR={r.target_fmr:g} on {ds.name} ({day})",
        target_fmr=r.target_fmr,
        achieved_fmr=r.achieved_fmr,
        achieved_fnmr=None if r.achieved_fnmr is None or math.isnan(r.achieved_fnmr) else r.achieved_fnmr,
        dataset=ds.name,
        dataset_fingerprint=ds.fingerprint,
        calibrated_at=cal.created,
        per_group_fmr=per_group,
    )
    ThresholdStore(_database(args)).save(engine.config, r.threshold, source)
    return True
