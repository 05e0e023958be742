"""Verification (1:1) error rates per demographic group, NIST FRVT Part 3 style.

:func:`evaluate_embeddings` takes plain arrays (an embeddings matrix, one subject
id per image, a table of labels per image) and returns an
:class:`~audit.evaluation.report.EvaluationReport`:

1. one scoring pass over **all** pairs (:func:`audit.evaluation.metrics.score_pairs`),
   which also calibrates the ``fmr=...`` thresholds as exact order statistics;
2. exact counts per reported cell (:func:`audit.evaluation.groups.pair_cells`):
   ``false_non_match_rate`` (FNMR) over genuine pairs, ``false_match_rate`` (FMR)
   over impostor pairs, impostors compared **within** the group (both people in
   it, as NIST does) and, with the ``combined`` label policy, across groups;
3. 95% percentile intervals from a bootstrap over *subjects*
   (:mod:`audit.evaluation.bootstrap`), with the exact zero-event binomial bound
   where a rate has no events;
4. disparity (:mod:`audit.evaluation.disparity`), inequity measures
   (:mod:`audit.evaluation.inequity`: max/min, max/geometric mean, GARBE, FDR), DET
   curves, histograms and EER (:mod:`audit.evaluation.curves`), failures to acquire
   per group;
5. for every threshold, how far it is from the nearest observed score and whether
   every reproduction (float32 as the engine computes, float64) decides every pair as
   counted (``threshold_margin``, ``reproducible``; :mod:`audit.evaluation.cutoffs`).
   Calibrated thresholds are placed so that it does.

Steps 2 to 5 are shared (:func:`assemble_report`) with the evaluation of a system's
own scores (:mod:`audit.evaluation.listed`), so both give the same rows, intervals,
flags and calibrations. Cells with few pairs or subjects are flagged ``low_count``,
never hidden.
"""

from __future__ import annotations

import math
import platform
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from audit.evaluation.bootstrap import percentile_interval, subject_weights
from audit.evaluation.config import EvaluationConfig, ScoreConvention, ThresholdSpec
from audit.evaluation.curves import det_and_histograms
from audit.evaluation.cutoffs import Precision, ThresholdMargin, float32_dot_error, margin_window, threshold_margin
from audit.evaluation.disparity import RateArrays, disparity_rows
from audit.evaluation.errors import EvaluationError
from audit.evaluation.groups import FineCells, PairCell, fine_cells, grouping_name, groups_for, pair_cells
from audit.evaluation.inequity import inequity_rows
from audit.evaluation.metrics import (
    CellCounter,
    CellCounts,
    PairScores,
    ThresholdCalibration,
    calibrate_threshold,
    quantisation_error,
    score_pairs,
)
from audit.evaluation.report import EvaluationReport, json_safe

__all__ = ["Counter", "Scored", "assemble_report", "code_version", "evaluate_embeddings", "run_metadata"]

COSINE = ScoreConvention("cosine")


class Counter(Protocol):
    """Counts per fine-cell pair at fixed thresholds for any subject weights (:class:`~audit.evaluation.metrics.CellCounter`)."""

    def counts(self, weights: np.ndarray | None = None) -> CellCounts:
        """Return counts for subject weights ``(R, n_subjects)`` (``None``: every subject once)."""
        ...


@dataclass(frozen=True, eq=False)
class Scored:
    """One scoring of a set of pairs, as the shared steps need it (engine or a system's score file)."""

    counter: Counter
    """Counts at :attr:`thresholds` (in their order)."""
    thresholds: tuple[ThresholdSpec, ...]
    """The run's thresholds, calibrated ones resolved to their values."""
    calibrations: tuple[ThresholdCalibration, ...]
    """What the calibrated thresholds achieve."""
    margins: dict[str, ThresholdMargin]
    """Per threshold name: its distance to the nearest observed score and whether that suffices."""
    n_subjects: int
    """Subjects (the bootstrap's units)."""
    histograms: Any
    """Anything with ``hist_bins``, ``impostor_hist``, ``genuine_hist``, ``hist_edges()`` (DET, EER)."""
    convention: ScoreConvention
    """What the scores and thresholds are."""


def code_version() -> str:
    """Return the package version plus the git commit of the working tree, when available."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("facetrail")
    except PackageNotFoundError:
        v = "0+unknown"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except OSError:
        rev = ""
    return f"{v}+g{rev}" if rev else v


@dataclass(frozen=True, eq=False)
class _Inputs:
    """Checked inputs: embeddings, subject codes and names, label table, fine cells."""

    x: np.ndarray
    subject_codes: np.ndarray
    subject_names: tuple[str, ...]
    labels: pd.DataFrame
    columns: list[str]
    fine: FineCells
    n_impostor: int


def _inputs(
    embeddings: np.ndarray, subjects: Sequence[Any] | np.ndarray, labels: pd.DataFrame | None, cfg: EvaluationConfig
) -> _Inputs:
    x = np.asarray(embeddings)
    n = x.shape[0] if x.ndim == 2 else -1
    subj_arr = np.asarray([str(s) for s in subjects], dtype=object)
    if subj_arr.shape != (n,):
        raise ValueError(f"need one subject per embedding: {len(subj_arr)} subjects for {n} embeddings")
    columns = list(dict.fromkeys(c for spec in cfg.by for c in spec))
    if labels is None:
        if columns:
            raise ValueError("labels are needed to group by " + ", ".join(columns))
        labels = pd.DataFrame(index=range(n))
    if len(labels) != n:
        raise ValueError(f"need one label row per embedding: {len(labels)} rows for {n} embeddings")
    labels = labels.reset_index(drop=True)
    codes, names = pd.factorize(pd.Series(subj_arr), sort=True)
    subject_codes = np.asarray(codes, dtype=np.int64)
    sizes = np.bincount(subject_codes, minlength=len(names))
    n_imp = n * (n - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())
    if n_imp <= 0:
        raise EvaluationError("no impostor pairs: an evaluation needs images of at least two subjects")
    return _Inputs(x, subject_codes, tuple(str(s) for s in names), labels, columns, fine_cells(labels, columns), n_imp)


def _score(inp: _Inputs, cfg: EvaluationConfig, block_rows: int | None) -> tuple[PairScores, Scored]:
    """Score every pair once; calibrate the ``fmr=`` thresholds on the result; measure every threshold's margin.

    Impostor pairs are kept down to a little beyond each fixed threshold (a window
    of a few times the reproduction error), so the nearest non-matching scores are
    known and the margin is measured, not guessed.
    """
    specs = cfg.resolved_thresholds()
    if not specs:
        raise ValueError("no thresholds to evaluate")
    if any(t.score is not None for t in specs):
        raise ValueError("score=... thresholds are a system's scores; facetrail's engine takes cosine distances")
    targets = [t.target_fmr for t in specs if t.source == "calibrated" and t.target_fmr is not None]
    keep_top = int(math.floor(max(targets) * inp.n_impostor * (1 + 1e-12))) + 1 if targets else 0
    precision = Precision(quantisation_error(inp.x) + float32_dot_error(inp.x.shape[1]))
    scores = score_pairs(
        inp.x,
        inp.subject_codes,
        inp.fine.codes,
        subjects=inp.subject_names,
        keep_thresholds=[min(2.0, float(t.distance) + margin_window(precision, float(t.distance)))
                         for t in specs if t.distance is not None],
        keep_top=keep_top,
        hist_bins=cfg.hist_bins,
        block_rows=block_rows,
    )
    resolved: list[ThresholdSpec] = []
    calibrations: list[ThresholdCalibration] = []
    for t in specs:
        if t.source == "calibrated" and t.target_fmr is not None and t.distance is None:
            cal = calibrate_threshold(scores, t.target_fmr)
            calibrations.append(cal)
            resolved.append(t.resolved(cal.threshold, system_score=False))
        else:
            resolved.append(t)
    values = np.concatenate([1.0 - scores.genuine_q.astype(np.float64) * scores.scale,
                             1.0 - scores.impostor_q.astype(np.float64) * scores.scale])
    loosest = scores.min_distance_threshold  # every impostor pair at or below this distance was kept
    margins = {
        t.name: threshold_margin(values, float(t.distance), -1, precision,
                                 known_within=max(0.0, loosest - float(t.distance)) if loosest < 2.0 else math.inf,
                                 cap=margin_window(precision, float(t.distance)))
        for t in resolved
        if t.distance is not None
    }
    counter = CellCounter(scores, [float(t.distance) for t in resolved if t.distance is not None])
    scored = Scored(counter, tuple(resolved), tuple(calibrations), margins, scores.n_subjects, scores, COSINE)
    return scores, scored


def _rates(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True, eq=False)
class _Counts:
    """Counts per cell at the point estimate, and rates with intervals."""

    genuine: np.ndarray  # (cells,)
    impostor: np.ndarray  # (cells,)
    false_non_matches: np.ndarray  # (cells, K)
    false_matches: np.ndarray  # (cells, K)
    rates: RateArrays
    fnmr_lo: np.ndarray
    fnmr_hi: np.ndarray
    fmr_lo: np.ndarray
    fmr_hi: np.ndarray


def _count(counter: Counter, n_subjects: int, cells: Sequence[PairCell], cfg: EvaluationConfig) -> _Counts:
    """Exact counts per reported cell, and the same under every bootstrap resample of subjects."""
    agg = np.stack([c.mask for c in cells], axis=1).astype(np.float64)  # (P, cells)

    def reduce(weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cc = counter.counts(weights)
        fnm = np.einsum("rpk,ps->rsk", cc.false_non_matches, agg)
        fm = np.einsum("rpk,ps->rsk", cc.false_matches, agg)
        return cc.genuine @ agg, fnm, cc.impostor @ agg, fm

    gen, fnm, imp, fm = reduce(None)
    fnmr, fmr = _rates(fnm[0], gen[0][:, None]), _rates(fm[0], imp[0][:, None])
    boot_fnmr: list[np.ndarray] = []
    boot_fmr: list[np.ndarray] = []
    if cfg.bootstrap > 0:
        for w in subject_weights(n_subjects, cfg.bootstrap, seed=cfg.seed):
            bg, bfn, bi, bfm = reduce(w)
            boot_fnmr.append(_rates(bfn, bg[:, :, None]))
            boot_fmr.append(_rates(bfm, bi[:, :, None]))
    if boot_fnmr:
        bfnmr, bfmr = np.concatenate(boot_fnmr), np.concatenate(boot_fmr)
        fnmr_lo, fnmr_hi = percentile_interval(bfnmr, cfg.confidence)
        fmr_lo, fmr_hi = percentile_interval(bfmr, cfg.confidence)
    else:
        bfnmr = bfmr = np.zeros((0,) + fnmr.shape)
        fnmr_lo = fnmr_hi = fmr_lo = fmr_hi = np.full(fnmr.shape, np.nan)
    rates = RateArrays(fmr=fmr, fnmr=fnmr, boot_fmr=bfmr, boot_fnmr=bfnmr, genuine=gen[0], impostor=imp[0])
    return _Counts(gen[0], imp[0], fnm[0], fm[0], rates, fnmr_lo, fnmr_hi, fmr_lo, fmr_hi)


def _zero_event_bounds(row: dict[str, Any], subjects: int, cfg: EvaluationConfig) -> None:
    """Replace a degenerate bootstrap upper bound when a rate has no events at all.

    With zero false (non-)matches every resample is zero too, and the percentile
    interval collapses to ``[0, 0]``, which overstates certainty. The upper bound is
    then the exact binomial bound for zero events, ``1 - (alpha/2)^(1/n)``, with ``n``
    the number of independent units: subjects for FNMR, subject pairs for FMR (pairs
    of one person are correlated, so counting pairs would be anti-conservative).
    ``interval_method`` says which rule gave each bound.
    """
    alpha = 1.0 - cfg.confidence
    methods = []
    for rate, events, units in (
        ("fnmr", row["false_non_matches"], subjects),
        ("fmr", row["false_matches"], subjects * (subjects - 1) // 2 if row["pairing"] != "cross" else subjects),
    ):
        if cfg.bootstrap > 0 and events == 0 and not math.isnan(row[rate]) and units > 0:
            row[f"{rate}_hi"] = 1.0 - (alpha / 2.0) ** (1.0 / units)
            row[f"{rate}_lo"] = 0.0
            methods.append(f"{rate}: zero-event binomial bound over {units} units")
    row["interval_method"] = "subject bootstrap (percentile)" + ("; " + "; ".join(methods) if methods else "")


def _rate_rows(cells: Sequence[PairCell], scored: Scored, n: _Counts, cfg: EvaluationConfig) -> list[dict[str, Any]]:
    """One row per cell and threshold: counts, rates, intervals, ``low_count``, the threshold's margin."""
    thresholds, convention = scored.thresholds, scored.convention
    out: list[dict[str, Any]] = []
    for si, c in enumerate(cells):
        low = (
            (c.pairing != "cross" and n.genuine[si] < cfg.min_genuine_pairs)
            or n.impostor[si] < cfg.min_impostor_pairs
            or c.subjects < cfg.min_subjects
        )
        for ki, t in enumerate(thresholds):
            value = float(t.value) if t.value is not None else math.nan
            margin = scored.margins.get(t.name)
            row: dict[str, Any] = {
                "pairing": c.pairing,
                "grouping": c.grouping,
                "group": c.group.as_dict(),
                "group_name": c.group.name,
                "other_group": c.other.as_dict() if c.other is not None else None,
                "other_group_name": c.other.name if c.other is not None else None,
                "threshold_name": t.name,
                "threshold_source": t.source,
                "target_fmr": t.target_fmr,
                "threshold": value,
                "similarity_threshold": convention.similarity_threshold(value),
                "genuine_pairs": int(round(n.genuine[si])),
                "false_non_matches": int(round(n.false_non_matches[si, ki])),
                "fnmr": float(n.rates.fnmr[si, ki]),
                "fnmr_lo": float(n.fnmr_lo[si, ki]),
                "fnmr_hi": float(n.fnmr_hi[si, ki]),
                "impostor_pairs": int(round(n.impostor[si])),
                "false_matches": int(round(n.false_matches[si, ki])),
                "fmr": float(n.rates.fmr[si, ki]),
                "fmr_lo": float(n.fmr_lo[si, ki]),
                "fmr_hi": float(n.fmr_hi[si, ki]),
                "subjects": c.subjects,
                "images": c.images,
                "low_count": bool(low),
            }
            _zero_event_bounds(row, c.subjects, cfg)
            row["false_match_rate"] = row["fmr"]
            row["false_non_match_rate"] = row["fnmr"]
            row["threshold_margin"] = margin.margin if margin is not None else math.nan
            row["reproducible"] = margin.reproducible if margin is not None else None
            out.append(row)
    return out


def _fta_rows(inp: _Inputs, failed_labels: pd.DataFrame | None, cfg: EvaluationConfig) -> list[dict[str, Any]]:
    """Failures to acquire overall and per group (acquired images first, then the failed ones)."""
    if failed_labels is None:
        return []
    n, columns = len(inp.labels), inp.columns
    labels_all = (
        pd.concat([inp.labels[columns], failed_labels.reset_index(drop=True)[columns]], ignore_index=True)
        if columns
        else pd.DataFrame(index=range(n + len(failed_labels)))
    )
    failed = np.concatenate([np.zeros(n, dtype=bool), np.ones(len(failed_labels), dtype=bool)])
    fine = fine_cells(labels_all, columns)
    out = [{"group": {}, "group_name": "all", "grouping": "all", "images": int(len(failed)),
            "failures": int(failed.sum()), "fta_rate": float(failed.mean())}]
    for spec in cfg.by:
        for g in groups_for(fine, spec, cfg.multi_label):
            m = np.isin(fine.codes, list(g.cells))
            k, total = int(failed[m].sum()), int(m.sum())
            out.append({"group": g.as_dict(), "group_name": g.name, "grouping": grouping_name(spec), "images": total,
                        "failures": k, "fta_rate": k / total if total else math.nan})
    return out


def run_metadata(cfg: EvaluationConfig, counts: Mapping[str, int], convention: ScoreConvention, *,
                 dataset_fingerprint: str | None = None, model_config: Mapping[str, Any] | None = None,
                 hist_bin_width: float | None = None) -> dict[str, Any]:
    """Return a run's metadata: identity, provenance, counts and conventions."""
    return {
        "run_id": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(),
        "dataset_fingerprint": dataset_fingerprint,
        "model_config": dict(model_config or {}),
        "code_version": code_version(),
        "python": platform.python_version(),
        "config": cfg.to_dict(),
        "label_policy": {"missing": "kept as 'unknown'", "multi_valued": cfg.multi_label},
        **dict(counts),
        **convention.describe(),
        "hist_bin_width": hist_bin_width,
        "interval": f"{cfg.confidence:.0%} percentile bootstrap over subjects, {cfg.bootstrap} resamples",
        "reproduction": "every threshold's margin to the nearest observed score is in its rows "
                        "(threshold_margin, reproducible): calibrated thresholds lie in the middle of a gap "
                        "wider than a recomputation in float32 or float64 can move a score",
    }


def assemble_report(
    scored: Scored,
    cells: Sequence[PairCell],
    cfg: EvaluationConfig,
    counts: Mapping[str, int],
    *,
    dataset_fingerprint: str | None = None,
    model_config: Mapping[str, Any] | None = None,
    fta_rows: Sequence[Mapping[str, Any]] = (),
) -> EvaluationReport:
    """Return the report of one scoring: rates with intervals, disparity, inequity, DET/histograms/EER, calibrations.

    Parameters
    ----------
    scored
        The scoring (its counter, resolved thresholds, calibrations, margins, histograms).
    cells
        The reported cells.
    cfg
        What to evaluate.
    counts
        ``images``, ``subjects``, ``genuine_pairs``, ``impostor_pairs`` for the run metadata.
    dataset_fingerprint, model_config
        Provenance.
    fta_rows
        Failures to acquire per group (none for a system's scores).
    """
    n = _count(scored.counter, scored.n_subjects, cells, cfg)
    source = scored.histograms
    width = float(np.diff(source.hist_edges()[:2])[0]) if source.hist_bins else None
    rate_rows = _rate_rows(cells, scored, n, cfg)
    det, hist, eers = det_and_histograms(scored.histograms, cells, convention=scored.convention)
    for r in rate_rows:
        r["eer"] = eers.get((r["grouping"], r["group_name"]), math.nan) if r["pairing"] != "cross" else math.nan
    return EvaluationReport(
        run=json_safe(run_metadata(cfg, counts, scored.convention, dataset_fingerprint=dataset_fingerprint,
                                   model_config=model_config, hist_bin_width=width)),
        rates=tuple(json_safe(r) for r in rate_rows),
        disparity_rows=tuple(json_safe(r) for r in disparity_rows(cells, scored.thresholds, n.rates, cfg)),
        det_rows=tuple(json_safe(r) for r in det),
        histogram_rows=tuple(json_safe(r) for r in hist),
        fta_rows=tuple(json_safe(dict(r)) for r in fta_rows),
        calibration_rows=tuple(json_safe(dict(c.__dict__)) for c in scored.calibrations),
        inequity_rows=tuple(json_safe(r) for r in inequity_rows(cells, scored.thresholds, n.rates, cfg)),
    )


def evaluate_embeddings(
    embeddings: np.ndarray,
    subjects: Sequence[Any] | np.ndarray,
    labels: pd.DataFrame | None = None,
    config: EvaluationConfig | None = None,
    *,
    failed_labels: pd.DataFrame | None = None,
    dataset_fingerprint: str | None = None,
    model_config: Mapping[str, Any] | None = None,
    block_rows: int | None = None,
) -> EvaluationReport:
    """Evaluate verification error rates per group on embeddings.

    Parameters
    ----------
    embeddings
        ``(n, d)`` L2-normalised embeddings, one per acquired image.
    subjects
        ``n`` subject identifiers (pairs of one subject are genuine).
    labels
        ``n`` rows of demographic labels (same order); needed when ``config.by`` is set.
    config
        What to evaluate (default: overall only, at ``fmr=1e-3`` and ``fmr=1e-4``).
    failed_labels
        Label rows of images that failed to acquire (no face), for FTA per group.
    dataset_fingerprint, model_config
        Provenance stored in the run metadata.
    block_rows
        Rows per matrix product (tuning).

    Returns
    -------
    EvaluationReport

    Raises
    ------
    EvaluationError
        When there are no impostor pairs (fewer than two subjects), or a threshold is so
        loose that too many impostor pairs would have to be kept.
    ValueError
        On inconsistent inputs (shapes, missing labels).
    """
    cfg = config or EvaluationConfig()
    inp = _inputs(embeddings, subjects, labels, cfg)
    scores, scored = _score(inp, cfg, block_rows)
    cells = pair_cells(inp.fine, inp.subject_codes, cfg.by, cfg.multi_label, cfg.cross_group)
    counts = {"images": scores.n_images, "subjects": scores.n_subjects, "genuine_pairs": scores.n_genuine,
              "impostor_pairs": scores.n_impostor}
    return assemble_report(scored, cells, cfg, counts, dataset_fingerprint=dataset_fingerprint,
                           model_config=model_config, fta_rows=_fta_rows(inp, failed_labels, cfg))
