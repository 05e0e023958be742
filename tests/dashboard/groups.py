"""A stored evaluation with two groupings (sex F/M, race a/b), for the tests of the probe's group."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from audit import EvaluationConfig, EvaluationStore, Runtime, evaluate_embeddings

#: The group labels the evaluation measures, as the probe's group is given.
LABELS = ["race=a", "race=b", "sex=F", "sex=M"]


def evaluate_two_groupings(rt: Runtime, config: dict[str, Any]) -> str:
    """Store an evaluation of ``config`` over 30 synthetic subjects labelled by sex and race; return its run id."""
    rng = np.random.default_rng(2)
    subjects = np.repeat(np.arange(30), 3)
    x = rng.normal(size=(30, 16))[subjects] + 0.6 * rng.normal(size=(90, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = pd.DataFrame({"sex": np.where(subjects % 2, "F", "M"), "race": np.where(subjects % 3, "a", "b")})
    report = evaluate_embeddings(x, subjects, labels, EvaluationConfig(by=(("sex",), ("race",)), bootstrap=10),
                                 dataset_fingerprint="fake", model_config=config)
    EvaluationStore(rt.db).save(report, dataset_name="fake_set")
    (run,) = [r.run_id for r in EvaluationStore(rt.db).list()]
    return run
