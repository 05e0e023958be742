"""Embedding cache keyed by (image SHA-256, embedding key).

An image whose bytes have not changed is never embedded twice under the same
configuration. Outcomes that are properties of the image (no face found, several
faces under the ``refuse`` policy) are cached too, so a re-run reports them
without recomputing. Entries of one image are purged when that image is erased
from every gallery (see :meth:`core.gallery.GalleryStore.delete_subject`).

Every cached face names the detector that found it. An entry written before
faces named their detector is treated as absent and replaced when the image is
embedded again (its key is the same: a configuration without fallback
detectors computes the same embeddings as before).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.results import Face
from core.storage.connection import Database

__all__ = ["CachedOutcome", "EmbeddingCache"]

#: Failures that belong to the image itself and can be cached.
CACHEABLE_ERRORS = frozenset({"no_face", "multiple_faces"})


@dataclass(frozen=True, eq=False)
class CachedOutcome:
    """What the cache knows of one image: an embedding, or a failure code."""

    image_sha256: str
    vector: np.ndarray | None
    face: Face | None
    faces_detected: int
    error_code: str | None
    error_message: str | None


class EmbeddingCache:
    """Persistent cache of embeddings in the facetrail database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_many(self, hashes: Sequence[str], embedding_key: str) -> dict[str, CachedOutcome]:
        """Return the cached outcomes for ``hashes`` under ``embedding_key``."""
        if not hashes:
            return {}
        with self.db.connect() as con:
            table = con.sql(
                "SELECT image_sha256, embedding, face, faces_detected, error_code, error_message "
                "FROM embedding_cache WHERE embedding_key = $1 AND list_contains($2, image_sha256)",
                params=[embedding_key, list(set(hashes))],
            ).to_arrow_table()
        out: dict[str, CachedOutcome] = {}
        for row in table.to_pylist():
            vector = np.asarray(row["embedding"], dtype=np.float32) if row["embedding"] is not None else None
            face_data = json.loads(row["face"]) if row["face"] else None
            if face_data is not None and "detector" not in face_data:
                continue  # written before faces named their detector: recompute (put_many replaces it)
            face = Face.from_dict(face_data) if face_data is not None else None
            out[row["image_sha256"]] = CachedOutcome(
                image_sha256=row["image_sha256"],
                vector=vector,
                face=face,
                faces_detected=int(row["faces_detected"]),
                error_code=row["error_code"],
                error_message=row["error_message"],
            )
        return out

    def put_many(
        self, embedding_key: str, outcomes: Iterable[CachedOutcome], *, replace: Sequence[str] = ()
    ) -> None:
        """Store outcomes.

        An existing entry for the same image and key is kept, unless its face names
        no detector or its image is in ``replace`` (entries the caller found stale).
        """
        items = list(outcomes)
        if not items:
            return
        stale = sorted(set(replace) & {o.image_sha256 for o in items})
        rows = pa.table(
            {
                "image_sha256": [o.image_sha256 for o in items],
                "embedding_key": [embedding_key] * len(items),
                "embedding": pa.array(
                    [o.vector.astype(np.float32) if o.vector is not None else None for o in items],
                    type=pa.list_(pa.float32()),
                ),
                "face": [json.dumps(o.face.to_dict()) if o.face is not None else None for o in items],
                "faces_detected": pa.array([o.faces_detected for o in items], type=pa.int32()),
                "error_code": pa.array([o.error_code for o in items], type=pa.string()),
                "error_message": pa.array([o.error_message for o in items], type=pa.string()),
            }
        )
        with self.db.connect(transaction=True) as con:
            con.execute(
                "DELETE FROM embedding_cache WHERE embedding_key = $1 AND list_contains($2, image_sha256) "
                "AND face IS NOT NULL AND json_extract(face, '$.detector') IS NULL",
                [embedding_key, [o.image_sha256 for o in items]],
            )
            if stale:
                con.execute(
                    "DELETE FROM embedding_cache WHERE embedding_key = $1 AND list_contains($2, image_sha256)",
                    [embedding_key, stale],
                )
            con.register("cache_rows", rows)
            con.execute(
                "INSERT INTO embedding_cache (image_sha256, embedding_key, embedding, face, faces_detected, "
                "error_code, error_message) SELECT image_sha256, embedding_key, embedding, face::JSON, "
                "faces_detected, error_code, error_message FROM cache_rows ON CONFLICT DO NOTHING"
            )
            con.unregister("cache_rows")

    def purge(self, hashes: Sequence[str]) -> int:
        """Erase every cached entry of these images, under every configuration."""
        if not hashes:
            return 0
        with self.db.connect(transaction=True) as con:
            count = con.execute(
                "SELECT count(*) FROM embedding_cache WHERE list_contains(?, image_sha256)", [list(hashes)]
            ).fetchall()[0]
            con.execute("DELETE FROM embedding_cache WHERE list_contains(?, image_sha256)", [list(hashes)])
        return int(count[0]) if count else 0
