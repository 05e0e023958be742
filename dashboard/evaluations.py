"""Adapter between the dashboard and the evaluation module (``audit.evaluate``, ``audit.datasets``).

It does three small things the dashboard and the demo need and the evaluation
module leaves to its callers:

* embeds a dataset *through the gallery store's embedding cache* (so the demo's
  second pass over ``lfw_small`` costs nothing), by handing
  :func:`audit.evaluate.evaluate_dataset` an engine whose ``embed_batch`` uses it;
* lists the runs of the evaluation module's store (:mod:`audit.eval_store`) with
  their dataset and model for the pages' selectors, and evaluates a dataset only
  when no run of it under the same embedding key exists;
* records each run in the audit log (``evaluate`` action).

"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.datasets import Dataset, load_manifest
from audit.eval_store import EvaluationStore as RunStore
from audit.evaluate import EvaluationConfig, EvaluationReport, evaluate_dataset, parse_threshold
from audit.service import AuditContext
from core.db import Database
from core.engine import Engine
from dashboard.runtime import Runtime

__all__ = ["StoredEvaluation", "EvaluationStore", "evaluate_once", "demo_config"]

@dataclass(frozen=True)
class StoredEvaluation:
    """One stored evaluation run, as the dashboard lists it."""

    run_id: str
    dataset: str
    dataset_fingerprint: str
    embedding_key: str
    model: str
    created_at: str

    @property
    def label(self) -> str:
        """Short label for selectors: dataset, model, date."""
        return f"{self.dataset} · {self.model} · {self.created_at[:16]}"


class EvaluationStore:
    """The evaluation module's run store (:class:`audit.eval_store.EvaluationStore`), listed for selectors.

    Runs are only ever inserted, so reports and model names are cached per run id.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.store = RunStore(db)
        self._reports: dict[str, EvaluationReport] = {}

    def save(self, dataset: str, report: EvaluationReport) -> StoredEvaluation:
        """Store ``report`` under ``dataset``."""
        return self.find(self.store.save(report, dataset_name=dataset))

    def list(self) -> list[StoredEvaluation]:
        """Every stored run, newest first."""
        out = []
        for row in self.store.runs().itertuples(index=False):
            run_id = str(row.run_id)
            model = dict(self.load(run_id).run.get("model_config") or {}).get("model") or "?"
            out.append(StoredEvaluation(run_id, str(row.dataset_name or "?"), str(row.dataset_fingerprint or ""),
                                        str(row.embedding_key or ""), str(model), str(row.created)))
        return out

    def find(self, run_id: str) -> StoredEvaluation:
        """One run's catalogue entry (``KeyError`` if absent)."""
        for item in self.list():
            if item.run_id == run_id:
                return item
        raise KeyError(run_id)

    def load(self, run_id: str) -> EvaluationReport:
        """Return the report of one run (``KeyError`` if absent)."""
        if run_id not in self._reports:
            self._reports[run_id] = self.store.load(run_id)
        return self._reports[run_id]

    def existing(self, dataset_fingerprint: str, embedding_key: str) -> str | None:
        """Return the newest run of this dataset under this embedding key, if any."""
        return self.store.latest(embedding_key=embedding_key, dataset_fingerprint=dataset_fingerprint)


class _CachedEngine:
    """An engine whose ``embed_batch`` reads and fills the embedding cache."""

    def __init__(self, engine: Engine, runtime: Runtime, workers: int | None) -> None:
        self.config = engine.config
        self._engine = engine
        self._cache = runtime.galleries.cache
        self._workers = workers

    def embed_batch(self, paths: Sequence[str | os.PathLike[str]]) -> Any:
        return self._engine.embed_batch(paths, cache=self._cache, workers=self._workers)


def demo_config(labels: Sequence[str], default_threshold: float, bootstrap: int) -> EvaluationConfig:
    """Return what the demo evaluates: each label alone and crossed, at the default and two calibrated thresholds."""
    by = tuple((c,) for c in labels) + ((tuple(labels),) if len(labels) > 1 else ())
    return EvaluationConfig(
        by=by,
        thresholds=(parse_threshold("fmr=1e-3"), parse_threshold("fmr=1e-4")),
        default_threshold=default_threshold,
        bootstrap=bootstrap,
    )


def _limited(dataset: Dataset, limit: int | None) -> Dataset:
    if limit is None:
        return dataset
    keep = sorted(set(dataset.subjects))[:limit]
    table = dataset.table[dataset.table[dataset.subject_column].isin(keep)].reset_index(drop=True)
    digest = hashlib.sha256(f"{dataset.fingerprint}:first-{limit}-subjects".encode()).hexdigest()
    return dataclasses.replace(dataset, table=table, fingerprint=digest)


def evaluate_once(
    runtime: Runtime,
    engine: Engine,
    manifest: str | os.PathLike[str],
    subject_column: str,
    labels: Sequence[str],
    *,
    limit: int | None = None,
    bootstrap: int = 200,
    workers: int | None = None,
    operator: str = "auditor1",
) -> str:
    """Evaluate a manifest dataset under ``engine`` unless already done; return what happened."""
    dataset = _limited(load_manifest(manifest, subject_column, list(labels), check_images=False), limit)
    name = os.path.basename(os.path.dirname(os.path.abspath(os.fspath(manifest)))) or dataset.name
    store = EvaluationStore(runtime.db)
    key = engine.config.embedding_key
    found = store.existing(dataset.fingerprint, key)
    if found is not None:
        return f"already evaluated (run {found[:12]})"
    config = demo_config(labels, engine.config.threshold, bootstrap)
    report = evaluate_dataset(_CachedEngine(engine, runtime, workers), dataset, config)
    stored = store.save(name, report)
    service = runtime.audited(engine, AuditContext(
        operator, f"demographic evaluation of {name}", "DEMO-EVAL", "demo scene: accuracy testing"))
    service.record_evaluation(
        {"dataset": name, "dataset_fingerprint": dataset.fingerprint, "run_id": stored.run_id,
         "images": int(report.run.get("images", 0)), "subjects": int(report.run.get("subjects", 0)),
         "thresholds": {k: float(v) for k, v in report.thresholds().items()}},
        model_config=engine.config.to_dict(),
    )
    return f"stored run {stored.run_id[:12]} ({report.run.get('images')} images)"
