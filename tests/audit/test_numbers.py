"""Numbers in words: rates, zero of n, shares, ratios, similarities, comparisons, log ticks."""

from __future__ import annotations

import math

import pytest

from audit import comparison_text, count_text, log_ticks, one_in, percent_text, rate_text, ratio_text, similarity_text


@pytest.mark.parametrize(("rate", "text"), [
    (0.001, "1 in 1,000"),
    (6.03e-3, "1 in 166"),          # the 6.03e-3
    (1 / 81_037, "1 in 81,000"),    # three significant figures, no false precision
    (1 / 167_620, "1 in 168,000"),
    (0.04, "1 in 25"),
    (0.05, "5%"),                  # from 5% up a percent reads better
    (0.37, "37%"),
    (1.0, "100%"),
])
def test_rates_read_as_one_in_n_or_a_percent(rate: float, text: str) -> None:
    assert rate_text(rate) == text


def test_zero_of_n_is_fewer_than_one_in_n_never_zero() -> None:
    assert rate_text(0.0, 167_620) == "fewer than 1 in 167,620"
    assert rate_text(0.0) == "none observed"
    assert rate_text(0.0, 0) == "no data"  # zero of zero says nothing


@pytest.mark.parametrize("missing", [None, math.nan])
def test_missing_rates_say_so(missing: float | None) -> None:
    assert rate_text(missing) == "no data"
    assert percent_text(missing) == "no data"
    assert similarity_text(missing) == "no data"
    assert ratio_text(missing) == "no data"


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_rate_outside_zero_to_one_is_refused_by_name(bad: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        rate_text(bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        percent_text(bad)
    with pytest.raises(ValueError, match="trials cannot be negative"):
        rate_text(0.1, -1)


def test_one_in_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="above 0"):
        one_in(0.0)


@pytest.mark.parametrize(("share", "text"), [
    (0.0, "0%"), (0.37, "37%"), (0.004, "0.4%"), (0.0123, "1.2%"), (0.00004, "<0.01%"), (0.9999, "<100%"),
    (1.0, "100%"),
])
def test_percent_edges(share: float, text: str) -> None:
    assert percent_text(share) == text


def test_counts_with_nouns() -> None:
    assert count_text(1_234_567) == "1,234,567"
    assert count_text(1, "search") == "1 search"
    assert count_text(6, "search") == "6 searches"
    assert count_text(2, "candidate") == "2 candidates"
    assert count_text(0, "refused attempt") == "0 refused attempts"
    assert count_text(None, "search") == "no data"


def test_ratios_with_intervals_and_unbounded_ones() -> None:
    assert ratio_text(2.8, 1.1, 7.0) == "2.8x [1.1-7.0]"  # the example
    assert ratio_text(0.86, 0.5, 1.0) == "0.86x [0.5-1.0]"
    assert ratio_text(12.3) == "12x"
    assert ratio_text(2.0, 0.9, math.inf) == "2.0x [0.9-no upper bound]"
    assert ratio_text(math.inf) == "unbounded (the other rate is zero)"
    assert ratio_text(1.5, None, 3.0) == "1.5x"  # half an interval is no interval


def test_a_similarity_is_a_score_never_a_percent() -> None:
    assert similarity_text(0.917) == "0.917"
    assert "%" not in similarity_text(0.917)


def test_a_comparison_says_above_or_below_the_threshold_not_same_or_different_person() -> None:
    above = comparison_text(0.95, 0.05, 0.07)
    below = comparison_text(0.90, 0.10, 0.07)
    assert above.startswith("above the threshold") and below.startswith("below the threshold")
    for text in (above, below):
        assert "same person" not in text.lower() and "%" not in text and "None" not in text
    assert comparison_text(0.93, 0.07, 0.07).startswith("above")  # at the threshold is a candidate


def test_log_ticks_are_percents_never_si_prefixes() -> None:
    values, labels = log_ticks(1e-5, 0.1)
    assert values == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert labels == ["0.001%", "0.01%", "0.1%", "1%", "10%"]
    assert not any("μ" in t or "e-" in t for t in labels)
    values, labels = log_ticks(3e-4, 0.5)
    assert labels[0] == "0.01%" and labels[-1] == "100%"
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        log_ticks(0.0, 0.1)
