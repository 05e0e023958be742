"""Demographic error rates of a face-verification model (NIST FRVT Part 3 style).

The metric core takes plain arrays: an embeddings matrix, one subject id per image
and a table of labels per image (:func:`evaluate_embeddings`). A thin
:func:`evaluate_dataset` embeds a :class:`audit.datasets.Dataset` through the
engine first and counts images without a face as failures to acquire (FTA), per
group.

Rates are exact counts over *all* genuine and impostor pairs
(:mod:`audit.metrics`): ``false_non_match_rate`` (FNMR) over genuine pairs and
``false_match_rate`` (FMR) over impostor pairs. For every group of every grouping
(one column or an intersection such as ``sex x race``), impostors are compared
**within** the group (both people in it, as NIST does); with the ``combined``
label policy the cross-group cells are reported too. Intervals are 95% percentile
bootstrap intervals over subjects (:mod:`audit.bootstrap`). Cells with few pairs
or subjects are flagged ``low_count``, never hidden.

Thresholds are cosine distances (a pair matches iff ``1 - similarity <=
threshold``): the model's default, thresholds calibrated to an overall FMR
(``fmr=1e-3``) as exact order statistics, and any distance the user names.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from audit.bootstrap import percentile_interval, subject_weights
from audit.groups import FineCells, Group, MultiLabel, fine_cells, groups_for
from audit.metrics import (
    CellCounter,
    PairScores,
    ThresholdCalibration,
    calibrate_threshold,
    cell_pair_index,
    score_pairs,
)

__all__ = [
    "ThresholdSpec",
    "parse_threshold",
    "EvaluationConfig",
    "EvaluationReport",
    "GroupFrame",
    "FalseCandidateChance",
    "evaluate_embeddings",
    "evaluate_dataset",
    "calibrate",
    "Calibration",
    "eer_from_det",
    "EmbeddedDataset",
    "embed_dataset",
    "evaluate_embedded",
    "ten_fold_accuracy",
]

ThresholdSource = Literal["model_default", "calibrated", "user"]

#: Disparity band: a ratio outside it is flagged.
DISPARITY_BAND = (0.8, 1.25)


@dataclass(frozen=True)
class ThresholdSpec:
    """A decision threshold to evaluate at: a fixed distance or a target FMR to calibrate to."""

    name: str
    """Label in results, e.g. ``"default"``, ``"fmr=0.001"``, ``"0.07"``."""
    source: ThresholdSource
    """Where the threshold comes from."""
    distance: float | None = None
    """Cosine-distance threshold (``None`` until calibrated)."""
    target_fmr: float | None = None
    """For calibrated thresholds, the overall FMR to reach."""


def parse_threshold(text: str) -> ThresholdSpec:
    """Parse ``"fmr=1e-3"`` (calibrate) or ``"0.07"`` (a cosine distance).

    Raises
    ------
    ValueError
        If the text is neither form or out of range.
    """
    raw = text.strip()
    if raw.lower().startswith("fmr="):
        try:
            target = float(raw[4:])
        except ValueError as err:
            raise ValueError(f"bad target FMR in threshold {text!r}") from err
        if not 0.0 < target < 1.0:
            raise ValueError(f"target FMR must be in (0, 1), got {target}")
        return ThresholdSpec(name=f"fmr={target:g}", source="calibrated", target_fmr=target)
    try:
        distance = float(raw)
    except ValueError as err:
        raise ValueError(f"threshold {text!r} is neither 'fmr=<rate>' nor a cosine distance") from err
    if not math.isfinite(distance) or not -1.0 <= distance <= 2.0:
        raise ValueError(f"a cosine-distance threshold lies in [0, 2], got {distance}")
    return ThresholdSpec(name=f"{distance:g}", source="user", distance=distance)


def _default_thresholds() -> tuple[ThresholdSpec, ...]:
    return (parse_threshold("fmr=1e-3"), parse_threshold("fmr=1e-4"))


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how (results are in :class:`EvaluationReport`)."""

    by: tuple[tuple[str, ...], ...] = ()
    """Groupings: each a tuple of label columns (``("sex",)``, ``("sex", "race")``)."""
    thresholds: tuple[ThresholdSpec, ...] = field(default_factory=_default_thresholds)
    """Thresholds besides the model default."""
    default_threshold: float | None = None
    """The model's default distance threshold (reported as ``"default"``)."""
    multi_label: MultiLabel = "combined"
    """Policy for multi-valued labels (see :mod:`audit.groups`)."""
    cross_group: bool = True
    """Also report cross-group impostor cells (``combined`` policy only)."""
    bootstrap: int = 1000
    """Subject bootstrap resamples (0: no intervals)."""
    confidence: float = 0.95
    """Interval coverage."""
    seed: int = 0
    """Bootstrap seed."""
    min_genuine_pairs: int = 30
    """Fewer genuine pairs than this flags a cell ``low_count``."""
    min_impostor_pairs: int = 1000
    """Fewer impostor pairs than this flags a cell ``low_count``."""
    min_subjects: int = 10
    """Fewer subjects than this flags a cell ``low_count``."""
    hist_bins: int = 2000
    """Score histogram resolution over similarity [-1, 1]."""

    def resolved_thresholds(self) -> tuple[ThresholdSpec, ...]:
        """Return the model default (if any) followed by the other thresholds, without duplicates."""
        out: list[ThresholdSpec] = []
        if self.default_threshold is not None:
            out.append(ThresholdSpec("default", "model_default", float(self.default_threshold)))
        names = {t.name for t in out}
        for t in self.thresholds:
            if t.name not in names:
                out.append(t)
                names.add(t.name)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "by": [list(b) for b in self.by],
            "thresholds": [t.__dict__.copy() for t in self.thresholds],
            "default_threshold": self.default_threshold,
            "multi_label": self.multi_label,
            "cross_group": self.cross_group,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "seed": self.seed,
            "min_genuine_pairs": self.min_genuine_pairs,
            "min_impostor_pairs": self.min_impostor_pairs,
            "min_subjects": self.min_subjects,
            "hist_bins": self.hist_bins,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["by"] = tuple(tuple(b) for b in d.get("by", ()))
        d["thresholds"] = tuple(ThresholdSpec(**t) for t in d.get("thresholds", ()))
        return cls(**d)


@dataclass(frozen=True)
class _Stat:
    pairing: Literal["all", "within", "cross"]
    columns: tuple[str, ...]
    group: Group
    other: Group | None
    mask: np.ndarray  # (P,) bool over unordered fine-cell pairs
    images: int
    subjects: int


def _grouping_name(columns: Sequence[str]) -> str:
    return " x ".join(columns) if columns else "all"


def _build_stats(fine: FineCells, subject_codes: np.ndarray, config: EvaluationConfig) -> list[_Stat]:
    f = fine.n_cells
    pidx = cell_pair_index(f)
    n_p = f * (f + 1) // 2
    cell_images = np.bincount(fine.codes, minlength=f)
    subj_by_cell: list[set[int]] = [set() for _ in range(f)]
    for s, c in zip(subject_codes.tolist(), fine.codes.tolist(), strict=True):
        subj_by_cell[c].add(s)

    def within_mask(cells: Iterable[int]) -> np.ndarray:
        cs = sorted(cells)
        m = np.zeros(n_p, dtype=bool)
        for x in cs:
            for y in cs:
                m[pidx[x, y]] = True
        return m

    def members(cells: Iterable[int]) -> tuple[int, int]:
        cs = list(cells)
        subs: set[int] = set()
        for c in cs:
            subs |= subj_by_cell[c]
        return int(cell_images[cs].sum()), len(subs)

    everyone = Group(columns=(), values=(), cells=frozenset(range(f)))
    n_img, n_sub = members(everyone.cells)
    stats = [_Stat("all", (), everyone, None, np.ones(n_p, dtype=bool), n_img, n_sub)]
    for spec in config.by:
        groups = groups_for(fine, spec, config.multi_label)
        for g in groups:
            n_img, n_sub = members(g.cells)
            stats.append(_Stat("within", tuple(spec), g, None, within_mask(g.cells), n_img, n_sub))
        if config.cross_group and config.multi_label == "combined":
            for a_i, ga in enumerate(groups):
                for gb in groups[a_i + 1 :]:
                    m = np.zeros(n_p, dtype=bool)
                    for x in ga.cells:
                        for y in gb.cells:
                            m[pidx[x, y]] = True
                    n_img, n_sub = members(ga.cells | gb.cells)
                    stats.append(_Stat("cross", tuple(spec), ga, gb, m, n_img, n_sub))
    return stats


def _rates(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _clean(value: Any) -> Any:
    """Make a value JSON-safe (NaN and inf become None, numpy scalars plain)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def eer_from_det(fmr: np.ndarray, fnmr: np.ndarray) -> float:
    """Equal error rate from DET points ordered by increasing threshold strictness.

    FMR decreases and FNMR increases along the points; the EER is where they cross,
    linearly interpolated between the two points that bracket the crossing.
    """
    fmr = np.asarray(fmr, dtype=np.float64)
    fnmr = np.asarray(fnmr, dtype=np.float64)
    ok = ~(np.isnan(fmr) | np.isnan(fnmr))
    fmr, fnmr = fmr[ok], fnmr[ok]
    if fmr.size == 0:
        return math.nan
    diff = fmr - fnmr
    idx = np.flatnonzero(diff <= 0)
    if idx.size == 0:
        return float(fmr[-1] + fnmr[-1]) / 2.0
    k = int(idx[0])
    if k == 0:
        return float(fmr[0] + fnmr[0]) / 2.0
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    e0 = fmr[k - 1] + t * (fmr[k] - fmr[k - 1])
    e1 = fnmr[k - 1] + t * (fnmr[k] - fnmr[k - 1])
    return float((e0 + e1) / 2.0)


@dataclass(frozen=True)
class FalseCandidateChance:
    """Chance that a 1:N search returns at least one false candidate."""

    n_gallery: int
    """Gallery size N."""
    threshold: float
    """Distance threshold."""
    value: float
    """The chance (FPIR)."""
    method: Literal["measured", "estimate"]
    """``measured``: FPIR of non-mated searches in this evaluation at that gallery size;
    ``estimate``: ``1 - (1 - FMR)^N``, which assumes independent comparisons."""
    fmr: float
    """The pairwise FMR the estimate used (NaN when measured)."""


@dataclass(frozen=True)
class GroupFrame:
    """One metric table in the shape of fairlearn's ``MetricFrame`` (one grouping, one threshold)."""

    overall: pd.Series
    """Overall ``false_match_rate`` and ``false_non_match_rate`` (and counts)."""
    by_group: pd.DataFrame
    """One row per group: rates, intervals and counts (``genuine_pairs``, ``impostor_pairs``, ...)."""

    def difference(self) -> pd.Series:
        """``max - min`` over groups, per metric."""
        cols = ["false_match_rate", "false_non_match_rate"]
        return self.by_group[cols].max() - self.by_group[cols].min()

    def ratio(self) -> pd.Series:
        """``min / max`` over groups, per metric (fairlearn's convention; 1 is parity)."""
        cols = ["false_match_rate", "false_non_match_rate"]
        mx = self.by_group[cols].max()
        mn = self.by_group[cols].min()
        with np.errstate(divide="ignore", invalid="ignore"):
            return (mn / mx).where(mx > 0)


_TABLES = ("rates", "disparity", "det", "histograms", "fta", "identification", "calibrations")


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """The results of one evaluation run, as tidy tables.

    Each table is a tuple of JSON-ready row dicts; the methods return pandas DataFrames.
    """

    run: Mapping[str, Any]
    """Run metadata: ``run_id``, ``created``, ``dataset_fingerprint``, ``model_config``,
    ``code_version``, ``config``, ``label_policy``, counts."""
    rates: tuple[Mapping[str, Any], ...]
    disparity_rows: tuple[Mapping[str, Any], ...] = ()
    det_rows: tuple[Mapping[str, Any], ...] = ()
    histogram_rows: tuple[Mapping[str, Any], ...] = ()
    fta_rows: tuple[Mapping[str, Any], ...] = ()
    identification_rows: tuple[Mapping[str, Any], ...] = ()
    calibration_rows: tuple[Mapping[str, Any], ...] = ()

    # -- DataFrames
    def rates_frame(self) -> pd.DataFrame:
        """Per-group rates per threshold, with intervals and counts (one row per cell)."""
        return pd.DataFrame(list(self.rates))

    def disparity(self) -> pd.DataFrame:
        """Each group's FMR and FNMR relative to the best group, with intervals and flags."""
        return pd.DataFrame(list(self.disparity_rows))

    def det(self) -> pd.DataFrame:
        """DET points (FMR, FNMR by threshold) per group, at histogram resolution."""
        return pd.DataFrame(list(self.det_rows))

    def histograms(self) -> pd.DataFrame:
        """Genuine and impostor score counts per similarity bin, per group (non-empty bins)."""
        return pd.DataFrame(list(self.histogram_rows))

    def fta(self) -> pd.DataFrame:
        """Failures to acquire per group."""
        return pd.DataFrame(list(self.fta_rows))

    def identification(self) -> pd.DataFrame:
        """1:N results (rank-1, FNIR, FPIR) per probe group, if measured."""
        return pd.DataFrame(list(self.identification_rows))

    def calibrations(self) -> pd.DataFrame:
        """Calibrated thresholds with achieved FMR/FNMR."""
        return pd.DataFrame(list(self.calibration_rows))

    def thresholds(self) -> dict[str, float]:
        """Threshold name -> distance."""
        return {r["threshold_name"]: r["threshold"] for r in self.rates if r["pairing"] == "all"}

    # -- fairlearn-style view
    def frame(self, by: Sequence[str] | str, threshold: str) -> GroupFrame:
        """Return a :class:`GroupFrame` for one grouping (within-group cells) at one named threshold.

        Raises
        ------
        KeyError
            If the grouping or threshold was not evaluated.
        """
        cols = (by,) if isinstance(by, str) else tuple(by)
        df = self.rates_frame()
        if threshold not in set(df["threshold_name"]):
            raise KeyError(f"threshold {threshold!r} not evaluated; have {sorted(set(df['threshold_name']))}")
        name = _grouping_name(cols)
        sel = df[(df["pairing"] == "within") & (df["grouping"] == name) & (df["threshold_name"] == threshold)]
        if sel.empty:
            raise KeyError(f"grouping {name!r} not evaluated")
        over = df[(df["pairing"] == "all") & (df["threshold_name"] == threshold)].iloc[0]
        keep = [
            "false_match_rate",
            "false_non_match_rate",
            "fmr_lo",
            "fmr_hi",
            "fnmr_lo",
            "fnmr_hi",
            "genuine_pairs",
            "impostor_pairs",
            "subjects",
            "images",
            "low_count",
        ]
        by_group = sel.set_index("group_name")[keep]
        return GroupFrame(overall=over[keep], by_group=by_group)

    # -- what a score means
    def false_match_rate_at(self, similarity: float, group: Mapping[str, str] | None = None) -> float:
        """Fraction of impostor pairs scoring at least ``similarity`` (overall or within a group).

        Read from the score histogram, so exact to its bin width
        (``run["hist_bin_width"]``): the bin holding ``similarity`` counts as at or above it.

        Raises
        ------
        KeyError
            If the group has no histogram in this report.
        """
        target = dict(group or {})
        rows = [r for r in self.histogram_rows if dict(r["group"]) == target]
        if not rows:
            raise KeyError(f"no score histogram for group {target}")
        total = sum(r["impostor"] for r in rows)
        above = sum(r["impostor"] for r in rows if r["bin_hi"] > similarity)
        return above / total if total else math.nan

    def chance_of_false_candidate(self, n_gallery: int, threshold: float) -> FalseCandidateChance:
        """Chance that a search of ``n_gallery`` faces returns >= 1 false candidate at ``threshold``.

        The measured non-mated FPIR when this report has identification results for that
        gallery size and threshold; else ``1 - (1 - FMR)^N`` with the overall pairwise FMR
        at that threshold, labelled an estimate (it assumes independent comparisons, which
        under-states the chance for look-alike-rich galleries).
        """
        for r in self.identification_rows:
            if (
                r.get("gallery_size") == n_gallery
                and r.get("threshold") is not None
                and math.isclose(r["threshold"], threshold, rel_tol=0, abs_tol=1e-12)
                and not r["group"]
                and r.get("fpir") is not None
            ):
                return FalseCandidateChance(n_gallery, threshold, float(r["fpir"]), "measured", math.nan)
        fmr = math.nan
        for r in self.rates:
            if r["pairing"] == "all" and math.isclose(r["threshold"], threshold, rel_tol=0, abs_tol=1e-12):
                fmr = float(r["fmr"])
        if math.isnan(fmr):
            fmr = self.false_match_rate_at(1.0 - threshold)
        value = 1.0 - (1.0 - fmr) ** n_gallery
        return FalseCandidateChance(n_gallery, threshold, value, "estimate", fmr)

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as ``None``)."""
        out: dict[str, Any] = {"run": _clean(dict(self.run))}
        out["rates"] = _clean([dict(r) for r in self.rates])
        for name, rows in (
            ("disparity", self.disparity_rows),
            ("det", self.det_rows),
            ("histograms", self.histogram_rows),
            ("fta", self.fta_rows),
            ("identification", self.identification_rows),
            ("calibrations", self.calibration_rows),
        ):
            out[name] = _clean([dict(r) for r in rows])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Inverse of :meth:`to_dict`."""

        def rows(key: str) -> tuple[Mapping[str, Any], ...]:
            return tuple(dict(r) for r in data.get(key, []))

        return cls(
            run=dict(data["run"]),
            rates=rows("rates"),
            disparity_rows=rows("disparity"),
            det_rows=rows("det"),
            histogram_rows=rows("histograms"),
            fta_rows=rows("fta"),
            identification_rows=rows("identification"),
            calibration_rows=rows("calibrations"),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationReport):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(), sort_keys=True)

    __hash__ = None  # type: ignore[assignment]

    def json_rows(self) -> list[dict[str, Any]]:
        """Return the CLI's JSON rows: one per cell and threshold (``group``, ``threshold``, counts, rates, bounds)."""
        return cast(list[dict[str, Any]], _clean([dict(r) for r in self.rates]))

    def with_identification(self, rows: Iterable[Mapping[str, Any]]) -> EvaluationReport:
        """Return a copy with identification rows added."""
        return replace(self, identification_rows=self.identification_rows + tuple(_clean(dict(r)) for r in rows))


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


def _fta_rows(
    labels_all: pd.DataFrame, failed: np.ndarray, config: EvaluationConfig, columns: Sequence[str]
) -> list[dict[str, Any]]:
    if not len(labels_all):
        return []
    fine = fine_cells(labels_all, columns)
    out = [
        {
            "group": {},
            "group_name": "all",
            "grouping": "all",
            "images": int(len(failed)),
            "failures": int(failed.sum()),
            "fta_rate": float(failed.mean()) if len(failed) else math.nan,
        }
    ]
    for spec in config.by:
        for g in groups_for(fine, spec, config.multi_label):
            m = np.isin(fine.codes, list(g.cells))
            n = int(m.sum())
            k = int(failed[m].sum())
            out.append(
                {
                    "group": g.as_dict(),
                    "group_name": g.name,
                    "grouping": _grouping_name(spec),
                    "images": n,
                    "failures": k,
                    "fta_rate": k / n if n else math.nan,
                }
            )
    return out


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
    ValueError
        On inconsistent inputs, or when no impostor pairs exist.
    """
    cfg = config or EvaluationConfig()
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
    subject_codes, subject_names = pd.factorize(pd.Series(subj_arr), sort=True)
    subject_codes = np.asarray(subject_codes, dtype=np.int64)
    fine = fine_cells(labels, columns)
    sizes = np.bincount(subject_codes, minlength=len(subject_names))
    n_imp = n * (n - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())
    if n_imp <= 0:
        raise ValueError("no impostor pairs: an evaluation needs images of at least two subjects")

    specs = cfg.resolved_thresholds()
    targets = [t.target_fmr for t in specs if t.source == "calibrated" and t.target_fmr is not None]
    keep_top = int(math.floor(max(targets) * n_imp * (1 + 1e-12))) + 1 if targets else 0
    fixed = [float(t.distance) for t in specs if t.distance is not None]
    scores = score_pairs(
        x,
        subject_codes,
        fine.codes,
        subjects=[str(s) for s in subject_names],
        keep_thresholds=fixed,
        keep_top=keep_top,
        hist_bins=cfg.hist_bins,
        block_rows=block_rows,
    )
    resolved: list[ThresholdSpec] = []
    calibrations: list[ThresholdCalibration] = []
    for t in specs:
        if t.source == "calibrated" and t.target_fmr is not None:
            cal = calibrate_threshold(scores, t.target_fmr)
            calibrations.append(cal)
            resolved.append(ThresholdSpec(t.name, t.source, cal.threshold, t.target_fmr))
        else:
            resolved.append(t)
    if not resolved:
        raise ValueError("no thresholds to evaluate")
    distances = [float(t.distance) for t in resolved if t.distance is not None]
    counter = CellCounter(scores, distances)
    stats = _build_stats(fine, subject_codes, cfg)
    agg = np.stack([s.mask for s in stats], axis=1).astype(np.float64)  # (P, nstat)

    def reduce(
        cc_gen: np.ndarray, cc_fnm: np.ndarray, cc_imp: np.ndarray, cc_fm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        gen = cc_gen @ agg  # (R, nstat)
        imp = cc_imp @ agg
        fnm = np.einsum("rpk,ps->rsk", cc_fnm, agg)
        fm = np.einsum("rpk,ps->rsk", cc_fm, agg)
        return gen, fnm, imp, fm

    point = counter.counts()
    gen, fnm, imp, fm = reduce(point.genuine, point.false_non_matches, point.impostor, point.false_matches)
    fnmr = _rates(fnm[0], gen[0][:, None])
    fmr = _rates(fm[0], imp[0][:, None])

    boot_fnmr: list[np.ndarray] = []
    boot_fmr: list[np.ndarray] = []
    if cfg.bootstrap > 0:
        for w in subject_weights(scores.n_subjects, cfg.bootstrap, seed=cfg.seed):
            cc = counter.counts(w)
            bg, bfn, bi, bfm = reduce(cc.genuine, cc.false_non_matches, cc.impostor, cc.false_matches)
            boot_fnmr.append(_rates(bfn, bg[:, :, None]))
            boot_fmr.append(_rates(bfm, bi[:, :, None]))
    if boot_fnmr:
        bfnmr = np.concatenate(boot_fnmr)
        bfmr = np.concatenate(boot_fmr)
        fnmr_lo, fnmr_hi = percentile_interval(bfnmr, cfg.confidence)
        fmr_lo, fmr_hi = percentile_interval(bfmr, cfg.confidence)
    else:
        bfnmr = bfmr = np.zeros((0,) + fnmr.shape)
        fnmr_lo = fnmr_hi = fmr_lo = fmr_hi = np.full(fnmr.shape, np.nan)

    rate_rows: list[dict[str, Any]] = []
    for si, s in enumerate(stats):
        low = (
            (s.pairing != "cross" and gen[0, si] < cfg.min_genuine_pairs)
            or imp[0, si] < cfg.min_impostor_pairs
            or s.subjects < cfg.min_subjects
        )
        for ki, t in enumerate(resolved):
            row: dict[str, Any] = {
                "pairing": s.pairing,
                "grouping": _grouping_name(s.columns),
                "group": s.group.as_dict(),
                "group_name": s.group.name,
                "other_group": s.other.as_dict() if s.other is not None else None,
                "other_group_name": s.other.name if s.other is not None else None,
                "threshold_name": t.name,
                "threshold_source": t.source,
                "target_fmr": t.target_fmr,
                "threshold": float(t.distance) if t.distance is not None else math.nan,
                "similarity_threshold": 1.0 - float(t.distance) if t.distance is not None else math.nan,
                "genuine_pairs": int(round(gen[0, si])),
                "false_non_matches": int(round(fnm[0, si, ki])),
                "fnmr": float(fnmr[si, ki]),
                "fnmr_lo": float(fnmr_lo[si, ki]),
                "fnmr_hi": float(fnmr_hi[si, ki]),
                "impostor_pairs": int(round(imp[0, si])),
                "false_matches": int(round(fm[0, si, ki])),
                "fmr": float(fmr[si, ki]),
                "fmr_lo": float(fmr_lo[si, ki]),
                "fmr_hi": float(fmr_hi[si, ki]),
                "subjects": s.subjects,
                "images": s.images,
                "low_count": bool(low),
            }
            _zero_event_bounds(row, s.subjects, cfg)
            row["false_match_rate"] = row["fmr"]
            row["false_non_match_rate"] = row["fnmr"]
            rate_rows.append(row)

    disparity = _disparity_rows(stats, resolved, fmr, fnmr, bfmr, bfnmr, gen[0], imp[0], cfg)
    det_rows, hist_rows, eers = _det_and_histograms(scores, stats)
    for r in rate_rows:
        key = (r["grouping"], r["group_name"]) if r["pairing"] != "cross" else None
        r["eer"] = eers.get(key, math.nan) if key else math.nan

    fta: list[dict[str, Any]] = []
    if failed_labels is not None:
        all_labels = (
            pd.concat([labels[columns], failed_labels.reset_index(drop=True)[columns]], ignore_index=True)
            if columns
            else pd.DataFrame(index=range(n + len(failed_labels)))
        )
        failed = np.concatenate([np.zeros(n, dtype=bool), np.ones(len(failed_labels), dtype=bool)])
        fta = _fta_rows(all_labels, failed, cfg, columns)

    cal_rows = [dict(c.__dict__) for c in calibrations]
    run = {
        "run_id": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(),
        "dataset_fingerprint": dataset_fingerprint,
        "model_config": dict(model_config or {}),
        "code_version": code_version(),
        "python": platform.python_version(),
        "config": cfg.to_dict(),
        "label_policy": {
            "missing": "kept as 'unknown'",
            "multi_valued": cfg.multi_label,
        },
        "images": n,
        "subjects": scores.n_subjects,
        "genuine_pairs": scores.n_genuine,
        "impostor_pairs": scores.n_impostor,
        "score": "cosine similarity of embeddings quantised to integers (exact counts)",
        "threshold_convention": "cosine distance; a pair matches iff 1 - similarity <= threshold",
        "hist_bin_width": 2.0 / scores.hist_bins if scores.hist_bins else None,
        "interval": f"{cfg.confidence:.0%} percentile bootstrap over subjects, {cfg.bootstrap} resamples",
    }
    return EvaluationReport(
        run=_clean(run),
        rates=tuple(_clean(r) for r in rate_rows),
        disparity_rows=tuple(_clean(r) for r in disparity),
        det_rows=tuple(_clean(r) for r in det_rows),
        histogram_rows=tuple(_clean(r) for r in hist_rows),
        fta_rows=tuple(_clean(r) for r in fta),
        calibration_rows=tuple(_clean(r) for r in cal_rows),
    )


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


def _disparity_rows(
    stats: Sequence[_Stat],
    thresholds: Sequence[ThresholdSpec],
    fmr: np.ndarray,
    fnmr: np.ndarray,
    bfmr: np.ndarray,
    bfnmr: np.ndarray,
    gen: np.ndarray,
    imp: np.ndarray,
    cfg: EvaluationConfig,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    lo_band, hi_band = DISPARITY_BAND

    def flag(value: float) -> bool | None:
        return None if math.isnan(value) else bool(not (lo_band <= value <= hi_band))

    for spec in cfg.by:
        idx = [i for i, s in enumerate(stats) if s.pairing == "within" and s.columns == tuple(spec)]
        low = {
            i: bool(
                stats[i].subjects < cfg.min_subjects
                or gen[i] < cfg.min_genuine_pairs
                or imp[i] < cfg.min_impostor_pairs
            )
            for i in idx
        }
        for ki, t in enumerate(thresholds):
            for metric, point, draws, den in (
                ("false_match_rate", fmr, bfmr, imp),
                ("false_non_match_rate", fnmr, bfnmr, gen),
            ):
                rel_idx = [i for i in idx if den[i] > 0 and not math.isnan(point[i, ki])]
                if not rel_idx:
                    continue
                vals = np.array([point[i, ki] for i in rel_idx])
                # the reference: the lowest non-zero rate among groups with enough data
                pool = [j for j, i in enumerate(rel_idx) if vals[j] > 0 and not low[i]] or [
                    j for j, i in enumerate(rel_idx) if vals[j] > 0
                ]
                # max/min over groups with enough data (all groups if fewer than two have)
                mm_pool = [j for j, i in enumerate(rel_idx) if not low[i]]
                if len(mm_pool) < 2:
                    mm_pool = list(range(len(rel_idx)))
                with np.errstate(divide="ignore", invalid="ignore"):
                    d = draws[:, rel_idx, ki] if draws.size else np.zeros((0, len(rel_idx)))
                    if pool:
                        jb = pool[int(np.argmin(vals[pool]))]
                        best_name: str | None = stats[rel_idx[jb]].group.name
                        rel_point = vals / vals[jb]
                        rel_draws = d / d[:, [jb]]
                    else:
                        best_name = None
                        rel_point = np.full(vals.shape, np.nan)
                        rel_draws = np.full(d.shape, np.nan)
                    sub = vals[mm_pool]
                    mm_point = float(sub.max() / sub.min()) if sub.max() > 0 else math.nan
                    dm = d[:, mm_pool]
                    mm_draws = _max_min_ratio(dm)
                rel_lo, rel_hi = percentile_interval(rel_draws, cfg.confidence)
                mm_lo, mm_hi = percentile_interval(mm_draws[:, None], cfg.confidence)
                for j, i in enumerate(rel_idx):
                    rp = float(rel_point[j])
                    out.append(
                        {
                            "grouping": _grouping_name(spec),
                            "group": stats[i].group.as_dict(),
                            "group_name": stats[i].group.name,
                            "best_group_name": best_name,
                            "threshold_name": t.name,
                            "threshold": t.distance,
                            "metric": metric,
                            "rate": float(vals[j]),
                            "relative_to_best": rp,
                            "relative_lo": float(rel_lo[j]),
                            "relative_hi": float(rel_hi[j]),
                            "max_min_ratio": mm_point,
                            "max_min_ratio_lo": float(mm_lo[0]),
                            "max_min_ratio_hi": float(mm_hi[0]),
                            "flag": flag(rp),
                            "max_min_flag": flag(mm_point),
                            "low_count": low[i],
                        }
                    )
    return out


def _det_and_histograms(
    scores: PairScores, stats: Sequence[_Stat], max_det_points: int = 400
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], float]]:
    det: list[dict[str, Any]] = []
    hist: list[dict[str, Any]] = []
    eers: dict[tuple[str, str], float] = {}
    nb = scores.hist_bins
    if not nb:
        return det, hist, eers
    edges = scores.hist_edges()
    for s in stats:
        if s.pairing == "cross":
            continue
        ih = scores.impostor_hist[s.mask].sum(axis=0)
        gh = scores.genuine_hist[s.mask].sum(axis=0)
        ni, ng = int(ih.sum()), int(gh.sum())
        grouping = _grouping_name(s.columns)
        for b in np.flatnonzero((ih > 0) | (gh > 0)):
            hist.append(
                {
                    "grouping": grouping,
                    "group": s.group.as_dict(),
                    "group_name": s.group.name,
                    "bin_lo": float(edges[b]),
                    "bin_hi": float(edges[b + 1]),
                    "genuine": int(gh[b]),
                    "impostor": int(ih[b]),
                }
            )
        if ni == 0 or ng == 0:
            eers[(grouping, s.group.name)] = math.nan
            continue
        # threshold at the lower edge of bin b: impostors in bins >= b match, genuines below b do not
        imp_at = np.cumsum(ih[::-1])[::-1] / ni
        gen_miss = np.concatenate([[0], np.cumsum(gh)[:-1]]) / ng
        nz = np.flatnonzero((ih > 0) | (gh > 0))
        lo_b, hi_b = int(nz.min()), int(nz.max()) + 1
        pts = range(lo_b, min(hi_b + 1, nb))
        fm_pts = np.array([imp_at[b] for b in pts])
        fn_pts = np.array([gen_miss[b] for b in pts])
        eers[(grouping, s.group.name)] = eer_from_det(fm_pts, fn_pts)
        # keep the points where the curve moves, thinned to at most max_det_points per group
        bins = np.array(list(pts))
        moved = np.concatenate([[True], (np.diff(fm_pts) != 0) | (np.diff(fn_pts) != 0)])
        sel = np.flatnonzero(moved)
        if sel.size > max_det_points:
            sel = sel[np.unique(np.linspace(0, sel.size - 1, max_det_points).round().astype(int))]
        for b, a, c in zip(bins[sel], fm_pts[sel], fn_pts[sel], strict=True):
            det.append(
                {
                    "grouping": grouping,
                    "group": s.group.as_dict(),
                    "group_name": s.group.name,
                    "similarity": float(edges[b]),
                    "threshold": 1.0 - float(edges[b]),
                    "fmr": float(a),
                    "fnmr": float(c),
                }
            )
    return det, hist, eers


@dataclass(frozen=True)
class Calibration:
    """A threshold calibrated to a target FMR, with what it achieves overall and per group."""

    result: ThresholdCalibration
    """Threshold, achieved FMR and FNMR on the calibration set."""
    per_group: tuple[Mapping[str, Any], ...]
    """Per-group rows at that threshold (``group``, ``fmr``, ``fnmr``, counts, intervals)."""
    dataset_fingerprint: str | None
    """Fingerprint of the calibration data."""
    created: str
    """UTC time of the calibration."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready provenance (issue 5 stores it with the model config)."""
        return cast(
            dict[str, Any],
            _clean(
                {
                    **self.result.__dict__,
                    "per_group": [dict(r) for r in self.per_group],
                    "dataset_fingerprint": self.dataset_fingerprint,
                    "created": self.created,
                }
            ),
        )


def calibrate(
    embeddings: np.ndarray,
    subjects: Sequence[Any] | np.ndarray,
    target_fmr: float,
    labels: pd.DataFrame | None = None,
    *,
    by: Sequence[Sequence[str]] = (),
    multi_label: MultiLabel = "combined",
    bootstrap: int = 0,
    dataset_fingerprint: str | None = None,
) -> Calibration:
    """Calibrate a distance threshold to an overall ``target_fmr`` on these embeddings.

    Parameters
    ----------
    embeddings, subjects, labels
        As for :func:`evaluate_embeddings`.
    target_fmr
        Overall false-match rate to reach (exact order statistic of impostor scores).
    by
        Groupings for the per-group FMR/FNMR at the calibrated threshold.
    multi_label
        Label policy.
    bootstrap
        Resamples for per-group intervals (0: none).
    dataset_fingerprint
        Provenance.

    Raises
    ------
    ValueError
        On bad inputs or an out-of-range target.
    """
    spec = parse_threshold(f"fmr={target_fmr!r}")
    cfg = EvaluationConfig(
        by=tuple(tuple(b) for b in by),
        thresholds=(spec,),
        multi_label=multi_label,
        bootstrap=bootstrap,
        cross_group=False,
        hist_bins=16,
    )
    report = evaluate_embeddings(embeddings, subjects, labels, cfg, dataset_fingerprint=dataset_fingerprint)
    cal = report.calibration_rows[0]
    result = ThresholdCalibration(**{k: cal[k] for k in ThresholdCalibration.__dataclass_fields__})
    keep = (
        "pairing",
        "grouping",
        "group",
        "group_name",
        "threshold",
        "genuine_pairs",
        "impostor_pairs",
        "false_matches",
        "false_non_matches",
        "fmr",
        "fnmr",
        "fmr_lo",
        "fmr_hi",
        "fnmr_lo",
        "fnmr_hi",
        "low_count",
    )
    rows = tuple({k: r[k] for k in keep} for r in report.rates)
    return Calibration(
        result=result, per_group=rows, dataset_fingerprint=dataset_fingerprint, created=str(report.run["created"])
    )


@dataclass(frozen=True, eq=False)
class EmbeddedDataset:
    """A dataset's images through an engine: embeddings of acquired images and the failures."""

    dataset: Any
    """The :class:`audit.datasets.Dataset`."""
    embeddings: np.ndarray
    """``(n_ok, d)`` float32 embeddings of the acquired images, in table order."""
    ok: np.ndarray
    """``(n,)`` bool: whether each table row was acquired."""
    failure_codes: tuple[str, ...]
    """Failure code per failed row (``"no_face"``, ``"unreadable_image"`` ...), in table order."""
    model_config: Mapping[str, Any]
    """The engine's ``config.to_dict()`` (empty if it has none)."""

    @property
    def table(self) -> pd.DataFrame:
        """Rows of acquired images."""
        return self.dataset.table.loc[self.ok].reset_index(drop=True)

    @property
    def failed_table(self) -> pd.DataFrame:
        """Rows of images that failed to acquire."""
        return self.dataset.table.loc[~self.ok].reset_index(drop=True)


def embed_dataset(engine: Any, dataset: Any, **embed_kwargs: Any) -> EmbeddedDataset:
    """Embed every image of ``dataset`` with ``engine.embed_batch`` (extra arguments passed on).

    Parameters
    ----------
    engine
        An object with ``embed_batch(paths, **kw) -> BatchResult`` (``.embeddings``: path ->
        embedding with ``.vector``; ``.failures``: items with ``.image`` and ``.code``) and
        optionally ``.config.to_dict()``.
    dataset
        An :class:`audit.datasets.Dataset`.
    **embed_kwargs
        E.g. ``cache=`` and ``workers=`` for :meth:`core.engine.Engine.embed_batch`.
    """
    paths = [str(p) for p in dataset.paths()]
    batch = engine.embed_batch(paths, **embed_kwargs)
    vectors: dict[str, Any] = {str(k): v for k, v in batch.embeddings.items()}
    codes = {str(f.image): str(getattr(f, "code", "failure")) for f in batch.failures}
    ok = np.array([p in vectors for p in paths], dtype=bool)
    dim = len(next(iter(vectors.values())).vector) if vectors else 0
    emb = (
        np.stack([np.asarray(vectors[p].vector, dtype=np.float32) for p in paths if p in vectors])
        if vectors
        else np.zeros((0, dim), dtype=np.float32)
    )
    engine_config = getattr(engine, "config", None)
    model_config = (
        dict(engine_config.to_dict()) if engine_config is not None and hasattr(engine_config, "to_dict") else {}
    )
    return EmbeddedDataset(
        dataset=dataset,
        embeddings=emb,
        ok=ok,
        failure_codes=tuple(codes.get(p, "failure") for p, o in zip(paths, ok, strict=True) if not o),
        model_config=model_config,
    )


def evaluate_embedded(embedded: EmbeddedDataset, config: EvaluationConfig | None = None) -> EvaluationReport:
    """Evaluate an :class:`EmbeddedDataset` (FTA per group from its failures).

    The model config's ``threshold`` becomes the ``default`` threshold when the
    evaluation config names none.
    """
    cfg = config or EvaluationConfig()
    if cfg.default_threshold is None:
        default = embedded.model_config.get("threshold")
        if isinstance(default, int | float):
            cfg = EvaluationConfig(**{**cfg.__dict__, "default_threshold": float(default)})
    ds = embedded.dataset
    cols = list(ds.label_columns)
    return evaluate_embeddings(
        embedded.embeddings,
        embedded.table[ds.subject_column].tolist(),
        embedded.table[cols],
        cfg,
        failed_labels=embedded.failed_table[cols],
        dataset_fingerprint=ds.fingerprint,
        model_config=embedded.model_config,
    )


def evaluate_dataset(
    engine: Any,
    dataset: Any,
    config: EvaluationConfig | None = None,
    **embed_kwargs: Any,
) -> EvaluationReport:
    """Embed every image of ``dataset`` through ``engine`` and evaluate.

    Parameters
    ----------
    engine
        See :func:`embed_dataset`.
    dataset
        An :class:`audit.datasets.Dataset`.
    config
        What to evaluate; the engine config's threshold is the ``default`` when the config has none.
    **embed_kwargs
        Passed to ``engine.embed_batch`` (``cache=``, ``workers=``).

    Returns
    -------
    EvaluationReport
        With FTA per group from the engine's failures.
    """
    return evaluate_embedded(embed_dataset(engine, dataset, **embed_kwargs), config)


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """LFW protocol accuracy: per fold, the threshold maximising accuracy on the other folds.

    Parameters
    ----------
    distances
        Cosine distance per pair (``inf`` for a pair with an image that failed to
        acquire: it is decided "no match").
    same
        Whether each pair is matched.
    folds
        Fold number per pair.

    Returns
    -------
    dict
        ``accuracy`` (mean over folds), ``accuracy_std``, ``fold_accuracies``, ``thresholds``.
    """
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    f = np.asarray(folds)
    accs: list[float] = []
    ths: list[float] = []
    for fold in np.unique(f):
        train = f != fold
        dt, yt = d[train], y[train]
        finite = np.unique(dt[np.isfinite(dt)])
        cands = np.concatenate(
            [
                [-np.inf],
                (finite[:-1] + finite[1:]) / 2.0 if finite.size > 1 else finite,
                finite[-1:] if finite.size else [],
            ]
        )
        order = np.argsort(dt, kind="stable")
        ds_, ys_ = dt[order], yt[order]
        pos_cum = np.concatenate([[0], np.cumsum(ys_)])
        k = np.searchsorted(ds_, cands, side="right")  # pairs called "match" at each candidate
        correct = pos_cum[k] + ((~ys_).sum() - (k - pos_cum[k]))
        best = cands[int(np.argmax(correct))]
        test = ~train
        pred = d[test] <= best
        accs.append(float(np.mean(pred == y[test])))
        ths.append(float(best))
    return {
        "accuracy": float(np.mean(accs)) if accs else math.nan,
        "accuracy_std": float(np.std(accs)) if accs else math.nan,
        "fold_accuracies": accs,
        "thresholds": ths,
    }


def ten_fold_accuracy_both_found(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """LFW protocol accuracy over the pairs whose two images were both acquired.

    The companion of :func:`ten_fold_accuracy`, which scores a pair with an image
    that failed to acquire as "no match": reporting both separates failure to
    acquire from recognition error. Same folds and threshold rule, on the pairs
    with a finite distance only.

    Parameters
    ----------
    distances
        Cosine distance per pair, ``inf`` where an image failed to acquire.
    same
        Whether each pair is matched.
    folds
        Fold number per pair.

    Returns
    -------
    dict
        What :func:`ten_fold_accuracy` returns, computed on the both-found pairs, plus
        ``pairs`` (both-found pairs counted) and ``pairs_excluded`` (pairs left out).
    """
    d = np.asarray(distances, dtype=np.float64)
    found = np.isfinite(d)
    out = ten_fold_accuracy(d[found], np.asarray(same, dtype=bool)[found], np.asarray(folds)[found])
    out["pairs"] = int(found.sum())
    out["pairs_excluded"] = int((~found).sum())
    return out


def _max_min_ratio(draws: np.ndarray) -> np.ndarray:
    """Per bootstrap draw (row), max/min over groups ignoring NaN: inf when only the min is 0, NaN when undefined."""
    out = np.full(draws.shape[0], np.nan)
    if draws.size == 0:
        return out
    defined = ~np.isnan(draws).all(axis=1)
    if defined.any():
        hi = np.nanmax(draws[defined], axis=1)
        lo = np.nanmin(draws[defined], axis=1)
        ratio = np.full(hi.shape, np.nan)
        np.divide(hi, lo, out=ratio, where=lo > 0)
        ratio[(lo == 0) & (hi > 0)] = np.inf
        out[defined] = ratio
    return out
