"""Adapter between the dashboard and the evaluation module (``audit.evaluation.evaluate``, ``audit.evaluation.datasets``).

It does a few small things the dashboard and the demo need and the evaluation
module leaves to its callers:

* embeds a dataset *through the gallery store's embedding cache* (so the demo's
  second pass over ``lfw_small`` costs nothing);
* adds 1:N rates of a dataset's probes against a gallery's images (``audit.evaluation.identification``);
* lists the runs of the evaluation module's store (:mod:`audit.evaluation.store`) with
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

import numpy as np

from audit import (
    AuditContext,
    Dataset,
    EvaluationConfig,
    EvaluationReport,
    evaluate_dataset,
    identification_rates,
    load_manifest,
    parse_threshold,
)
from audit import (
    EvaluationStore as RunStore,
)
from core.storage.connection import Database
from core.engine import Engine
from audit.runtime import Runtime

__all__ = ["Identification", "StoredEvaluation", "EvaluationStore", "evaluate_once", "demo_config", "THRESHOLD_GRID"]

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
    """The evaluation module's run store (:class:`audit.evaluation.store.EvaluationStore`), listed for selectors.

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


def demo_config(labels: Sequence[str], default_threshold: float, bootstrap: int) -> EvaluationConfig:
    """Return what the demo evaluates: each label alone and crossed, at the default and two calibrated thresholds."""
    by = tuple((c,) for c in labels) + ((tuple(labels),) if len(labels) > 1 else ())
    return EvaluationConfig(
        by=by,
        thresholds=(parse_threshold("fmr=1e-3"), parse_threshold("fmr=1e-4")),
        default_threshold=default_threshold,
        bootstrap=bootstrap,
    )


@dataclass(frozen=True)
class Identification:
    """A 1:N measurement to add to an evaluation: the dataset's probes against a gallery's images."""

    gallery_paths: tuple[str, ...]
    """The gallery's source images (embedded through the cache, failures left out as enrolment does)."""
    gallery_subjects: tuple[str, ...]
    """Their subjects."""
    probe_suffix: str
    """Only dataset images whose path ends with this are probes (``"c118.jpg"``)."""


#: Distances at which 1:N rates are measured: the Search page's slider grid.
THRESHOLD_GRID = tuple(round(0.01 + 0.005 * k, 3) for k in range(59))


def _vectors(engine: Engine, paths: Sequence[str], **embed: Any) -> tuple[np.ndarray, list[bool]]:
    batch = engine.embed_batch(paths, **embed)
    ok = [p in batch.embeddings for p in paths]
    vectors = [np.asarray(batch.embeddings[p].vector, dtype=np.float32) for p, o in zip(paths, ok, strict=True) if o]
    return np.stack(vectors), ok


def _identification(
    engine: Engine, dataset: Dataset, labels: Sequence[str], spec: Identification, **embed: Any
) -> list[dict[str, Any]]:
    table = dataset.table.reset_index(drop=True)
    paths = [str(p) for p in dataset.paths()]
    chosen = [i for i, p in enumerate(paths) if p.endswith(spec.probe_suffix)]
    probe_vectors, ok = _vectors(engine, [paths[i] for i in chosen], **embed)
    rows = table.iloc[[i for i, o in zip(chosen, ok, strict=True) if o]].reset_index(drop=True)
    gallery_vectors, g_ok = _vectors(engine, list(spec.gallery_paths), **embed)
    subjects = [s for s, o in zip(spec.gallery_subjects, g_ok, strict=True) if o]
    thresholds = {f"{t:.3f}": t for t in (*THRESHOLD_GRID, round(engine.config.threshold, 3))}
    return identification_rates(
        probe_vectors, rows[dataset.subject_column].tolist(), gallery_vectors, subjects, thresholds,
        probe_labels=rows[list(labels)], by=[(c,) for c in labels],
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
    identify: Identification | None = None,
) -> str:
    """Evaluate a manifest dataset under ``engine`` unless already done; return what happened.

    With ``identify``, the report also holds 1:N rates of the dataset's probes against that
    gallery (so the Search page can state the *measured* chance of a false candidate).
    """
    dataset = _limited(load_manifest(manifest, subject_column, list(labels), check_images=False), limit)
    name = os.path.basename(os.path.dirname(os.path.abspath(os.fspath(manifest)))) or dataset.name
    store = EvaluationStore(runtime.db)
    key = engine.config.embedding_key
    found = store.existing(dataset.fingerprint, key)
    if found is not None:
        return f"already evaluated (run {found[:12]})"
    config = demo_config(labels, engine.config.threshold, bootstrap)
    embed = {"cache": runtime.galleries.cache, "workers": workers}
    report = evaluate_dataset(engine, dataset, config, **embed)
    if identify is not None:
        report = report.with_identification(_identification(engine, dataset, labels, identify, **embed))
    stored = store.save(name, report)
    session = runtime.session(AuditContext(
        operator, f"demographic evaluation of {name}", "DEMO-EVAL", "demo scene: accuracy testing"))
    session.record("evaluate", {
        "details": {"dataset": name, "dataset_fingerprint": dataset.fingerprint, "run_id": stored.run_id,
                    "images": int(report.run.get("images", 0)), "subjects": int(report.run.get("subjects", 0)),
                    "thresholds": {k: float(v) for k, v in report.thresholds().items()}},
        "model_config": engine.config.to_dict(),
    })
    return f"stored run {stored.run_id[:12]} ({report.run.get('images')} images)"
