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


def test_congress_counts_reproduce_from_the_reported_thresholds_in_float32_and_float64(data_dir, real_engine):
    """The issue's case: apply each reported threshold to the engine's own distances and count; get every row back."""
    small = load_manifest(data_dir / "congress_small" / "labels.csv", "bioguide_id", ["sex"], subject_limit=150)
    embedded = embed_dataset(real_engine, small, workers=2)
    cfg = EvaluationConfig(by=(("sex",),), thresholds=(parse_threshold("fmr=1e-3"), parse_threshold("fmr=1e-2")),
                           bootstrap=0)
    report = evaluate_embedded(embedded, cfg)
    x = embedded.embeddings
    subj = np.array(embedded.subjects)
    sex = embedded.table["sex"].to_numpy()
    i, j = np.triu_indices(len(x), 1)
    impostor = subj[i] != subj[j]
    d32 = np.array([1.0 - float(np.dot(x[a], x[b])) for a, b in zip(i, j, strict=True)])  # as Engine.verify
    x64 = x.astype(np.float64)
    d64 = 1.0 - np.einsum("ij,ij->i", x64[i], x64[j])
    checked = 0
    for row in report.rates:
        if row["pairing"] == "cross" or not row["reproducible"]:
            continue
        member = np.ones(i.size, dtype=bool) if row["pairing"] == "all" else (
            (sex[i] == row["group"]["sex"]) & (sex[j] == row["group"]["sex"]))
        for d in (d32, d64):
            match = d <= row["threshold"]
            assert int((member & impostor & match).sum()) == row["false_matches"], row["threshold_name"]
            assert int((member & ~impostor & ~match).sum()) == row["false_non_matches"], row["threshold_name"]
        checked += 1
    calibrated = [r for r in report.rates if r["threshold_source"] == "calibrated" and r["pairing"] != "cross"]
    assert calibrated and all(r["reproducible"] for r in calibrated) and checked >= len(calibrated)
