"""What the synthetic-gallery benchmarks share: a face box, a model configuration no weights back, unit vectors.

Benchmarks of storage, sealing and the audit log need galleries of random 128-d unit
vectors under a configuration that names no real weights (``bench.dat``): every run of them
is comparable, and none needs a model or a dataset.
"""

from __future__ import annotations

import numpy as np

from core import Face, ModelConfig, ThresholdSource

__all__ = ["CONFIG", "DIMS", "FACE", "vectors"]

#: The face box every synthetic embedding claims.
FACE = Face(0, 0, 10, 10, 1.0, "dlib")
#: A Dlib-shaped configuration with a user threshold and placeholder weights (no model is loaded).
CONFIG = ModelConfig(model="Dlib", detector="dlib", alignment="dlib_5pt", threshold=0.3,
                     threshold_source=ThresholdSource(kind="user", description="benchmark"),
                     weights_sha256=(("bench.dat", "0" * 64),), versions=(("deepface", "bench"),))
#: Dlib's embedding size.
DIMS = 128


def vectors(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors of :data:`DIMS` float32 (the same for the same seed)."""
    x = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
