"""A dataset's images through an engine: :func:`embed_dataset` -> :class:`EmbeddedDataset`.

Every image is embedded once through :meth:`core.engine.Engine.embed_batch`, with
the embedding cache when one is given, and with the SHA-256 the dataset loader
already computed (so an image whose embedding is cached is read once, by the
loader, and never hashed twice). Images without a usable face are kept as
*failures to acquire* with their error code, in table order.
:func:`evaluate_embedded` evaluates the result with the model configuration's
threshold as ``"default"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from audit.evaluation.config import EvaluationConfig, threshold_kind
from audit.evaluation.datasets import Dataset
from audit.evaluation.report import EvaluationReport
from audit.evaluation.verification import evaluate_embeddings
from core.cache import EmbeddingCache
from core.engine import Engine

__all__ = ["EmbeddedDataset", "embed_dataset", "evaluate_embedded"]


@dataclass(frozen=True, eq=False)
class EmbeddedDataset:
    """A dataset's images through an engine: embeddings of acquired images and the failures."""

    dataset: Dataset
    """The dataset."""
    embeddings: np.ndarray
    """``(n_ok, d)`` float32 embeddings of the acquired images, in table order."""
    ok: np.ndarray
    """``(n,)`` bool: whether each table row was acquired."""
    failure_codes: tuple[str, ...]
    """Failure code per failed row (``"no_face"``, ``"unreadable_image"`` ...), in table order."""
    model_config: Mapping[str, Any]
    """The engine's ``config.to_dict()``."""
    computed: int = 0
    """Images embedded now (the others came from the cache)."""

    @property
    def table(self) -> pd.DataFrame:
        """Rows of acquired images."""
        return self.dataset.table.loc[self.ok].reset_index(drop=True)

    @property
    def failed_table(self) -> pd.DataFrame:
        """Rows of images that failed to acquire."""
        return self.dataset.table.loc[~self.ok].reset_index(drop=True)

    @property
    def subjects(self) -> list[str]:
        """Subject of each acquired image."""
        return [str(s) for s in self.table[self.dataset.subject_column]]


def embed_dataset(
    engine: Engine,
    dataset: Dataset,
    *,
    cache: EmbeddingCache | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> EmbeddedDataset:
    """Embed every image of ``dataset`` once with ``engine`` (through ``cache`` when given).

    Each image's face is chosen by the dataset's subject-face rule
    (:attr:`~audit.evaluation.datasets.Dataset.subject_face`), whatever the engine's own
    face policy: which face is the labelled person is a fact about the dataset, and every
    configuration evaluated on it must embed the same person.

    Parameters
    ----------
    engine
        The engine (its configuration is the run's model configuration).
    dataset
        A loaded dataset (its ``sha256`` column is passed on, so no image is hashed twice).
    cache
        The embedding cache (embeddings of unchanged images are not recomputed).
    workers, progress
        As for :meth:`core.engine.Engine.embed_batch`.
    """
    engine = engine.with_face_policy(dataset.subject_face)
    paths = [str(p) for p in dataset.paths()]
    hashes = dict(zip(paths, dataset.table["sha256"], strict=True))
    batch = engine.embed_batch(paths, cache=cache, workers=workers, progress=progress, known_hashes=hashes)
    vectors = batch.embeddings
    codes = {str(f.image): f.code for f in batch.failures}
    ok = np.array([p in vectors for p in paths], dtype=bool)
    dim = engine.config.dimensions
    emb = (
        np.stack([np.asarray(vectors[p].vector, dtype=np.float32) for p in paths if p in vectors])
        if vectors
        else np.zeros((0, dim), dtype=np.float32)
    )
    return EmbeddedDataset(
        dataset=dataset,
        embeddings=emb,
        ok=ok,
        failure_codes=tuple(codes.get(p, "failure") for p, o in zip(paths, ok, strict=True) if not o),
        model_config=engine.config.to_dict(),
        computed=batch.computed,
    )


def evaluate_embedded(embedded: EmbeddedDataset, config: EvaluationConfig | None = None) -> EvaluationReport:
    """Evaluate an :class:`EmbeddedDataset` (FTA per group from its failures).

    The model configuration's threshold becomes the ``"default"`` threshold (with the
    kind of its provenance) when the evaluation config names none and includes it.
    """
    cfg = config or EvaluationConfig()
    if cfg.default_threshold is None and cfg.include_default:
        default = embedded.model_config.get("threshold")
        if isinstance(default, int | float):
            kind = threshold_kind(str(dict(embedded.model_config.get("threshold_source") or {}).get("kind", "user")))
            cfg = replace(cfg, default_threshold=float(default), default_source=kind)
    ds = embedded.dataset
    cols = list(ds.label_columns)
    return evaluate_embeddings(
        embedded.embeddings,
        embedded.subjects,
        embedded.table[cols],
        cfg,
        failed_labels=embedded.failed_table[cols],
        dataset_fingerprint=ds.fingerprint,
        model_config=embedded.model_config,
    )
