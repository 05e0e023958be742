"""The results of one evaluation run: :class:`EvaluationReport` and its views.

A report is run metadata plus tidy tables, each a tuple of JSON-ready row dicts
(NaN stored as ``None``): ``rates`` (per cell and threshold, with intervals and the
threshold's margin), ``disparity_rows``, ``inequity_rows``, ``det_rows``,
``histogram_rows``, ``fta_rows``, ``identification_rows``, ``calibration_rows`` and
``lfw_rows`` (the LFW protocol's per-group rates on its pairs; its 10-fold accuracy is
in the run metadata under ``"lfw"``, :meth:`EvaluationReport.with_lfw`). Runs stored
before ``lfw_rows`` kept those rows in ``run["lfw"]["pairs"]``: :meth:`lfw_pair_rows`
reads either. Methods return
pandas DataFrames; :meth:`EvaluationReport.frame` gives a fairlearn-style
:class:`GroupFrame`, :meth:`EvaluationReport.chance_of_false_candidate` what a
1:N search at a gallery size risks (:class:`FalseCandidateChance`).
``to_dict``/``from_dict`` round-trip through JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from audit.evaluation.config import threshold_kind
from audit.evaluation.groups import grouping_name

__all__ = ["EvaluationReport", "FalseCandidateChance", "GroupFrame", "json_safe", "upgrade_rate_rows"]


def json_safe(value: Any) -> Any:
    """Make a value JSON-safe (NaN and inf become None, numpy scalars plain, tuples lists)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def upgrade_rate_rows(
    rows: Iterable[Mapping[str, Any]], model_config: Mapping[str, Any] | None
) -> tuple[dict[str, Any], ...]:
    """Rate rows in the one threshold-source vocabulary (stored runs may say ``"model_default"``)."""
    out = []
    for r in rows:
        row = dict(r)
        if row.get("threshold_source") is not None:
            row["threshold_source"] = threshold_kind(str(row["threshold_source"]), model_config)
        out.append(row)
    return tuple(out)


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


_FRAME_COLUMNS = [
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


_TABLES = (
    ("disparity", "disparity_rows"),
    ("det", "det_rows"),
    ("histograms", "histogram_rows"),
    ("fta", "fta_rows"),
    ("identification", "identification_rows"),
    ("calibrations", "calibration_rows"),
    ("inequity", "inequity_rows"),
    ("lfw_pairs", "lfw_rows"),
)


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """The results of one evaluation run, as tidy tables.

    Each table is a tuple of JSON-ready row dicts; the methods return pandas DataFrames.
    """

    run: Mapping[str, Any]
    """Run metadata: ``run_id``, ``created``, ``dataset_fingerprint``, ``model_config``,
    ``code_version``, ``config``, ``label_policy``, counts, and ``lfw`` when measured."""
    rates: tuple[Mapping[str, Any], ...]
    """Per cell and threshold: counts, FMR/FNMR with intervals, ``low_count``, EER."""
    disparity_rows: tuple[Mapping[str, Any], ...] = ()
    """Each group's rates relative to the best group (:mod:`audit.evaluation.disparity`)."""
    det_rows: tuple[Mapping[str, Any], ...] = ()
    """DET points per group (:mod:`audit.evaluation.curves`)."""
    histogram_rows: tuple[Mapping[str, Any], ...] = ()
    """Genuine and impostor score counts per bin and group."""
    fta_rows: tuple[Mapping[str, Any], ...] = ()
    """Failures to acquire per group."""
    identification_rows: tuple[Mapping[str, Any], ...] = ()
    """1:N rates per probe group and threshold (:mod:`audit.evaluation.identification`)."""
    calibration_rows: tuple[Mapping[str, Any], ...] = ()
    """Thresholds calibrated on this data, with what they achieve."""
    inequity_rows: tuple[Mapping[str, Any], ...] = ()
    """Inequity measures per grouping and threshold (:mod:`audit.evaluation.inequity`)."""
    lfw_rows: tuple[Mapping[str, Any], ...] = ()
    """The LFW protocol's per-group rows (:meth:`lfw_pair_rows` also reads older runs' copies)."""
    _frames: dict[Any, pd.DataFrame] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Frames built from the rows, once per report (the rows never change); handed out as copies."""

    def built(self, key: Any, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """Return a copy of the frame ``build`` makes of this report, built once per ``key`` (the report never changes).

        A page that reads one run many times over (the Demographic performance page's charts,
        findings and tables) pays for each frame once; each caller gets its own copy to change.
        """
        made = self._frames.get(key)
        if made is None:
            made = self._frames.setdefault(key, build())
        return made.copy()

    # -- DataFrames
    def rates_frame(self) -> pd.DataFrame:
        """Per-group rates per threshold, with intervals and counts (one row per cell)."""
        return self.built("rates_frame", lambda: pd.DataFrame(list(self.rates)))

    def disparity(self) -> pd.DataFrame:
        """Each group's FMR and FNMR relative to the best group, with intervals and flags."""
        return self.built("disparity", lambda: pd.DataFrame(list(self.disparity_rows)))

    def inequity(self) -> pd.DataFrame:
        """Inequity measures per grouping and threshold (max/min, max/geometric mean, Gini, GARBE, FDR)."""
        return self.built("inequity", lambda: pd.DataFrame(list(self.inequity_rows)))

    def det(self) -> pd.DataFrame:
        """DET points (FMR, FNMR by threshold) per group, at histogram resolution."""
        return self.built("det", lambda: pd.DataFrame(list(self.det_rows)))

    def histograms(self) -> pd.DataFrame:
        """Genuine and impostor score counts per similarity bin, per group (non-empty bins)."""
        return self.built("histograms", lambda: pd.DataFrame(list(self.histogram_rows)))

    def fta(self) -> pd.DataFrame:
        """Failures to acquire per group."""
        return pd.DataFrame(list(self.fta_rows))

    def identification(self) -> pd.DataFrame:
        """1:N results (rank-1, FNIR, FPIR) per probe group, if measured."""
        return self.built("identification", lambda: pd.DataFrame(list(self.identification_rows)))

    def calibrations(self) -> pd.DataFrame:
        """Calibrated thresholds with achieved FMR/FNMR."""
        return pd.DataFrame(list(self.calibration_rows))

    def lfw_accuracy(self) -> dict[str, Any] | None:
        """Return the LFW protocol's 10-fold result (``accuracy``, ``accuracy_std``, folds, threshold), if measured."""
        lfw = self.run.get("lfw")
        return dict(lfw["ten_fold"]) if lfw else None

    def lfw_pair_rows(self) -> tuple[dict[str, Any], ...]:
        """Per-group FMR/FNMR rows on the LFW protocol pairs at the 10-fold threshold (empty if not measured).

        Runs made before the rows had their own table kept them in ``run["lfw"]["pairs"]``.
        """
        if self.lfw_rows:
            return tuple(dict(r) for r in self.lfw_rows)
        lfw = self.run.get("lfw")
        return tuple(dict(r) for r in lfw.get("pairs", ())) if lfw else ()

    def lfw_pairs(self) -> pd.DataFrame:
        """:meth:`lfw_pair_rows` as a DataFrame."""
        return pd.DataFrame(list(self.lfw_pair_rows()))

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
        name = grouping_name(cols)
        sel = df[(df["pairing"] == "within") & (df["grouping"] == name) & (df["threshold_name"] == threshold)]
        if sel.empty:
            raise KeyError(f"grouping {name!r} not evaluated")
        over = df[(df["pairing"] == "all") & (df["threshold_name"] == threshold)].iloc[0]
        return GroupFrame(overall=over[_FRAME_COLUMNS], by_group=sel.set_index("group_name")[_FRAME_COLUMNS])

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

    # -- copies with more results
    def with_identification(
        self, rows: Iterable[Mapping[str, Any]], about: Mapping[str, Any] | None = None
    ) -> EvaluationReport:
        """Return a copy with identification rows added (``about``: the gallery and probes, into ``run``)."""
        run = dict(self.run) if about is None else {**self.run, "identification": json_safe(dict(about))}
        return replace(
            self, run=run, identification_rows=self.identification_rows + tuple(json_safe(dict(r)) for r in rows)
        )

    def with_lfw(self, ten_fold: Mapping[str, Any], pairs: Iterable[Mapping[str, Any]]) -> EvaluationReport:
        """Return a copy holding the LFW protocol results (10-fold accuracy in ``run``, per-group rows in a table)."""
        lfw = {"ten_fold": json_safe(dict(ten_fold))}
        return replace(self, run={**self.run, "lfw": lfw}, lfw_rows=tuple(json_safe(dict(r)) for r in pairs))

    def with_inequity(self, rows: Iterable[Mapping[str, Any]]) -> EvaluationReport:
        """Return a copy with inequity rows (replacing any)."""
        return replace(self, inequity_rows=tuple(json_safe(dict(r)) for r in rows))

    def with_run(self, fields: Mapping[str, Any]) -> EvaluationReport:
        """Return a copy with more run metadata (the dataset's name and selection, say)."""
        return replace(self, run={**self.run, **json_safe(dict(fields))})

    # -- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as ``None``)."""
        out: dict[str, Any] = {"run": json_safe(dict(self.run)), "rates": json_safe([dict(r) for r in self.rates])}
        for name, attr in _TABLES:
            out[name] = json_safe([dict(r) for r in getattr(self, attr)])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Inverse of :meth:`to_dict` (also reads reports written before the one threshold vocabulary)."""

        def rows(key: str) -> tuple[Mapping[str, Any], ...]:
            return tuple(dict(r) for r in data.get(key, []))

        run = dict(data["run"])
        tables = {attr: rows(name) for name, attr in _TABLES}
        return cls(run=run, rates=upgrade_rate_rows(rows("rates"), run.get("model_config")), **tables)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationReport):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(), sort_keys=True)

    __hash__ = None  # type: ignore[assignment]

    def json_rows(self) -> list[dict[str, Any]]:
        """Return the CLI's JSON rows: one per cell and threshold (``group``, ``threshold``, counts, rates, bounds)."""
        return cast(list[dict[str, Any]], json_safe([dict(r) for r in self.rates]))
