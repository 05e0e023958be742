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


def lfw_rows():
    return [
        {"grouping": "all", "group": {}, "group_name": "all", "threshold": 0.07, "similarity_threshold": 0.93,
         "genuine_pairs": 300, "false_non_matches": 9, "fnmr": 0.03, "fnmr_lo": 0.02, "fnmr_hi": 0.05,
         "impostor_pairs": 300, "false_matches": 3, "fmr": 0.01, "fmr_lo": 0.003, "fmr_hi": 0.03,
         "interval": "Wilson over protocol pairs"},
        {"grouping": "sex", "group": {"sex": "F"}, "group_name": "sex=F", "threshold": 0.07,
         "similarity_threshold": 0.93, "genuine_pairs": 40, "false_non_matches": 2, "fnmr": 0.05, "fnmr_lo": 0.01,
         "fnmr_hi": 0.16, "impostor_pairs": 12, "false_matches": 0, "fmr": 0.0, "fmr_lo": 0.0, "fmr_hi": 0.24,
         "interval": "Wilson over protocol pairs"},
    ]


def test_lfw_pair_rows_have_a_tidy_table_and_old_runs_that_kept_them_in_the_run_still_read():
    db = Database(":memory:")
    store = EvaluationStore(db)
    ten_fold = {"accuracy": 0.97, "accuracy_std": 0.01, "threshold": 0.07, "pairs": 600}
    new = report().with_lfw(ten_fold, lfw_rows())
    run_id = store.save(new, dataset_name="lfw")
    assert "pairs" not in store.load(run_id).run["lfw"]
    table = store.table("lfw_pairs", run_id)
    assert table["group_name"].tolist() == ["all", "sex=F"] and table["group"].tolist() == [{}, {"sex": "F"}]
    assert list(store.load(run_id).lfw_pair_rows()) == lfw_rows()
    # a run stored before the table: its rows in the run document, none in eval_lfw_pairs
    old = report()
    legacy_run = {**old.run, "run_id": "legacy", "lfw": {"ten_fold": ten_fold, "pairs": lfw_rows()}}
    old_id = store.save(type(old)(run=legacy_run, rates=old.rates), dataset_name="lfw")
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM eval_lfw_pairs WHERE run_id = ?", [old_id]).fetchone() == (0,)
    loaded = store.load(old_id)
    assert list(loaded.lfw_pair_rows()) == lfw_rows() and loaded.lfw_accuracy()["accuracy"] == 0.97


def test_inequity_rows_and_threshold_margins_round_trip():
    db = Database(":memory:")
    store = EvaluationStore(db)
    r = report()
    assert r.inequity_rows and all("threshold_margin" in row and "reproducible" in row for row in r.rates)
    again = store.load(store.save(r))
    assert again.inequity_rows == r.inequity_rows and again == r
    measures = store.table("inequity", r.run["run_id"])
    assert set(measures["measure"]) == {"max_min_ratio", "max_geomean_ratio", "gini", "garbe", "max_difference", "fdr"}
