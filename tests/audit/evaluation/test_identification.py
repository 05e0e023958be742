"""Identification rates against a brute-force search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.evaluation.errors import EvaluationError
from audit.evaluation.identification import identification_rates, wilson_interval
from audit.evaluation.metrics import quantize


def unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5000), n_probe=st.integers(1, 20), n_gallery=st.integers(1, 25), t=st.floats(0.0, 1.5))
def test_identification_equals_brute_force(seed, n_probe, n_gallery, t):
    rng = np.random.default_rng(seed)
    g = unit(rng, n_gallery, 4)
    p = unit(rng, n_probe, 4)
    gs = rng.integers(0, 8, n_gallery)
    ps = rng.integers(0, 12, n_probe)
    sex = rng.choice(["F", "M"], n_probe)
    rows = identification_rates(p, ps, g, gs, [t], probe_labels=pd.DataFrame({"sex": sex}), by=[("sex",)], block_rows=3)
    pq, scale = quantize(p)
    gq, _ = quantize(g)
    for row in rows:
        mask = np.ones(n_probe, bool) if not row["group"] else sex == row["group"]["sex"]
        mated = fp = miss = hits = 0
        for i in np.flatnonzero(mask):
            d = [1.0 - float(np.dot(pq[i], gq[j])) * scale for j in range(n_gallery)]
            mates = [d[j] for j in range(n_gallery) if gs[j] == ps[i]]
            non = [d[j] for j in range(n_gallery) if gs[j] != ps[i]]
            if non and min(non) <= t:
                fp += 1
            if mates:
                mated += 1
                top = min(mates) < (min(non) if non else np.inf)
                hits += top
                miss += not (top and min(mates) <= t)
        assert row["mated_searches"] == mated
        assert row["rank1_hits"] == hits
        assert row["false_positive_searches"] == fp
        assert row["nonmated_searches"] == int(mask.sum())
        if mated:
            assert row["fnir"] == pytest.approx(miss / mated)


def test_wilson_interval():
    lo, hi = wilson_interval(5, 10)
    assert lo < 0.5 < hi
    assert wilson_interval(0, 10)[0] == 0.0
    assert np.isnan(wilson_interval(0, 0)[0])


def test_identification_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(EvaluationError, match="empty"):
        identification_rates(unit(rng, 2, 4), [1, 2], np.zeros((0, 4)), [], [0.5])
    with pytest.raises(ValueError, match="dimensions"):
        identification_rates(unit(rng, 2, 4), [1, 2], unit(rng, 2, 8), [1, 2], [0.5])
