"""Subject-level bootstrap weights and percentile intervals.

Pairs of one person are correlated, so the resampling unit is the *subject*: each
resample draws ``S`` subjects with replacement, i.e. a multinomial weight vector
``w`` over subjects. Counts under a resample are weighted sums computed by
:class:`audit.evaluation.metrics.CellCounter` without rescoring: a subject's genuine pairs
weigh ``w_u``, an impostor pair between subjects ``u`` and ``v`` weighs ``w_u * w_v``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["subject_weights", "percentile_interval"]


def subject_weights(n_subjects: int, n_resamples: int, *, seed: int = 0, batch: int = 100) -> Iterator[np.ndarray]:
    """Yield multinomial subject weights in batches of shape ``(b, n_subjects)``.

    Parameters
    ----------
    n_subjects
        Number of subjects ``S``; each resample draws ``S`` of them with replacement.
    n_resamples
        Total number of resamples.
    seed
        Seed of the random generator (results are reproducible).
    batch
        Resamples per yielded array.

    Raises
    ------
    ValueError
        If a count is negative or ``batch`` is not positive.
    """
    if n_subjects < 0 or n_resamples < 0 or batch <= 0:
        raise ValueError("n_subjects and n_resamples must be >= 0 and batch > 0")
    rng = np.random.default_rng(seed)
    if n_subjects == 0:
        return
    p = np.full(n_subjects, 1.0 / n_subjects)
    done = 0
    while done < n_resamples:
        b = min(batch, n_resamples - done)
        yield rng.multinomial(n_subjects, p, size=b).astype(np.float64)
        done += b


def percentile_interval(draws: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap ``draws`` along ``axis``, ignoring NaN draws.

    Quantiles are order statistics (no interpolation), so an infinite draw (a ratio
    whose reference rate was zero in that resample) gives an infinite bound rather
    than NaN; JSON output shows it as ``null`` (unbounded).

    Parameters
    ----------
    draws
        Bootstrap statistics, resamples along ``axis``.
    confidence
        Coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles.
    axis
        The resample axis.

    Returns
    -------
    tuple
        ``(lo, hi)``, NaN where every draw is NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a = np.asarray(draws, dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    if a.shape[axis] == 0:
        shape = list(a.shape)
        del shape[axis]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    all_nan = np.all(np.isnan(a), axis=axis)
    safe = np.where(np.expand_dims(all_nan, axis), 0.0, a)
    with np.errstate(invalid="ignore"):
        lo = np.asarray(np.nanquantile(safe, alpha, axis=axis, method="inverted_cdf"), dtype=np.float64)
        hi = np.asarray(np.nanquantile(safe, 1.0 - alpha, axis=axis, method="inverted_cdf"), dtype=np.float64)
    lo = np.where(all_nan, np.nan, lo)
    hi = np.where(all_nan, np.nan, hi)
    return lo, hi
