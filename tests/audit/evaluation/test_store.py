"""Evaluation runs round-trip through DuckDB tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.identification import identification_rates
from audit.evaluation.store import EvaluationStore
from audit.evaluation.verification import evaluate_embeddings
from core.storage.connection import Database


def report():
    rng = np.random.default_rng(0)
    subj = np.concatenate([np.arange(50), rng.integers(0, 50, 100)])
    x = rng.standard_normal((50, 8))[subj] + 0.7 * rng.standard_normal((150, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = pd.DataFrame({"sex": np.where(subj % 2, "F", "M"), "race": np.where(subj % 3, "a", "")})
    cfg = EvaluationConfig(
        by=(("sex",), ("sex", "race")), default_threshold=0.4, bootstrap=30, thresholds=(parse_threshold("fmr=1e-2"),)
    )
    r = evaluate_embeddings(
        x,
        subj,
        labels,
        cfg,
        failed_labels=labels.iloc[:3],
        dataset_fingerprint="fp",
        model_config={"model": "Dlib", "embedding_key": "k1"},
    )
    ident = identification_rates(
        x[:20], subj[:20], x[20:], subj[20:], {"default": 0.4}, probe_labels=labels.iloc[:20], by=[("sex",)]
    )
    return r.with_identification(ident)


@pytest.mark.parametrize("path", [":memory:", "file"])
def test_store_round_trip(tmp_path, path):
    db = Database(":memory:" if path == ":memory:" else tmp_path / "e.duckdb")
    store = EvaluationStore(db)
    r = report()
    run_id = store.save(r, dataset_name="synthetic")
    again = store.load(run_id)
    assert again == r
    assert store.latest(embedding_key="k1") == run_id
    assert store.latest(embedding_key="other") is None
    rates = store.table("rates", run_id)
    assert len(rates) == len(r.rates)
    assert {"sex": "F"} in list(rates["group"])
    assert len(store.table("identification", run_id)) == len(r.identification_rows) > 0
    assert store.runs()["run_id"].tolist() == [run_id]
    with pytest.raises(KeyError):
        store.load("nope")
    with pytest.raises(KeyError):
        store.table("bogus", run_id)
    db.close()
