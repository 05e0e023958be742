"""Counts anyone can reproduce: thresholds placed strictly between observed scores, far enough from both.

A reported count is worth something only if anyone can get it back by applying the
*stored* threshold with the documented rule and counting: "match iff distance <=
threshold" for facetrail's engine (cosine distance), "score >= threshold" or "score <=
threshold" for a system's own similarity or distance scores. Two things break that:

- a threshold that sits *on* an observed score (the old calibration returned the
  score of the last false match itself): whether that pair matches then depends on
  the last bit of whoever recomputes it;
- a score recomputed differently from the one counted: facetrail counts exact
  quantised similarities (:mod:`audit.evaluation.metrics`), the engine computes
  float32 dot products, a reader may use float64 or float32 text parsing.

So every calibrated threshold here is the **midpoint of a gap** between two observed
scores (the one of the last pair that must match and the next one), and a gap is used
only if the midpoint is further from both than a :class:`Precision` says a
reproduction can move a score. When the natural gap (the loosest one meeting the
target) is too narrow, the cut moves up to the next wide-enough gap: fewer matches,
the target still met, and the count reproducible. A fixed threshold (the model's
default, ``0.07``, a vendor's ``score=80``) cannot move; its rows say how far it is
from the nearest observed score and whether that is far enough (``reproducible``).

What a reproduction may differ by
---------------------------------
``required(v, t) = absolute + 2**-24 * (|v| + |t|)``: ``absolute`` bounds how far a
recomputed score can be from the one counted, the second term covers rounding the
score and the threshold to float32 (round-to-nearest moves a number by at most
``2**-24`` relative). For facetrail's engine ``absolute`` is the quantisation bound
(:func:`audit.evaluation.metrics.quantisation_error`) plus the worst float32 error of a
``d``-term dot product of unit vectors in *any* summation order,
``gamma_d = d u / (1 - d u)``, ``u = 2**-24`` (:func:`float32_dot_error`; about
``7.6e-6`` for 128 dimensions). For scores read from a file it is 0 unless the caller
says the scores are less precise than their digits: reading a number is monotone, so a
score at or beyond the threshold stays there in any precision and only the
non-matching side needs the float32 term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Cutoff",
    "NoReproducibleCutoff",
    "Precision",
    "ThresholdMargin",
    "float32_dot_error",
    "margin_window",
    "place_cutoff",
    "threshold_margin",
]

#: Largest relative rounding error of a float32 (round to nearest).
F32_UNIT = 2.0**-24

#: +1: a pair matches iff its value >= threshold (similarity); -1: iff value <= threshold (distance).
Direction = Literal[1, -1]


def float32_dot_error(dimensions: int) -> float:
    """Worst error of a float32 dot product of two unit vectors, any summation order: ``gamma_d``."""
    du = max(int(dimensions), 1) * F32_UNIT
    return du / (1.0 - du)


@dataclass(frozen=True)
class Precision:
    """How far a reproduction of a score may be from the score counted."""

    absolute: float = 0.0
    """Bound on ``|recomputed - counted|`` (0: the counted scores are the data themselves)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.absolute) and self.absolute >= 0.0):
            raise ValueError(f"a score precision is a finite non-negative number, got {self.absolute!r}")

    def required(self, value: float | np.ndarray, threshold: float | np.ndarray) -> float | np.ndarray:
        """Distance a score must keep from the threshold so that any reproduction decides it the same way."""
        return self.absolute + F32_UNIT * (np.abs(value) + np.abs(threshold))

    def holds(self, value: np.ndarray, threshold: np.ndarray, direction: Direction) -> np.ndarray:
        """Whether each (value, threshold) is decided the same way by every reproduction.

        A matching value (``direction * (value - threshold) >= 0``) holds when it is
        beyond ``required`` or, with ``absolute == 0``, always (rounding is monotone, so
        it cannot cross a threshold it reaches); a non-matching one must be further than
        ``required`` on its side.
        """
        v = np.asarray(value, dtype=np.float64)
        t = np.asarray(threshold, dtype=np.float64)
        signed = direction * (v - t)
        need = self.required(v, t)
        matching_ok = signed >= 0 if self.absolute == 0.0 else signed > need
        return np.where(signed >= 0, matching_ok, -signed > need)


def margin_window(precision: Precision, threshold: float) -> float:
    """Return how far from a threshold margins are measured and reported (beyond it, a margin reads as this).

    A few reproduction errors plus a thousandth of the threshold's magnitude (at least
    1e-3): enough to tell a comfortable margin from a tight one, small enough that the
    engine keeps few extra impostor pairs to measure it.
    """
    return 4.0 * precision.absolute + 1e-3 * max(1.0, abs(threshold))


@dataclass(frozen=True)
class Cutoff:
    """A threshold in a gap of observed values, and what it admits."""

    threshold: float
    """The threshold: the midpoint of the gap."""
    admitted: int
    """Impostor values on the matching side (the false matches)."""
    nearest_match: float
    """The observed value closest to the threshold on the matching side (NaN when none)."""
    nearest_non_match: float
    """The observed value closest to it on the other side (NaN when none)."""

    @property
    def margin(self) -> float:
        """Distance from the threshold to the nearest observed value."""
        gaps = [abs(v - self.threshold) for v in (self.nearest_match, self.nearest_non_match) if not math.isnan(v)]
        return min(gaps) if gaps else math.inf


class NoReproducibleCutoff(ValueError):
    """No gap of the observed values is wide enough for a threshold that meets the target."""


def place_cutoff(
    impostor_values: np.ndarray,
    genuine_values: np.ndarray,
    allowed: int,
    direction: Direction,
    precision: Precision,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Cutoff:
    """Return the loosest reproducible threshold admitting at most ``allowed`` impostor values.

    Parameters
    ----------
    impostor_values
        Impostor scores in threshold units, at least the ``allowed + 1`` most alike
        (any order); all of them when fewer.
    genuine_values
        Genuine scores in threshold units (they bound gaps too: their counts must reproduce).
    allowed
        How many impostor values may match (``floor(target * impostor pairs)``).
    direction
        ``1``: match iff value >= threshold; ``-1``: iff value <= threshold.
    precision
        How far a reproduction may move a value.
    bounds
        Valid thresholds (a cosine distance lies in [0, 2]).

    Returns
    -------
    Cutoff
        The midpoint of the loosest gap that keeps the admitted impostors at or below
        ``allowed`` and is wide enough for ``precision``.

    Raises
    ------
    NoReproducibleCutoff
        When no gap qualifies (the most alike impostor pairs sit on the genuine ones, or
        within ``precision`` of the bounds).
    """
    if allowed < 0:
        raise ValueError(f"allowed must be >= 0, got {allowed}")
    keys_imp = direction * np.asarray(impostor_values, dtype=np.float64)  # higher key: more alike
    keys_gen = direction * np.asarray(genuine_values, dtype=np.float64)
    ordered = np.sort(keys_imp)[::-1]
    floor_key = float(ordered[allowed]) if ordered.size > allowed else -math.inf  # must not match
    above = np.unique(np.concatenate([ordered[ordered > floor_key], keys_gen[keys_gen > floor_key]]))
    lows = np.concatenate([[floor_key], above])  # gap g lies between lows[g] and highs[g]
    highs = np.concatenate([above, [math.inf]])
    has_lo, has_hi = np.isfinite(lows), np.isfinite(highs)
    lo0, hi0 = np.where(has_lo, lows, 0.0), np.where(has_hi, highs, 0.0)  # no arithmetic on infinities
    # a gap open on one side (below every value, above every value): twice the required distance away
    pad_lo = 2.0 * np.asarray(precision.required(hi0, hi0)) + np.abs(hi0) * 2.0**-40 + 1e-300
    pad_hi = 2.0 * np.asarray(precision.required(lo0, lo0)) + np.abs(lo0) * 2.0**-40 + 1e-300
    mids = np.where(has_lo & has_hi, lo0 / 2.0 + hi0 / 2.0, np.where(has_hi, hi0 - pad_lo, lo0 + pad_hi))
    values = direction * mids  # back to threshold units
    lo_b, hi_b = bounds
    ok = (has_lo | has_hi) & (values >= lo_b) & (values <= hi_b)
    ok &= (~has_lo | (mids > lo0)) & (~has_hi | (mids < hi0))  # strictly inside: floats need not have a midpoint
    ok &= ~has_lo | precision.holds(direction * lo0, values, direction)
    ok &= ~has_hi | precision.holds(direction * hi0, values, direction)
    found = np.flatnonzero(ok)
    if not found.size:
        raise NoReproducibleCutoff(
            f"no gap between observed scores lets at most {allowed} of the scores that should not match through and "
            f"is wider than a reproduction can move a score ({precision.absolute:.3g} plus float32 rounding); the "
            "closest ones are too close together, or to 0"
        )
    g = int(found[0])  # gaps run from the loosest (just above the first non-admitted impostor) up
    admitted = int(np.count_nonzero(keys_imp > lows[g]))
    return Cutoff(
        threshold=float(values[g]),
        admitted=admitted,
        nearest_match=float(direction * highs[g]) if np.isfinite(highs[g]) else math.nan,
        nearest_non_match=float(direction * lows[g]) if np.isfinite(lows[g]) else math.nan,
    )


@dataclass(frozen=True)
class ThresholdMargin:
    """How far a fixed threshold is from the observed values, and whether that is far enough."""

    margin: float
    """Distance to the nearest observed value (a lower bound when the values were kept only near it)."""
    reproducible: bool
    """Whether every reproduction within the precision decides every pair as counted."""


def threshold_margin(
    values: np.ndarray,
    threshold: float,
    direction: Direction,
    precision: Precision,
    known_within: float = math.inf,
    cap: float = math.inf,
) -> ThresholdMargin:
    """Return the margin of a fixed threshold over ``values`` (those within ``known_within`` of it at least).

    Parameters
    ----------
    values
        Observed scores in threshold units: every one within ``known_within`` of the threshold.
    threshold
        The threshold.
    direction
        As for :func:`place_cutoff`.
    precision
        How far a reproduction may move a value.
    known_within
        Values further than this from the threshold may be missing (the scoring pass
        keeps impostor pairs only down to a cut); the margin is then at most this.
    cap
        Report a margin beyond this as this (runs report margins up to one window, so
        an engine run and a score file of the same scores report the same).
    """
    v = np.asarray(values, dtype=np.float64)
    near = v[np.abs(v - threshold) <= known_within] if math.isfinite(known_within) else v
    margin = float(np.abs(near - threshold).min()) if near.size else known_within
    holds = bool(np.all(precision.holds(near, np.full(near.shape, threshold), direction))) if near.size else True
    if math.isfinite(known_within):
        edge = threshold - direction * known_within  # the nearest value that may be missing: non-matching side
        holds &= bool(precision.holds(np.array([edge]), np.array([threshold]), direction)[0])
    return ThresholdMargin(min(margin, known_within, cap), holds)
