"""The chance of a false candidate on Search comes from the evaluation the deployment designates (AppTest).

No picker: the operator sees the designated run's figure, and when an admin designates another run
the page quotes that one. Without a designation the page says so and quotes no chance. Fake face
models; two synthetic evaluations under the gallery's model configuration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit import AuditContext, EvaluationConfig, EvaluationStore, Runtime, evaluate_embeddings
from tests.auth import actor_for
from tests.dashboard.web.test_threshold_policy_page import env, page  # noqa: F401  (fixture)

pytestmark = [pytest.mark.model]

SEARCH = "app_pages/search.py"


def store_run(db: str, embedding_key: str, seed: int, common: float) -> str:
    """An evaluation whose faces share ``common`` of one direction: 0 far apart (no false match), 1 all alike."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(30), 3)
    x = common * 20 * np.ones((90, 16)) + rng.normal(size=(30, 16))[subjects] + 0.3 * rng.normal(size=(90, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = pd.DataFrame({"sex": np.where(subjects % 2, "F", "M")})
    report = evaluate_embeddings(x, subjects, labels, EvaluationConfig(by=(("sex",),), default_threshold=0.3,
                                                                      bootstrap=10),
                                 dataset_fingerprint=f"fake-{seed}",
                                 model_config={"model": "Dlib", "embedding_key": embedding_key})
    rt = Runtime(db)
    try:
        return EvaluationStore(rt.db).save(report, dataset_name=f"set_{seed}")
    finally:
        rt.close()


def designate(db: str, run_id: str | None) -> None:
    rt = Runtime(db)
    try:
        engine = rt.engine_for_gallery("g")
        rt.audited(engine, AuditContext(purpose="designate the evaluation"), actor_for(rt.db, "root", "admin")
                   ).set_threshold_policy(None, None, reason="the board's chosen evaluation", evaluation=run_id)
    finally:
        rt.close()


def expected(db: str, run_id: str) -> str:
    rt = Runtime(db)
    try:
        size, threshold = rt.galleries.info("g").size, round(rt.engine_for_gallery("g").config.threshold, 3)
        return f"{EvaluationStore(rt.db).load(run_id).chance_of_false_candidate(size, threshold).value:.1%}"
    finally:
        rt.close()


def chance_shown(db: str) -> str:
    at = page(SEARCH)
    assert not [s for s in at.selectbox if s.key == "search_evaluation"]  # the operator picks no evaluation
    (before,) = [w.value for w in at.warning if "Before you search" in w.value]
    return before.split("probability **")[1].split("**")[0]


def test_search_quotes_the_designated_evaluation_and_follows_a_new_designation(env: tuple[str, float]) -> None:  # noqa: F811
    db, _ = env
    rt = Runtime(db)
    key = rt.engine_for_gallery("g").config.embedding_key
    rt.close()
    tight, loose = store_run(db, key, 1, 0.0), store_run(db, key, 2, 1.0)
    at = page(SEARCH)
    assert any("designates no evaluation" in i.value for i in at.info)
    assert not [w for w in at.warning if "Before you search" in w.value]
    designate(db, tight)
    assert chance_shown(db) == expected(db, tight)
    designate(db, loose)
    assert chance_shown(db) == expected(db, loose)
    assert expected(db, tight) != expected(db, loose)  # the two runs disagree: which one is quoted matters
