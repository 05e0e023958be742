"""1:N thresholds calibrated for 1:N: a target FPIR for a gallery of a given size (NIST's 1:N practice).

A 1:1 threshold (a target FMR per comparison) is the wrong default for a search: a
probe meets every face of the gallery, so the chance that a search of someone not
enrolled returns a candidate (the false-positive identification rate, FPIR) grows
with the gallery. :func:`calibrate_fpir` calibrates on *non-mated searches*: every
probe searched against the gallery without the probe's own subject (a subject id in
both is the same person). Per search, its nearest gallery face's distance ``d_j``
(exact quantised scores, :mod:`audit.evaluation.metrics`); ``FPIR(t) = #{j: d_j <= t}
/ M``. The threshold is the midpoint of the loosest gap between those distances
that keeps at most ``floor(R * M)`` searches with a candidate and is wider than a
reproduction in float32 can move a score (:mod:`audit.evaluation.cutoffs`), so the
stored threshold reproduces its FPIR on the data it was calibrated on, in the
engine's arithmetic.

Measured or extrapolated
    ``measured``: the target is for the gallery searched (its size). For another size
    ``N`` the target is carried to the measured size ``N_0`` with
    ``R_0 = 1 - (1 - R) ** (N_0 / N)`` (independent comparisons) and the calibration
    is labelled ``extrapolated``; it understates the FPIR of look-alike-rich galleries.
Per group
    The FPIR at the threshold per probe group (Wilson intervals over searches), as
    :func:`~audit.evaluation.identification.identification_rates` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from audit.evaluation.config import check_target_fmr
from audit.evaluation.cutoffs import NoReproducibleCutoff, Precision, float32_dot_error, place_cutoff
from audit.evaluation.errors import EvaluationError
from audit.evaluation.groups import MultiLabel
from audit.evaluation.identification import identification_rates
from audit.evaluation.metrics import quantisation_error, quantize
from audit.evaluation.report import json_safe
from core.config import ThresholdSource
from core.thresholds import extrapolate_fpir

__all__ = ["FpirCalibration", "calibrate_fpir", "nonmated_distances"]


def nonmated_distances(probes: np.ndarray, probe_subjects: Sequence[str], gallery: np.ndarray,
                       gallery_subjects: Sequence[str], block_rows: int = 2048) -> np.ndarray:
    """Per probe, the exact distance of its nearest gallery face of another subject (``inf`` when there is none)."""
    pq, scale = quantize(probes)
    gq, _ = quantize(gallery)
    codes, _ = pd.factorize(pd.Series([str(s) for s in gallery_subjects] + [str(s) for s in probe_subjects]))
    g_codes, p_codes = np.asarray(codes[: gq.shape[0]]), np.asarray(codes[gq.shape[0] :])
    out = np.full(pq.shape[0], np.inf)
    for r0 in range(0, pq.shape[0], block_rows):
        s = pq[r0 : r0 + block_rows] @ gq.T
        s[p_codes[r0 : r0 + block_rows, None] == g_codes[None, :]] = -np.inf
        best = s.max(axis=1) if s.shape[1] else np.full(s.shape[0], -np.inf)
        out[r0 : r0 + block_rows] = np.where(np.isfinite(best), 1.0 - best * scale, np.inf)
    return out


@dataclass(frozen=True)
class FpirCalibration:
    """A search threshold calibrated to a target FPIR, with what it achieves overall and per probe group."""

    target_fpir: float
    """The FPIR aimed at for a gallery of :attr:`for_gallery_size` faces."""
    for_gallery_size: int
    """The gallery size the threshold is for."""
    gallery_size: int
    """The size of the gallery the searches ran against."""
    method: Literal["measured", "extrapolated"]
    """``measured`` (the same size) or ``extrapolated`` (see the module docstring)."""
    measured_target: float
    """The target carried to the measured gallery size (``target_fpir`` when measured)."""
    threshold: float
    """The distance threshold (the midpoint of a gap between non-mated search distances)."""
    searches: int
    """Non-mated searches."""
    false_positive_searches: int
    """Searches with a candidate within the threshold on the measured gallery."""
    achieved_fpir: float
    """Their share (at most :attr:`measured_target`)."""
    nearest_match: float
    """The nearest-face distance of the last search that returns a candidate (NaN when none does)."""
    nearest_non_match: float
    """The nearest-face distance of the next one, which does not."""
    distances: tuple[float, ...]
    """Sorted nearest-face distances of the non-mated searches (the FPIR at any threshold, measured;
    ``inf`` for a search with no face of another subject)."""
    per_group: tuple[Mapping[str, Any], ...]
    """FPIR per probe group at the threshold (JSON-ready rows)."""

    @property
    def margin(self) -> float:
        """Distance from the threshold to the nearer of the two observed distances around it."""
        gaps = [abs(v - self.threshold) for v in (self.nearest_match, self.nearest_non_match) if math.isfinite(v)]
        return min(gaps) if gaps else math.inf

    def threshold_source(self, dataset: str, gallery: str, calibrated_at: str) -> ThresholdSource:
        """Return the provenance of this threshold as the default for searches of such a gallery."""
        how = "measured" if self.method == "measured" else f"extrapolated from {self.gallery_size:,} faces"
        return ThresholdSource(
            kind="calibrated",
            description=(f"FPIR={self.target_fpir:g} for a {self.for_gallery_size:,}-face gallery ({how}: "
                         f"{self.searches:,} non-mated searches of {dataset} against {gallery}, {calibrated_at[:10]})"),
            dataset=dataset,
            calibrated_at=calibrated_at,
        )

    def details(self) -> dict[str, Any]:
        """Return the JSON kept with the stored calibration: targets, what was achieved, per group."""
        return dict(json_safe({
            "measured_target_fpir": self.measured_target,
            "achieved_fpir": self.achieved_fpir,
            "false_positive_searches": self.false_positive_searches,
            "nearest_match": self.nearest_match,
            "nearest_non_match": self.nearest_non_match,
            "threshold_margin": self.margin,
            "per_group": [dict(r) for r in self.per_group],
        }))


def calibrate_fpir(
    probes: np.ndarray,
    probe_subjects: Sequence[str],
    gallery: np.ndarray,
    gallery_subjects: Sequence[str],
    target_fpir: float,
    *,
    for_gallery_size: int | None = None,
    probe_labels: pd.DataFrame | None = None,
    by: Sequence[Sequence[str]] = (),
    multi_label: MultiLabel = "combined",
) -> FpirCalibration:
    """Calibrate a search threshold to ``target_fpir`` on non-mated searches (see the module docstring).

    Parameters
    ----------
    probes, gallery
        L2-normalised embeddings (float32 as the engine keeps them).
    probe_subjects, gallery_subjects
        Subject ids (a probe is searched without the gallery faces of its own subject).
    target_fpir
        The FPIR to reach, in (0, 1).
    for_gallery_size
        The gallery size the threshold is for (default: this gallery's).
    probe_labels, by, multi_label
        Probe groups for the per-group FPIR.

    Raises
    ------
    BadInput
        A target outside (0, 1) or a gallery size below 1.
    EvaluationError
        No probes or an empty gallery, a target that admits every search, or no gap wide enough.
    """
    target = check_target_fmr(target_fpir, "target FPIR")
    n_gallery = int(gallery.shape[0])
    if n_gallery == 0 or probes.shape[0] == 0:
        raise EvaluationError("an FPIR calibration needs probes and a gallery with faces")
    size = n_gallery if for_gallery_size is None else int(for_gallery_size)
    if size < 1:
        raise EvaluationError(f"the gallery size to calibrate for must be at least 1, got {size}")
    measured_target = target if size == n_gallery else extrapolate_fpir(target, size, n_gallery)
    d = nonmated_distances(probes, probe_subjects, gallery, gallery_subjects)
    m = int(d.size)
    k = min(int(math.floor(measured_target * m * (1 + 1e-12))), m - 1)  # the target is below 1
    finite = d[np.isfinite(d)]
    precision = Precision(quantisation_error(np.vstack([probes, gallery])) + float32_dot_error(probes.shape[1]))
    try:
        cut = place_cutoff(finite, np.zeros(0), k, -1, precision, bounds=(0.0, 2.0))
    except NoReproducibleCutoff as err:
        raise EvaluationError(f"cannot calibrate to FPIR {target:g}: {err}") from err
    rows = identification_rates(probes, list(probe_subjects), gallery, list(gallery_subjects),
                                {f"fpir={target:g}": cut.threshold}, probe_labels=probe_labels, by=by,
                                multi_label=multi_label)
    keep = ("grouping", "group", "group_name", "threshold", "nonmated_searches", "false_positive_searches", "fpir",
            "fpir_lo", "fpir_hi")
    return FpirCalibration(
        target_fpir=target,
        for_gallery_size=size,
        gallery_size=n_gallery,
        method="measured" if size == n_gallery else "extrapolated",
        measured_target=measured_target,
        threshold=cut.threshold,
        searches=m,
        false_positive_searches=cut.admitted,
        achieved_fpir=cut.admitted / m,
        nearest_match=cut.nearest_match,
        nearest_non_match=cut.nearest_non_match,
        distances=tuple(sorted(float(x) for x in d)),  # inf: no face of another subject (never a candidate)
        per_group=tuple(json_safe({k2: r[k2] for k2 in keep}) for r in rows),
    )

