"""Numbers in words, where people read them: rates as "1 in 1,000", shares as percents, ratios with intervals.

A board member reads ``6.03e-3`` as nothing and ``0.00e+0`` as "never"; these functions
say the same numbers the way a person reads them, and say no more than the data does:

- a rate is "1 in N" with N rounded to three significant figures (the counts rarely
  support more), a percent from 5% up, and for zero events out of ``n`` trials
  "fewer than 1 in n" (never "0", which would claim it cannot happen);
- a similarity is a score, not a probability, so it is never shown as a percent;
- a 1:1 comparison is "above" or "below the threshold", never "the same person" or
  "not the same person" (the threshold decides, not the truth);
- log-axis ticks are percents ("0.001%"), never SI prefixes (plotly's ``10μ``).

Only formatting lives here: no decision is made from these strings.
"""

from __future__ import annotations

import math

__all__ = [
    "comparison_text",
    "count_text",
    "log_ticks",
    "one_in",
    "percent_text",
    "rate_text",
    "ratio_text",
    "similarity_text",
]

#: From this rate up a rate reads better as a percent than as "1 in N".
PERCENT_FROM = 0.05

_MISSING = "no data"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _three_figures(n: float) -> int:
    """``n`` rounded to three significant figures (165.8 -> 166, 81,037 -> 81,000)."""
    if n < 1000:
        return max(1, round(n))
    digits = int(math.floor(math.log10(n))) - 2
    return int(round(n / 10**digits) * 10**digits)


def count_text(n: int | None, noun: str | None = None, plural: str | None = None) -> str:
    """``1234567`` -> ``"1,234,567"``; with a noun, ``(1, "search")`` -> ``"1 search"``, ``(6, "search")`` -> ``"6 searches"``.

    ``plural`` defaults to the noun with "es" after s, x, ch and sh, else "s". ``None`` -> ``"no data"``.
    """
    if n is None:
        return _MISSING
    if noun is None:
        return f"{int(n):,}"
    if int(n) == 1:
        return f"1 {noun}"
    many = plural or (noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s")
    return f"{int(n):,} {many}"


def percent_text(share: float | None) -> str:
    """Say a share of a whole as a percent: ``0.37`` -> ``"37%"``, ``0.004`` -> ``"0.4%"``, ``0.00004`` -> ``"<0.01%"``.

    Two significant figures below 10%, whole percents above; exactly 0 and 1 read ``"0%"``
    and ``"100%"``. Raises ``ValueError`` for a share outside 0..1.
    """
    if _missing(share):
        return _MISSING
    assert share is not None
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a share is between 0 and 1, got {share!r}")
    if share == 0.0:
        return "0%"
    pct = share * 100
    if pct < 0.01:
        return "<0.01%"
    if pct >= 10 or pct == round(pct):
        text = f"{pct:.0f}%"
        return "<100%" if text == "100%" and share < 1.0 else text
    return f"{pct:.2g}%"


def one_in(rate: float) -> str:
    """``0.001`` -> ``"1 in 1,000"``; ``0.00603`` -> ``"1 in 166"`` (three significant figures).

    Raises ``ValueError`` for a rate that is not above 0 and at most 1.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"'1 in N' needs a rate above 0 and at most 1, got {rate!r}")
    return f"1 in {_three_figures(1.0 / rate):,}"


def rate_text(rate: float | None, trials: int | None = None) -> str:
    """Say a rate as a person reads it: ``"1 in 1,000"``, ``"6.0%"``, or ``"fewer than 1 in 167,620"`` for 0 of n.

    Parameters
    ----------
    rate
        Events over trials (NaN or None: ``"no data"``).
    trials
        How many trials the rate is over. With a zero rate it says how small the rate can
        be said to be; without it a zero rate reads ``"none observed"``.

    Raises
    ------
    ValueError
        For a rate outside 0..1 or a negative number of trials.
    """
    if trials is not None and trials < 0:
        raise ValueError(f"trials cannot be negative, got {trials!r}")
    if _missing(rate) or trials == 0:
        return _MISSING
    assert rate is not None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"a rate is between 0 and 1, got {rate!r}")
    if rate == 0.0:
        return f"fewer than 1 in {trials:,}" if trials is not None else "none observed"
    if rate >= PERCENT_FROM:
        return percent_text(rate)
    return one_in(rate)


def ratio_text(value: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """Say a ratio with its interval: ``"2.8x [1.1-7.0]"``; an infinite bound reads ``"no upper bound"``.

    Two significant figures (``"12x"``, ``"1.1x"``, ``"0.86x"``); ``None``/NaN bounds leave the interval out.
    """
    if _missing(value):
        return _MISSING
    assert value is not None

    def fig(v: float) -> str:
        if math.isinf(v):
            return "no upper bound"
        return f"{v:.2g}" if v < 1 else f"{v:.1f}" if v < 10 else f"{v:.0f}"

    text = f"{fig(value)}x" if not math.isinf(value) else "unbounded (the other rate is zero)"
    if _missing(lo) or _missing(hi):
        return text
    assert lo is not None and hi is not None
    return f"{text} [{fig(lo)}-{fig(hi)}]"


def similarity_text(similarity: float | None) -> str:
    """Say a similarity score to three decimals (``0.917``): a score, not a probability, so never a percent."""
    return _MISSING if _missing(similarity) else f"{float(similarity):.3f}"  # type: ignore[arg-type]


def comparison_text(similarity: float, distance: float, threshold: float) -> str:
    """Say what a 1:1 comparison says, and no more: above or below the decision threshold.

    ``"above the threshold: similarity 0.917 (distance 0.083, threshold 0.100 cosine distance)"``:
    a distance at or under the threshold is a candidate match for review; over it is
    "below the threshold", which does not prove two different people.
    """
    side = "above the threshold" if distance <= threshold else "below the threshold"
    return (f"{side}: similarity {similarity_text(similarity)} (distance {distance:.3f}, "
            f"threshold {threshold:.3f} cosine distance)")


def _tick(value: float) -> str:
    pct = value * 100
    if pct >= 1:
        return f"{pct:.0f}%"
    decimals = -int(math.floor(math.log10(pct)))
    return f"{pct:.{decimals}f}%"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Decade ticks covering ``lo..hi`` (rates, 0 < lo <= hi <= 1) and their labels as percents.

    ``log_ticks(1e-5, 0.1)`` -> ``([1e-05, 0.0001, 0.001, 0.01, 0.1], ["0.001%", "0.01%", "0.1%", "1%", "10%"])``.

    Raises
    ------
    ValueError
        If the bounds are not rates with ``0 < lo <= hi``.
    """
    if not (0.0 < lo <= hi) or math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"log ticks need 0 < lo <= hi, got {lo!r}, {hi!r}")
    first = math.floor(math.log10(lo) + 1e-9)
    last = min(0, math.ceil(math.log10(hi) - 1e-9))
    values = [10.0**k for k in range(first, max(first, last) + 1)]
    return values, [_tick(v) for v in values]
