"""The Demographic performance page: inequity measures explained, a vendor's run in its own units, names as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from audit import (
    MEASURE_EXPLANATIONS,
    EvaluationConfig,
    EvaluationStore,
    ScoreConvention,
    evaluate_listed,
    listed_pairs,
    load_label_manifest,
    parse_threshold,
    read_pair_scores,
)
from core import Database
from tests.dashboard.conftest import APP, as_user

PAGE = "app_pages/demographics.py"
VENDOR = "**Vendor** _X_ [link](http://example.invalid)"


def add_vendor_run(db_path: str, folder: Path) -> str:
    """A system's run from a synthetic similarity score file (0-100), stored beside the fake scene's."""
    rng = np.random.default_rng(1)
    subj = np.repeat(np.arange(30), 3)
    x = rng.standard_normal((30, 8))[subj] + 0.8 * rng.standard_normal((90, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"img/{k:02d}.jpg" for k in range(90)]
    (folder / "m.csv").write_text("image,person,sex\n" + "".join(
        f"{n},s{s:02d},{'F' if s % 2 else 'M'}\n" for n, s in zip(names, subj, strict=True)))
    i, j = np.triu_indices(90, 1)
    score = np.round(np.clip(100 * np.einsum("ij,ij->i", x[i], x[j]), 0, 100), 2)
    (folder / "s.csv").write_text("image_a,image_b,score\n" + "".join(
        f"{names[a]},{names[b]},{v}\n" for a, b, v in zip(i, j, score, strict=True)))
    ds = load_label_manifest(folder / "m.csv", "person")
    pairs = listed_pairs(read_pair_scores(folder / "s.csv", ds.table["image"].tolist(), ds.subjects), ds, ["sex"],
                         ScoreConvention("similarity"))
    cfg = EvaluationConfig(by=(("sex",),), thresholds=(parse_threshold("score=80"), parse_threshold("fmr=0.01")),
                           include_default=False, bootstrap=20, min_impostor_pairs=10, min_subjects=2)
    report = evaluate_listed(pairs, cfg, dataset_fingerprint=ds.fingerprint, run={
        "system": {"name": VENDOR, "version": "2.1", "score_direction": "similarity", "scores_sha256": "ab" * 32}})
    db = Database(db_path)
    try:
        return EvaluationStore(db).save(report, dataset_name="vendor_set")
    finally:
        db.close()


def text_of(at: AppTest) -> list[str]:
    return [str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.subheader)]


def test_the_page_explains_every_inequity_measure_and_shows_them_for_the_chosen_threshold(app_env: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert "Inequity measures" in text_of(at)
    for measure, sentence in MEASURE_EXPLANATIONS.items():
        assert any(sentence in t and measure in t for t in text_of(at))
    tables = [d.value for d in at.dataframe]
    measures = next(t for t in tables if "measure" in t.columns)
    assert set(measures["measure"]) == set(MEASURE_EXPLANATIONS)
    assert set(measures["metric"]) == {"false_match_rate", "false_non_match_rate", "combined"}


def test_a_vendor_run_reads_in_its_own_units_and_its_name_is_text_not_markup(app_env: str, tmp_path: Path) -> None:
    add_vendor_run(app_env, tmp_path)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_user"] = as_user("auditor1", "auditor")
    at.run()
    at.switch_page(PAGE).run()
    run = next(o for o in at.selectbox(key="demographics_run").options if o.startswith("vendor_set"))
    at.selectbox(key="demographics_run").set_value(run).run()
    at.selectbox(key="demographics_threshold").set_value("score=80").run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Threshold (system score, match iff score >= threshold)" in labels
    assert next(m.value for m in at.metric if m.label.startswith("Threshold")) == "80"
    caption = next(t for t in text_of(at) if "Dataset" in t)
    escaped = "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~$" else c for c in VENDOR)
    assert escaped in caption and VENDOR not in caption  # every markdown character escaped: shown as text
    assert any("reproduces" in t or "recount in float32" in t for t in text_of(at))
