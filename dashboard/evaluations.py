"""Adapter between the dashboard and the evaluation module (``audit.evaluate``, ``audit.datasets``).

It does three small things the dashboard and the demo need and the evaluation
module leaves to its callers:

* embeds a dataset *through the gallery store's embedding cache* (so the demo's
  second pass over ``lfw_small`` costs nothing), by handing
  :func:`audit.evaluate.evaluate_dataset` an engine whose ``embed_batch`` uses it;
* keeps each :class:`~audit.evaluate.EvaluationReport` (``to_dict()`` JSON) in the
  table ``dashboard_evaluations``, keyed by dataset fingerprint and embedding key,
  so an evaluation runs once per dataset and model;
* records each run in the audit log (``evaluate`` action).

When the evaluation module ships its own report store this file is where the
dashboard switches to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.datasets import Dataset, load_manifest
from audit.evaluate import EvaluationConfig, EvaluationReport, evaluate_dataset, parse_threshold
from audit.service import AuditContext
from core.db import Database
from core.engine import Engine
from dashboard.runtime import Runtime

__all__ = ["StoredEvaluation", "EvaluationStore", "evaluate_once", "demo_config"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS dashboard_evaluations (
        run_id VARCHAR PRIMARY KEY,
        dataset VARCHAR NOT NULL,
        dataset_fingerprint VARCHAR NOT NULL,
        embedding_key VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        report JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)


@dataclass(frozen=True)
class StoredEvaluation:
    """One stored evaluation run."""

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
    """Evaluation reports in the facetrail database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema("dashboard_evaluations", _SCHEMA)

    def save(self, dataset: str, embedding_key: str, report: EvaluationReport) -> StoredEvaluation:
        """Store ``report``."""
        run = report.run
        with self.db.connect(transaction=True) as con:
            con.execute(
                "INSERT INTO dashboard_evaluations (run_id, dataset, dataset_fingerprint, embedding_key, model, "
                "report) VALUES (?, ?, ?, ?, ?, ?)",
                [str(run["run_id"]), dataset, str(run.get("dataset_fingerprint") or ""), embedding_key,
                 str(dict(run.get("model_config") or {}).get("model", "")), json.dumps(report.to_dict())],
            )
        return self.find(str(run["run_id"]))

    def list(self) -> list[StoredEvaluation]:
        """Every stored run, newest first."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT run_id, dataset, dataset_fingerprint, embedding_key, model, created_at "
                "FROM dashboard_evaluations ORDER BY created_at DESC"
            ).fetchall()
        return [StoredEvaluation(*r[:5], r[5].isoformat()) for r in rows]

    def find(self, run_id: str) -> StoredEvaluation:
        """One run's catalogue entry (``KeyError`` if absent)."""
        for item in self.list():
            if item.run_id == run_id:
                return item
        raise KeyError(run_id)

    def load(self, run_id: str) -> EvaluationReport:
        """The report of one run (``KeyError`` if absent)."""
        with self.db.connect() as con:
            rows = con.execute("SELECT report FROM dashboard_evaluations WHERE run_id = ?", [run_id]).fetchall()
        if not rows:
            raise KeyError(run_id)
        return EvaluationReport.from_dict(json.loads(rows[0][0]))

    def existing(self, dataset_fingerprint: str, embedding_key: str) -> StoredEvaluation | None:
        """The newest run of this dataset under this embedding key, if any."""
        for item in self.list():
            if item.dataset_fingerprint == dataset_fingerprint and item.embedding_key == embedding_key:
                return item
        return None

    def latest_for(self, embedding_key: str, dataset: str | None = None) -> EvaluationReport | None:
        """The newest report for an embedding key (and dataset, if named)."""
        for item in self.list():
            if item.embedding_key == embedding_key and (dataset is None or item.dataset == dataset):
                return self.load(item.run_id)
        return None


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
    """What the demo evaluates: each label alone and crossed, at the default and two calibrated thresholds."""
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
        return f"already evaluated (run {found.run_id[:12]})"
    config = demo_config(labels, engine.config.threshold, bootstrap)
    report = evaluate_dataset(_CachedEngine(engine, runtime, workers), dataset, config)
    stored = store.save(name, key, report)
    service = runtime.audited(engine, AuditContext(
        operator, f"demographic evaluation of {name}", "DEMO-EVAL", "demo scene: accuracy testing"))
    service.record_evaluation(
        {"dataset": name, "dataset_fingerprint": dataset.fingerprint, "run_id": stored.run_id,
         "images": int(report.run.get("images", 0)), "subjects": int(report.run.get("subjects", 0)),
         "thresholds": {k: float(v) for k, v in report.thresholds().items()}},
        model_config=engine.config.to_dict(),
    )
    return f"stored run {stored.run_id[:12]} ({report.run.get('images')} images)"
