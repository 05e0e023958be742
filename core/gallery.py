"""Galleries: named sets of enrolled faces in DuckDB, with an in-memory index.

A gallery is bound to one :attr:`ModelConfig.embedding_key` when it is created;
enrolling or searching with embeddings of another key is a
:class:`ConfigMismatch`. Every enrolment and deletion changes the gallery's
**fingerprint** (face count plus an order-independent hash of the face ids), so
an audit record that names a gallery's fingerprint names the exact reference
database a search ran against.

The search index lives in memory, one :class:`~core.index.ExactIndex` per
gallery and process. Changes made through this store update it in place; a
change made by another process is noticed by the fingerprint check in
:meth:`GalleryStore.load`, which then reloads the gallery.

Deleting a face or a subject deletes its embeddings from the gallery, purges
the image's cached embeddings (unless another gallery still holds the image),
removes it from the in-memory index, and checkpoints the database so the rows
are not left in the write-ahead log.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from core.cache import EmbeddingCache
from core.config import MODELS, ModelConfig
from core.errors import BadInput, ConfigMismatch, GalleryExists, GalleryNotFound, NotFound
from core.index import ApproxIndex, ExactIndex, VectorIndex
from core.manifest import check_subject_id
from core.results import Embedding, GalleryRef
from core.storage.connection import Database

__all__ = ["EnrollItem", "GalleryInfo", "LoadedGallery", "GalleryStore", "face_id_for"]

_MOD = 1 << 128
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def face_id_for(gallery: str, subject_id: str, image_sha256: str) -> str:
    """Deterministic face id: the same image of the same subject in a gallery is one face."""
    return hashlib.sha256(f"{gallery}\0{subject_id}\0{image_sha256}".encode()).hexdigest()[:20]


def _id_hash(face_id: str) -> int:
    return int.from_bytes(hashlib.sha256(face_id.encode()).digest()[:16], "big")


def _fingerprint(count: int, set_hash: int) -> str:
    return f"{count}-{set_hash:032x}"


@dataclass(frozen=True)
class EnrollItem:
    """One face to enrol: its subject, its embedding, where it came from."""

    subject_id: str
    embedding: Embedding
    image_name: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GalleryInfo:
    """A gallery's catalogue entry."""

    name: str
    embedding_key: str
    config: dict[str, Any]
    size: int
    subjects: int
    fingerprint: str
    created_at: str
    updated_at: str

    @property
    def ref(self) -> GalleryRef:
        """The gallery as it is now: name, fingerprint and size."""
        return GalleryRef(self.name, self.fingerprint, self.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "size": self.size,
            "subjects": self.subjects,
            "fingerprint": self.fingerprint,
            "model": self.config.get("model"),
            "detector": self.config.get("detector"),
            "alignment": self.config.get("alignment"),
            "embedding_key": self.embedding_key,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, eq=False)
class LoadedGallery:
    """A gallery ready to search: its reference as of now, its key and its index."""

    ref: GalleryRef
    embedding_key: str
    index: VectorIndex

    @property
    def exact(self) -> bool:
        """Whether searches of this gallery are exact (not approximate)."""
        return isinstance(self.index, ExactIndex)


class GalleryStore:
    """Create, fill, list and prune galleries in a :class:`~core.storage.connection.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cache = EmbeddingCache(db)
        self._loaded: dict[tuple[str, bool], LoadedGallery] = {}
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """The store's (reentrant) lock.

        Every method takes it before the database's; a caller that commits a gallery change
        together with other work (its audit record) holds it around its transaction, in that order.
        """
        return self._lock

    # catalogue -------------------------------------------------------------------

    def create(self, name: str, config: ModelConfig) -> GalleryInfo:
        """Create an empty gallery bound to ``config``'s embedding key."""
        if not name or not set(name) <= _NAME_CHARS or len(name) > 100:
            raise BadInput(f"gallery name {name!r} must be 1-100 letters, digits, '_', '-' or '.'")
        with self.db.connect(transaction=True) as con:
            if con.execute("SELECT 1 FROM galleries WHERE name = ?", [name]).fetchall():
                raise GalleryExists(f"a gallery named {name!r} already exists")
            con.execute(
                "INSERT INTO galleries (name, embedding_key, config, face_count, set_hash) VALUES (?, ?, ?, 0, ?)",
                [name, config.embedding_key, json.dumps(config.to_dict()), f"{0:032x}"],
            )
        return self.info(name)

    def info(self, name: str) -> GalleryInfo:
        """Return one gallery's catalogue entry."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT g.name, g.embedding_key, g.config, g.face_count, g.set_hash, g.created_at, g.updated_at, "
                "(SELECT count(DISTINCT subject_id) FROM gallery_faces f WHERE f.gallery = g.name) "
                "FROM galleries g WHERE g.name = ?",
                [name],
            ).fetchall()
        if not row:
            raise GalleryNotFound(f"no gallery named {name!r} (see `facetrail gallery list`)")
        return self._info(row[0])

    @staticmethod
    def _info(row: tuple[Any, ...]) -> GalleryInfo:
        name, key, config, count, set_hash, created, updated, subjects = row
        return GalleryInfo(
            name=name,
            embedding_key=key,
            config=json.loads(config),
            size=int(count),
            subjects=int(subjects),
            fingerprint=_fingerprint(int(count), int(set_hash, 16)),
            created_at=created.isoformat(),
            updated_at=updated.isoformat(),
        )

    def ref(self, name: str) -> GalleryRef:
        """The gallery as it is now (name, fingerprint, size): one small read, for records.

        Raises
        ------
        GalleryNotFound
            No gallery of that name.
        """
        with self.db.connect() as con:
            _, count, set_hash = self._state(con, name)
        return GalleryRef(name, _fingerprint(count, set_hash), count)

    def binding(self, name: str) -> tuple[str, dict[str, Any]]:
        """The embedding key and model configuration (as stored) the gallery is bound to.

        Raises
        ------
        GalleryNotFound
            No gallery of that name.
        """
        with self.db.connect() as con:
            rows = con.execute("SELECT embedding_key, config FROM galleries WHERE name = ?", [name]).fetchall()
        if not rows:
            raise GalleryNotFound(f"no gallery named {name!r} (see `facetrail gallery list`)")
        return str(rows[0][0]), json.loads(rows[0][1])

    def list(self) -> builtins.list[GalleryInfo]:
        """All galleries, by name."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT g.name, g.embedding_key, g.config, g.face_count, g.set_hash, g.created_at, g.updated_at, "
                "(SELECT count(DISTINCT subject_id) FROM gallery_faces f WHERE f.gallery = g.name) "
                "FROM galleries g ORDER BY g.name"
            ).fetchall()
        return [self._info(row) for row in rows]

    def _state(self, con: Any, name: str) -> tuple[str, int, int]:
        rows = con.execute(
            "SELECT embedding_key, face_count, set_hash FROM galleries WHERE name = ?", [name]
        ).fetchall()
        if not rows:
            raise GalleryNotFound(f"no gallery named {name!r} (see `facetrail gallery list`)")
        key, count, set_hash = rows[0]
        return key, int(count), int(set_hash, 16)

    # enrolment ---------------------------------------------------------------------

    def enroll(self, name: str, items: Sequence[EnrollItem]) -> tuple[builtins.list[str], builtins.list[str]]:
        """Add faces; return ``(new face ids, face ids already enrolled)``.

        Raises
        ------
        BadInput
            A subject id that :func:`core.manifest.check_subject_id` refuses (nothing is enrolled).
        ConfigMismatch
            An embedding was made under another configuration than the gallery's.
        """
        for item in items:
            if check_subject_id(item.subject_id, f"{item.image_name}: subject id") != item.subject_id:
                raise BadInput(f"{item.image_name}: subject id {item.subject_id!r} has surrounding spaces")
        with self._lock, self.db.connect(transaction=True) as con:
            key, count, set_hash = self._state(con, name)
            for item in items:
                if item.embedding.config.embedding_key != key:
                    raise ConfigMismatch(
                        f"gallery {name!r} holds {key} embeddings; {item.image_name} was embedded with "
                        f"{item.embedding.config.name} ({item.embedding.config.embedding_key}); "
                        "embeddings of different configurations never mix"
                    )
            ids = [face_id_for(name, i.subject_id, i.embedding.image_sha256) for i in items]
            existing = {
                r[0]
                for r in con.execute(
                    "SELECT face_id FROM gallery_faces WHERE gallery = ? AND list_contains(?, face_id)", [name, ids]
                ).fetchall()
            }
            fresh: dict[str, EnrollItem] = {}
            for face_id, item in zip(ids, items, strict=True):
                if face_id not in existing and face_id not in fresh:
                    fresh[face_id] = item
            if fresh:
                rows = pa.table(
                    {
                        "gallery": [name] * len(fresh),
                        "face_id": list(fresh),
                        "subject_id": [i.subject_id for i in fresh.values()],
                        "image_sha256": [i.embedding.image_sha256 for i in fresh.values()],
                        "image_name": [i.image_name for i in fresh.values()],
                        "metadata": [json.dumps(i.metadata, sort_keys=True, default=str) for i in fresh.values()],
                        "embedding": pa.array(
                            [i.embedding.vector.astype(np.float32) for i in fresh.values()], type=pa.list_(pa.float32())
                        ),
                    }
                )
                con.register("enroll_rows", rows)
                con.execute(
                    "INSERT INTO gallery_faces (gallery, face_id, subject_id, image_sha256, image_name, metadata, "
                    "embedding) SELECT gallery, face_id, subject_id, image_sha256, image_name, metadata::JSON, "
                    "embedding FROM enroll_rows"
                )
                con.unregister("enroll_rows")
                for face_id in fresh:
                    set_hash = (set_hash + _id_hash(face_id)) % _MOD
                count += len(fresh)
                con.execute(
                    "UPDATE galleries SET face_count = ?, set_hash = ?, updated_at = now() WHERE name = ?",
                    [count, f"{set_hash:032x}", name],
                )
            if fresh:
                vectors = np.stack([i.embedding.vector for i in fresh.values()])
                for cache_key, loaded in self._cached(name):
                    loaded.index.add(list(fresh), [i.subject_id for i in fresh.values()], vectors)
                    self._loaded[cache_key] = LoadedGallery(
                        GalleryRef(name, _fingerprint(count, set_hash), count), key, loaded.index
                    )
        return list(fresh), [f for f in ids if f in existing]

    # deletion ----------------------------------------------------------------------

    def delete_subject(self, name: str, subject_id: str) -> builtins.list[str]:
        """Erase every face of a subject; return the face ids deleted."""
        return self._delete(name, "subject_id", subject_id)

    def delete_face(self, name: str, face_id: str) -> builtins.list[str]:
        """Erase one face; return ``[face_id]``."""
        return self._delete(name, "face_id", face_id)

    def _delete(self, name: str, column: str, value: str) -> builtins.list[str]:
        with self._lock:
            with self.db.connect(transaction=True) as con:
                key, count, set_hash = self._state(con, name)
                rows = con.execute(
                    f"SELECT face_id, image_sha256 FROM gallery_faces WHERE gallery = ? AND {column} = ?",
                    [name, value],
                ).fetchall()
                if not rows:
                    what = "subject" if column == "subject_id" else "face"
                    raise NotFound(f"gallery {name!r} has no {what} {value!r}")
                face_ids = [r[0] for r in rows]
                con.execute(f"DELETE FROM gallery_faces WHERE gallery = ? AND {column} = ?", [name, value])
                for face_id in face_ids:
                    set_hash = (set_hash - _id_hash(face_id)) % _MOD
                count -= len(face_ids)
                con.execute(
                    "UPDATE galleries SET face_count = ?, set_hash = ?, updated_at = now() WHERE name = ?",
                    [count, f"{set_hash:032x}", name],
                )
                orphans = _unused_images(con, [r[1] for r in rows])
            self._erase_cached(orphans)
            for cache_key, loaded in self._cached(name):
                loaded.index.remove(face_ids)
                self._loaded[cache_key] = LoadedGallery(
                    GalleryRef(name, _fingerprint(count, set_hash), count), key, loaded.index
                )
        return face_ids

    def drop(self, name: str) -> int:
        """Delete a whole gallery and its faces; return the number of faces erased."""
        with self._lock:
            with self.db.connect(transaction=True) as con:
                _, count, _ = self._state(con, name)
                hashes = [
                    r[0]
                    for r in con.execute("SELECT image_sha256 FROM gallery_faces WHERE gallery = ?", [name]).fetchall()
                ]
                con.execute("DELETE FROM gallery_faces WHERE gallery = ?", [name])
                con.execute("DELETE FROM galleries WHERE name = ?", [name])
                orphans = _unused_images(con, hashes)
            self._erase_cached(orphans)
            for cache_key, _ in self._cached(name):
                del self._loaded[cache_key]
        return count

    # search side ---------------------------------------------------------------------

    def _erase_cached(self, hashes: builtins.list[str]) -> None:
        """Purge cached embeddings of erased images and checkpoint, so no copy stays in the WAL.

        Inside a caller's transaction (a deletion committed with its audit record) the
        checkpoint cannot run: the caller calls :meth:`flush` once it committed.
        """
        self.cache.purge(hashes)
        if not self.db.in_transaction:
            self.flush()

    def flush(self) -> None:
        """Checkpoint the database, so that erased rows do not stay in its write-ahead log."""
        with self.db.connect() as con:
            con.execute("CHECKPOINT")

    def _cached(self, name: str) -> builtins.list[tuple[tuple[str, bool], LoadedGallery]]:
        return [(k, v) for k, v in self._loaded.items() if k[0] == name]

    def load(self, name: str, *, approximate: bool = False) -> LoadedGallery:
        """Return the gallery's index, reloading it if the database changed since.

        ``approximate=True`` builds a usearch HNSW index instead of the exact
        matrix: faster on millions of faces, but it may miss the true nearest face.
        """
        with self._lock:
            with self.db.connect() as con:
                key, count, set_hash = self._state(con, name)
                fingerprint = _fingerprint(count, set_hash)
                cached = self._loaded.get((name, approximate))
                if cached is not None and cached.ref.fingerprint == fingerprint:
                    return cached
                table = con.sql(
                    "SELECT face_id, subject_id, embedding FROM gallery_faces WHERE gallery = $1 ORDER BY face_id",
                    params=[name],
                ).to_arrow_table()
                model = json.loads(con.execute("SELECT config FROM galleries WHERE name = ?", [name]).fetchall()[0][0])
            dims = MODELS[model["model"]]
            index: VectorIndex = (
                ApproxIndex(dims) if approximate else ExactIndex(dims, capacity=max(1024, table.num_rows))
            )
            if table.num_rows:
                vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dims)
                index.add(table.column("face_id").to_pylist(), table.column("subject_id").to_pylist(), vectors)
            loaded = LoadedGallery(GalleryRef(name, fingerprint, count), key, index)
            self._loaded[(name, approximate)] = loaded
            return loaded

    def faces(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every face of a gallery (without embeddings), for listings."""
        with self.db.connect() as con:
            self._state(con, name)
            rows = con.execute(
                "SELECT face_id, subject_id, image_sha256, image_name, metadata, enrolled_at FROM gallery_faces "
                "WHERE gallery = ? ORDER BY subject_id, face_id",
                [name],
            ).fetchall()
        return [
            {
                "face_id": r[0],
                "subject_id": r[1],
                "image_sha256": r[2],
                "image_name": r[3],
                "metadata": json.loads(r[4]) if r[4] else {},
                "enrolled_at": r[5].isoformat(),
            }
            for r in rows
        ]


def _unused_images(con: Any, hashes: list[str]) -> list[str]:
    """Return the image hashes among ``hashes`` that no gallery holds any more."""
    still_used = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT image_sha256 FROM gallery_faces WHERE list_contains(?, image_sha256)", [hashes]
        ).fetchall()
    }
    return [h for h in hashes if h not in still_used]
