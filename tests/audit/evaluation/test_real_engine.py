"""Evaluation through the real engine on a slice of the shared datasets (model + data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.evaluation.config import EvaluationConfig, parse_threshold
from audit.evaluation.datasets import load_manifest
from audit.evaluation.embedding import embed_dataset, evaluate_embedded
from audit.evaluation.identification import identification_rates
from audit.evaluation.store import EvaluationStore
from core.storage.connection import Database

pytestmark = [pytest.mark.model, pytest.mark.data, pytest.mark.slow]


def test_congress_slice_through_engine(data_dir, real_engine):
    small = load_manifest(data_dir / "congress_small" / "labels.csv", "bioguide_id", ["sex", "race_house_historian"],
                          subject_limit=40)
    embedded = embed_dataset(real_engine, small, workers=2)
    assert embedded.embeddings.shape[1] == 128
    cfg = EvaluationConfig(
        by=(("sex",), ("race_house_historian",)), thresholds=(parse_threshold("fmr=1e-2"),), bootstrap=100
    )
    report = evaluate_embedded(embedded, cfg)
    df = report.rates_frame()
    overall = df[(df["pairing"] == "all") & (df["threshold_name"] == "fmr=0.01")].iloc[0]
    assert overall["fmr"] <= 0.01
    assert overall["genuine_pairs"] <= 40
    assert report.run["model_config"]["model"] == "Dlib"
    assert "default" in set(df["threshold_name"])  # the model config's own threshold
    fta = report.fta()
    assert int(fta[fta["group_name"] == "all"]["images"].iloc[0]) == len(small)
    # the 2023 photos as probes against the 2019 photos: every probe is mated
    table = embedded.table
    probes = np.array([str(p).endswith("c118.jpg") for p in table["image"]])
    rows = identification_rates(
        embedded.embeddings[probes],
        table.loc[probes, "bioguide_id"].tolist(),
        embedded.embeddings[~probes],
        table.loc[~probes, "bioguide_id"].tolist(),
        report.thresholds(),
    )
    top = next(r for r in rows if r["threshold_name"] == "fmr=0.01")
    assert top["rank1_rate"] > 0.9
    assert not math.isnan(top["fpir"])
    store = EvaluationStore(Database(":memory:"))
    assert store.load(store.save(report)) == report
