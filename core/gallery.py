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

Personal and biometric data are stored encrypted (crypto-shredding, see
:mod:`core.keystore`): each face row holds its embedding, subject id, image name,
metadata and face box sealed with AES-256-GCM under its subject's key (one random
key per subject and gallery, in the key store beside the database), bound to the
gallery and face id; the row finds its subject by ``subject_ref``, a keyed HMAC of
(gallery, subject id), never the id in clear. Nothing in a row links it to a person
or a photo without the key store: the face id is a keyed HMAC (under the gallery's
key derived from the store secret, :meth:`GalleryStore.face_id`) of the unkeyed
:func:`face_id_for`, and ``image_ref`` a keyed HMAC of the image's SHA-256 (the hash
itself is sealed with the fields), so someone holding the file, a candidate photo and
a list of names cannot confirm an enrolment or find the face in log records. A face
id of a record written before ids were keyed still finds its face (every lookup by
face id also tries the id's keyed form). Rows are decrypted when a gallery is loaded
(never per query) and when it is listed.

Rows of a file from before (clear columns, version 5; unkeyed ids and clear hashes,
version 8) are converted on the store's first use, then the whole file is rewritten
(:meth:`~core.storage.connection.Database.rewrite`) so the old clear values are not
left in its free blocks.

Deleting a face or a subject deletes its rows, destroys the subject's key once no
face of it remains (so any copy of its rows the file, its WAL or a backup keeps is
ciphertext nobody can open), purges the image's cached failures (unless another
gallery still holds the image), removes it from the in-memory index, and
checkpoints the database. Inside a caller's transaction (a deletion committed with
its audit record) the key is destroyed by :meth:`GalleryStore.flush` after the
commit, so a rolled-back deletion loses nothing.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.cache import CachedOutcome, EmbeddingCache, face_from_fields, image_refs, pack_sealed, unpack_sealed
from core.config import MODELS, ModelConfig
from core.errors import BadInput, ConfigMismatch, GalleryExists, GalleryNotFound, NotFound
from core.index import ApproxIndex, ExactIndex, VectorIndex
from core.keystore import AESGCM, KeyStore, KeyStoreError, Opener, seal, unseal, unseal_parallel
from core.manifest import check_subject_id
from core.results import Embedding, GalleryRef
from core.storage.connection import Database, is_reaper

__all__ = ["EnrollItem", "GalleryInfo", "LoadedGallery", "GalleryStore", "face_id_for"]

_MOD = 1 << 128
#: A load of at least this many rows is decrypted by two processes at once (:func:`core.keystore.unseal_parallel`).
_PARALLEL_ROWS = 50_000
#: Rows per part of a load's decryption (the parts are shared out between the processes).
_PART_ROWS = 16_384
#: The share of a parallel load's rows this process decrypts itself: less than half, since it also
#: cuts every row's vector and subject id out and adds them to the index (the child only decrypts).
#: At a million one-face subjects 0.45 ends both at about the same time (measured: 4.4-4.6 s at 0.4-0.45,
#: 4.9 s at 0.5, the child then waiting; 5.2 s at 0.3, this process then waiting).
_OWN_SHARE = 0.45
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def face_id_for(gallery: str, subject_id: str, image_sha256: str) -> str:
    """Return the unkeyed id of a face (the face id of files before version 8): anyone can compute it.

    Stored and reported face ids are its keyed form, :meth:`GalleryStore.face_id`.
    """
    return hashlib.sha256(f"{gallery}\0{subject_id}\0{image_sha256}".encode()).hexdigest()[:20]


def _keyed(key: bytes, value: str, digits: int) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:digits]


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
    photo: bytes | None = field(default=None, repr=False)
    """The reference photo as enrolled (the file whose SHA-256 is ``embedding.image_sha256``), kept sealed
    under the subject's key for reviewers (:meth:`GalleryStore.photo`); ``None``: no photo is kept."""


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

    def __init__(self, db: Database, keys: KeyStore | None = None) -> None:
        self.db = db
        self.keys = keys if keys is not None else KeyStore.for_database(db, db.path)
        self.cache = EmbeddingCache(db, self._enrolled, self.keys)
        self._loaded: dict[tuple[str, bool], LoadedGallery] = {}
        self._lock = threading.RLock()
        self._pending_keys: set[str] = set()
        self._sealed_checked = False
        self._rewrite_checked = False

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
                "(SELECT count(DISTINCT subject_ref) FROM gallery_faces f WHERE f.gallery = g.name) "
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
        """Return the gallery as it is now (name, fingerprint, size): one small read, for records.

        Raises
        ------
        GalleryNotFound
            No gallery of that name.
        """
        with self.db.connect() as con:
            _, count, set_hash = self._state(con, name)
        return GalleryRef(name, _fingerprint(count, set_hash), count)

    def binding(self, name: str) -> tuple[str, dict[str, Any]]:
        """Return the embedding key and model configuration (as stored) the gallery is bound to.

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
                "(SELECT count(DISTINCT subject_ref) FROM gallery_faces f WHERE f.gallery = g.name) "
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
        self._ready()
        with self._lock, self.db.connect(transaction=True) as con:
            key, count, set_hash = self._state(con, name)
            for item in items:
                if item.embedding.config.embedding_key != key:
                    raise ConfigMismatch(
                        f"gallery {name!r} holds {key} embeddings; {item.image_name} was embedded with "
                        f"{item.embedding.config.name} ({item.embedding.config.embedding_key}); "
                        "embeddings of different configurations never mix"
                    )
            self._seal_legacy(con)
            face_key = self._face_key(name)
            ids = [_keyed(face_key, face_id_for(name, i.subject_id, i.embedding.image_sha256), 20) for i in items]
            existing = set(_matching(con, name, "face_id", ids))
            fresh: dict[str, EnrollItem] = {}
            for face_id, item in zip(ids, items, strict=True):
                if face_id not in existing and face_id not in fresh:
                    fresh[face_id] = item
            if fresh:
                con.register("enroll_rows", self._sealed_rows(con, name, fresh))
                con.execute(
                    "INSERT INTO gallery_faces (gallery, face_id, subject_ref, key_id, image_ref, sealed, photo) "
                    "SELECT gallery, face_id, subject_ref, key_id, image_ref, sealed, photo FROM enroll_rows"
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

    def face_id(self, gallery: str, subject_id: str, image_sha256: str) -> str:
        """Return the id of a subject's image in a gallery: the same image of the same subject is one face.

        A keyed HMAC (under the gallery's key, derived from the key store's secret) of
        :func:`face_id_for`: without the key store nobody can compute it from a photo and a name.
        """
        return _keyed(self._face_key(gallery), face_id_for(gallery, subject_id, image_sha256), 20)

    def _face_key(self, gallery: str) -> bytes:
        return self.keys.hmac_key(f"facetrail-face-id\0{gallery}")

    def _image_refs(self, hashes: Iterable[str]) -> builtins.list[str]:
        """Return each image SHA-256's keyed reference (the ``image_ref`` column): one key for every gallery."""
        return image_refs(self.keys, hashes)

    def _stored_ids(self, gallery: str, face_id: str) -> builtins.list[str]:
        """Return a face id as stored and, for an id a record wrote before ids were keyed, its keyed form."""
        return [face_id, _keyed(self._face_key(gallery), face_id, 20)]

    def _subject_keys(self, con: Any, name: str, refs: builtins.list[str]) -> dict[str, tuple[str, bytes]]:
        """Each subject's (key id, key) by subject ref, making keys for subjects new to the gallery."""
        found = _matching(con, name, "subject_ref", sorted(set(refs)), "key_id")
        keys = self.keys.get_many(found.values())
        missing = sorted({r for r in refs if r not in found or found[r] not in keys})
        fresh = iter(self.keys.create(len(missing)).items())
        out = {ref: (key_id, keys[key_id]) for ref, key_id in found.items() if key_id in keys}
        for ref in missing:
            out[ref] = next(fresh)
        return out

    def _sealed_rows(self, con: Any, name: str, fresh: dict[str, EnrollItem]) -> pa.Table:
        """Return the rows of new faces, each sealed under its subject's key (see the module docstring)."""
        refs = [self.keys.ref(name, i.subject_id) for i in fresh.values()]
        keys = self._subject_keys(con, name, refs)
        sealed = []
        photos: builtins.list[bytes | None] = []
        for (face_id, item), ref in zip(fresh.items(), refs, strict=True):
            fields = {"subject_id": item.subject_id, "image_name": item.image_name, "metadata": item.metadata,
                      "face": item.embedding.face.to_dict(), "faces_detected": item.embedding.faces_detected,
                      "image_sha256": item.embedding.image_sha256}
            sealed.append(seal(keys[ref][1], pack_sealed(fields, item.embedding.vector, item.subject_id),
                               _aad(name, face_id)))
            photos.append(None if item.photo is None else seal(keys[ref][1], item.photo, _photo_aad(name, face_id)))
        return pa.table(
            {
                "gallery": [name] * len(fresh),
                "face_id": list(fresh),
                "subject_ref": refs,
                "key_id": [keys[r][0] for r in refs],
                "image_ref": self._image_refs(i.embedding.image_sha256 for i in fresh.values()),
                "sealed": pa.array(sealed, type=pa.binary()),
                "photo": pa.array(photos, type=pa.binary()),
            }
        )

    def _seal_legacy(self, con: Any) -> None:
        """Seal rows a file written before version 5 holds in clear (once per store; inside ``con``'s transaction)."""
        if self._sealed_checked:
            return
        rows = con.execute(
            "SELECT gallery, face_id, subject_id, image_sha256, image_name, metadata, embedding FROM gallery_faces "
            "WHERE sealed IS NULL"
        ).fetchall()
        for gallery, face_id, subject_id, sha, image_name, metadata, vector in rows:
            ref = self.keys.ref(gallery, subject_id)
            key_id, key = self._subject_keys(con, gallery, [ref])[ref]
            fields = {"subject_id": subject_id, "image_name": image_name,
                      "metadata": json.loads(metadata) if metadata else {},
                      "face": {"x": 0, "y": 0, "w": 0, "h": 0, "confidence": 0.0}, "faces_detected": 1}
            con.execute(
                "UPDATE gallery_faces SET subject_ref = ?, key_id = ?, image_sha256 = ?, sealed = ?, subject_id = NULL, "
                "image_name = NULL, metadata = NULL, embedding = NULL WHERE gallery = ? AND face_id = ?",
                [ref, key_id, sha, seal(key, pack_sealed(fields, np.asarray(vector, np.float32), subject_id),
                                        _aad(gallery, face_id)), gallery, face_id],
            )
        self._key_legacy(con)
        self._sealed_checked = True

    def _key_legacy(self, con: Any) -> None:
        """Give rows written before version 8 a keyed face id and image reference (inside ``con``'s transaction).

        Each row is opened and sealed again (its ciphertext, and its photo's, are bound to the face
        id), with the image's SHA-256 moved into the sealed fields; the gallery's fingerprint is
        made again from the new ids. The old rows' bytes stay in the file's free blocks until
        :meth:`_ready` rewrites the file (the ``rewrite_due`` mark migration 8 set).
        """
        rows = con.execute(
            "SELECT gallery, face_id, key_id, sealed, image_sha256, photo, subject_ref, enrolled_at FROM gallery_faces "
            "WHERE image_ref IS NULL ORDER BY gallery, face_id"
        ).fetchall()
        if not rows:
            return
        opened = self._open_rows([r[:4] for r in rows])
        keys = self.keys.get_many({str(r[2]) for r in rows})
        face_keys = {g: self._face_key(g) for g in {str(r[0]) for r in rows}}
        fresh: dict[str, builtins.list[Any]] = {c: [] for c in ("gallery", "face_id", "subject_ref", "key_id",
                                                                 "image_ref", "sealed", "photo", "enrolled_at")}
        for row, (fields, vector), ref in zip(rows, opened, self._image_refs(str(r[4]) for r in rows), strict=True):
            gallery, old, key_id, _, sha, photo, subject_ref, enrolled_at = row
            new, key = _keyed(face_keys[gallery], old, 20), keys[str(key_id)]
            sealed = seal(key, pack_sealed({**fields, "image_sha256": sha}, vector, fields["subject_id"]),
                          _aad(gallery, new))
            if photo is not None:
                photo = seal(key, unseal(AESGCM(key), bytes(photo), _photo_aad(gallery, old)), _photo_aad(gallery, new))
            for column, value in zip(fresh, (gallery, new, subject_ref, key_id, ref, sealed, photo, enrolled_at),
                                     strict=True):
                fresh[column].append(value)
        con.execute("DELETE FROM gallery_faces WHERE image_ref IS NULL")
        con.register("keyed_rows", pa.table({**fresh, "sealed": pa.array(fresh["sealed"], type=pa.binary()),
                                             "photo": pa.array(fresh["photo"], type=pa.binary())}))
        try:
            con.execute("INSERT INTO gallery_faces (gallery, face_id, subject_ref, key_id, image_ref, sealed, photo, "
                        "enrolled_at) SELECT * FROM keyed_rows")
        finally:
            con.unregister("keyed_rows")
        for gallery in face_keys:
            ids = [str(r[0]) for r in con.execute("SELECT face_id FROM gallery_faces WHERE gallery = ?",
                                                  [gallery]).fetchall()]
            set_hash = sum(_id_hash(f) for f in ids) % _MOD
            con.execute("UPDATE galleries SET set_hash = ? WHERE name = ?", [f"{set_hash:032x}", gallery])

    def _ready(self) -> None:
        """Convert legacy rows before the first read of faces (see :meth:`_seal_legacy`), then rewrite the file.

        The file is rewritten (outside any transaction: else at the next call) while the
        ``rewrite_due`` mark of migration 8 is there: the clear values rows held before their
        conversion (and the cached embeddings of before version 5) are then in no block of it.
        """
        if not self._sealed_checked:
            with self._lock, self.db.connect(transaction=True) as con:
                self._seal_legacy(con)
        if self._rewrite_checked or self.db.in_transaction:
            return
        with self._lock:
            with self.db.connect() as con:
                due = con.execute("SELECT 1 FROM database_marks WHERE name = 'rewrite_due'").fetchall()
            # not rewritten while another Database of the process holds the file: the mark stays, asked again
            self._rewrite_checked = not due or self.db.rewrite(drop_mark="rewrite_due")

    def _plaintexts(self, rows: Sequence[tuple[Any, ...]]) -> builtins.list[bytes]:
        """Decrypt ``(gallery, face_id, key_id, sealed)`` rows.

        Raises
        ------
        KeyStoreError
            A row whose key is missing (the key store is not this database's) or that was altered.
        """
        keys = self.keys.get_many({str(r[2]) for r in rows})
        ciphers: dict[str, AESGCM] = {}
        out = []
        for gallery, face_id, key_id, sealed in rows:
            cipher = ciphers.get(key_id)
            if cipher is None:
                if key_id not in keys:
                    raise KeyStoreError(
                        f"gallery {gallery!r}: face {face_id} has no key in the key store {self.keys.path}; "
                        "the key store is not this database's (FACETRAIL_KEYSTORE) or was lost"
                    )
                cipher = ciphers[key_id] = AESGCM(keys[key_id])
            out.append(unseal(cipher, sealed, _aad(gallery, face_id)))
        return out

    def _open_for_index(
        self, name: str, table: pa.Table, dims: int
    ) -> Iterator[tuple[builtins.list[str], builtins.list[str], np.ndarray]]:
        """Decrypt a gallery's rows (``face_id, key_id, sealed``) for its index: face ids, subject ids and vectors.

        In parts (at most :data:`_PART_ROWS` rows of one chunk of rows as the database returned
        them), in row order, each yielded as soon as it is decrypted: the caller adds this
        process's share of the rows to the index while the child still decrypts its share.

        The load's hot path: each part's keys found in the key store without a Python object per
        row (:meth:`core.keystore.KeyStore.lookup_rows`) and its rows' associated data made, by the
        process that decrypts the part; every row decrypted with one AES-GCM set-up per subject,
        made for its rows and dropped after them, a large gallery's parts shared out between this
        process and a forked child working at the same time (:func:`core.keystore.unseal_parallel`:
        memory only; each of the child's parts is yielded as soon as the child is done with it); the
        vectors and subject ids cut out in C (each plaintext is the subject id, the fields' JSON,
        which is not parsed, and the vector: :func:`core.cache.pack_sealed`).

        Raises
        ------
        KeyStoreError
            A subject's key is missing, a row does not decrypt, or a plaintext is not of a
            ``dims``-dimensional face (altered, or sealed under another key).
        """
        key_ids = table.column("key_id").combine_chunks()
        if key_ids.null_count:
            raise KeyStoreError(f"gallery {name!r}: {key_ids.null_count} face row(s) name no subject key")
        face_ids: builtins.list[str] = table.column("face_id").to_pylist()
        prefix = _aad(name, "")

        def opener(lo: int, hi: int) -> tuple[builtins.list[bytes | None], np.ndarray, builtins.list[bytes]]:
            keys, which = self._row_keys(name, key_ids.slice(lo, hi - lo))
            return keys, which, [prefix + f.encode() for f in face_ids[lo:hi]]

        jobs: builtins.list[tuple[memoryview, np.ndarray, Opener]] = []
        rows: builtins.list[tuple[int, int]] = []
        sizes, start = [], 0
        for chunk in table.column("sealed").chunks:  # as read: no copy of the whole column into one
            offsets, data = _chunk_buffers(chunk)
            sizes.append(offsets[1:] - offsets[:-1] - 28)
            for lo in range(0, len(chunk), _PART_ROWS):
                hi = min(lo + _PART_ROWS, len(chunk))
                jobs.append((data, offsets[lo : hi + 1], partial(opener, start + lo, start + hi)))
                rows.append((start + lo, start + hi))
            start += len(chunk)
        size = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
        ends = np.cumsum(size)
        processes = 2 if len(face_ids) >= _PARALLEL_ROWS and _may_fork() and _core_free() else 1
        for plain, i in unseal_parallel(jobs, processes, _OWN_SHARE):
            lo, hi = rows[i]
            subjects, matrix = _cut_faces(name, plain, ends[lo:hi] - (ends[lo] - size[lo]), size[lo:hi], dims)
            yield face_ids[lo:hi], subjects, matrix

    def _row_keys(self, name: str, key_ids: pa.Array) -> tuple[builtins.list[bytes | None], np.ndarray]:
        """Return each row's key as ``(keys, which)``: row ``i``'s is ``keys[which[i]]``, each key once.

        Key ids in the canonical form facetrail writes are read straight from the column's bytes
        (:meth:`core.keystore.KeyStore.lookup_rows`); others through :meth:`~core.keystore.KeyStore.lookup`,
        which decodes them one by one and names one that is not hexadecimal.

        The rows all name a key (the caller, :meth:`_open_for_index`, checks the whole column once).

        Raises
        ------
        KeyStoreError
            A row names a key that is not in the key store.
        """
        found = None
        if pa.types.is_string(key_ids.type) and len(key_ids):
            bounds = np.frombuffer(key_ids.buffers()[1], dtype=np.int32, count=len(key_ids) + 1,
                                   offset=key_ids.offset * 4)
            if bool((bounds[1:] - bounds[:-1] == 32).all()):
                found = self.keys.lookup_rows(np.frombuffer(key_ids.buffers()[2], dtype=np.uint8,
                                                            count=32 * len(key_ids),
                                                            offset=int(bounds[0])).reshape(-1, 32))
        if found is None:
            coded = pc.dictionary_encode(key_ids)
            found = (self.keys.lookup(coded.dictionary.to_pylist()), coded.indices.to_numpy().astype(np.int64))
        keys, which = found
        if None in keys:
            absent = np.flatnonzero(which == keys.index(None))
            missing = len(set(key_ids.take(pa.array(absent)).to_pylist()))
            raise KeyStoreError(
                f"gallery {name!r}: {missing} subject key(s) are not in the key store {self.keys.path}; "
                "the key store is not this database's (FACETRAIL_KEYSTORE) or was lost"
            )
        return keys, which

    def _open_rows(self, rows: Sequence[tuple[Any, ...]]) -> builtins.list[tuple[dict[str, Any], np.ndarray]]:
        """Decrypt ``(gallery, face_id, key_id, sealed)`` rows: ``(fields, vector)`` each (see :meth:`_plaintexts`)."""
        return [unpack_sealed(p) for p in self._plaintexts(rows)]

    def _enrolled(self, hashes: Sequence[str], embedding_key: str) -> dict[str, CachedOutcome]:
        """Embeddings of images already enrolled under ``embedding_key`` (the enrolment cache's hits)."""
        self._ready()
        by_ref = dict(zip(self._image_refs(hashes), hashes, strict=True))
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT f.image_ref, f.gallery, f.face_id, f.key_id, f.sealed FROM gallery_faces f "
                "JOIN galleries g ON g.name = f.gallery WHERE g.embedding_key = ? AND list_contains(?, f.image_ref)",
                [embedding_key, list(by_ref)],
            ).fetchall()
        first: dict[str, tuple[Any, ...]] = {}
        for r in rows:
            first.setdefault(by_ref[str(r[0])], r[1:])
        opened = self._open_rows(list(first.values()))
        out: dict[str, CachedOutcome] = {}
        for sha, (fields, vector) in zip(first, opened, strict=True):
            face = face_from_fields(fields["face"])
            if face is not None:  # else enrolled before faces named their detector: not a hit
                out[sha] = CachedOutcome(sha, vector, face, int(fields["faces_detected"]), None, None)
        return out

    # deletion ----------------------------------------------------------------------

    def delete_subject(self, name: str, subject_id: str) -> builtins.list[str]:
        """Erase every face of a subject (and destroy its key); return the face ids deleted."""
        return self._delete(name, "subject_ref", [self.keys.ref(name, subject_id)], subject_id)

    def delete_face(self, name: str, face_id: str) -> builtins.list[str]:
        """Erase one face; return its id as stored (``[face_id]``, or its keyed form for an id of before)."""
        return self._delete(name, "face_id", self._stored_ids(name, face_id), face_id)

    def _delete(self, name: str, column: str, values: builtins.list[str], shown: str) -> builtins.list[str]:
        self._ready()
        with self._lock:
            with self.db.connect(transaction=True) as con:
                key, count, set_hash = self._state(con, name)
                rows = con.execute(
                    f"SELECT face_id, image_ref, key_id, gallery, sealed FROM gallery_faces WHERE gallery = ? "
                    f"AND {column} IN {_marks(values)}", [name, *values],
                ).fetchall()
                if not rows:
                    what = "subject" if column == "subject_ref" else "face"
                    raise NotFound(f"gallery {name!r} has no {what} {shown!r}")
                self._pending_keys.update(str(r[2]) for r in rows)
                face_ids = [r[0] for r in rows]
                con.execute(f"DELETE FROM gallery_faces WHERE gallery = ? AND {column} IN {_marks(values)}",
                            [name, *values])
                for face_id in face_ids:
                    set_hash = (set_hash - _id_hash(face_id)) % _MOD
                count -= len(face_ids)
                con.execute(
                    "UPDATE galleries SET face_count = ?, set_hash = ?, updated_at = now() WHERE name = ?",
                    [count, f"{set_hash:032x}", name],
                )
                orphans = self._image_hashes(rows, _unused_images(con, [r[1] for r in rows]))
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
                found = con.execute("SELECT face_id, image_ref, key_id, gallery, sealed FROM gallery_faces "
                                    "WHERE gallery = ?", [name]).fetchall()
                self._pending_keys.update(str(r[2]) for r in found if r[2] is not None)
                con.execute("DELETE FROM gallery_faces WHERE gallery = ?", [name])
                con.execute("DELETE FROM galleries WHERE name = ?", [name])
                orphans = self._image_hashes(found, _unused_images(con, [r[1] for r in found]))
            self._erase_cached(orphans)
            for cache_key, _ in self._cached(name):
                del self._loaded[cache_key]
        return count

    def _image_hashes(self, rows: Sequence[tuple[Any, ...]], refs: Iterable[str]) -> builtins.list[str]:
        """Return the clear image SHA-256 of the deleted rows (``face_id, image_ref, key_id, gallery, sealed``) of ``refs``.

        Opened from the rows (their keys are destroyed only after the deletion commits), for the
        purge of the images' cached failures, which are kept by image hash.
        """
        wanted = set(refs)
        picked = {str(r[1]): r for r in rows if str(r[1]) in wanted}
        opened = self._open_rows([(r[3], r[0], r[2], r[4]) for r in picked.values()])
        return [str(fields["image_sha256"]) for fields, _ in opened]

    # search side ---------------------------------------------------------------------

    def _erase_cached(self, hashes: builtins.list[str]) -> None:
        """Purge cached outcomes of erased images, destroy erased subjects' keys and checkpoint.

        Inside a caller's transaction (a deletion committed with its audit record) neither
        can run yet: the caller calls :meth:`flush` once it committed.
        """
        self.cache.purge(hashes)
        if not self.db.in_transaction:
            self.flush()

    def flush(self, also: Iterable[str] = ()) -> None:
        """Destroy the keys of erased subjects no row uses any more, and checkpoint.

        Called after a deletion commits (by :meth:`_erase_cached` or the caller of a unit of
        work): a key whose deletion was rolled back is still used by its rows and is kept.
        ``also``: other keys of the same erasure in this key store (the audit log's field keys
        of the subject), destroyed in the same rewrite of the store.
        """
        doomed = list(also)
        with self._lock:
            if doomed and self.db.in_transaction:
                raise ValueError("flush(also=...) destroys keys: call it after the erasure committed")
            if self._pending_keys and not self.db.in_transaction:
                pending = sorted(self._pending_keys)
                with self.db.connect() as con:
                    used = set(_matching_anywhere(con, "key_id", pending))
                doomed += [k for k in pending if k not in used]
                self._pending_keys.clear()
            if doomed:
                self.keys.destroy(doomed)
            with self.db.connect() as con:
                con.execute("CHECKPOINT")

    def _cached(self, name: str) -> builtins.list[tuple[tuple[str, bool], LoadedGallery]]:
        return [(k, v) for k, v in self._loaded.items() if k[0] == name]

    def load(self, name: str, *, approximate: bool = False) -> LoadedGallery:
        """Return the gallery's index, reloading it if the database changed since.

        ``approximate=True`` builds a usearch HNSW index instead of the exact
        matrix: faster on millions of faces, but it may miss the true nearest face.
        """
        self._ready()
        with self._lock:
            with self.db.connect() as con:
                key, count, set_hash = self._state(con, name)
                fingerprint = _fingerprint(count, set_hash)
                cached = self._loaded.get((name, approximate))
                if cached is not None and cached.ref.fingerprint == fingerprint:
                    return cached
                # in the table's order, not sorted: the index breaks ties by face id (its row order decides
                # nothing), and a sort of a million rows costs a third of the read (bench_privacy.py)
                table = con.sql("SELECT face_id, key_id, sealed FROM gallery_faces WHERE gallery = $1",
                                params=[name]).to_arrow_table()
                model = json.loads(con.execute("SELECT config FROM galleries WHERE name = ?", [name]).fetchall()[0][0])
            dims = MODELS[model["model"]]
            n = table.num_rows
            index: VectorIndex = ApproxIndex(dims) if approximate else ExactIndex(dims, capacity=max(1024, n))
            if n:
                for face_ids, subjects, vectors in self._open_for_index(name, table, dims):
                    index.add(face_ids, subjects, vectors)
            loaded = LoadedGallery(GalleryRef(name, fingerprint, count), key, index)
            self._loaded[(name, approximate)] = loaded
            return loaded

    def faces(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every face of a gallery (without embeddings, decrypted), for listings, by subject and face id."""
        self._ready()
        with self.db.connect() as con:
            self._state(con, name)
            rows = con.execute(
                "SELECT gallery, face_id, key_id, sealed, enrolled_at FROM gallery_faces "
                "WHERE gallery = ? ORDER BY face_id",
                [name],
            ).fetchall()
        opened = self._open_rows([r[:4] for r in rows])
        faces = [
            {
                "face_id": r[1],
                "subject_id": fields["subject_id"],
                "image_sha256": fields["image_sha256"],
                "image_name": fields["image_name"],
                "metadata": fields["metadata"],
                "enrolled_at": r[4].isoformat(),
            }
            for r, (fields, _) in zip(rows, opened, strict=True)
        ]
        return sorted(faces, key=lambda f: (f["subject_id"], f["face_id"]))

    def face_subjects(self, name: str, face_ids: Iterable[str]) -> dict[str, str]:
        """Return the subject id of each of ``face_ids`` the gallery holds (ids of before keying too).

        For the audit log, which seals a face id under its subject's key when the record does
        not name the subject (:mod:`audit.trail.sealed`). No gallery of that name: ``{}``.
        """
        wanted = {stored: f for f in face_ids for stored in self._stored_ids(name, f)}
        if not wanted:
            return {}
        self._ready()
        with self.db.connect() as con:
            rows = con.execute("SELECT gallery, face_id, key_id, sealed FROM gallery_faces "
                               "WHERE gallery = ? AND list_contains(?, face_id)", [name, list(wanted)]).fetchall()
        return {wanted[str(r[1])]: str(fields["subject_id"])
                for r, (fields, _) in zip(rows, self._open_rows(rows), strict=True)}

    # reference photos ------------------------------------------------------------------

    def face_fields(self, name: str, face_id: str) -> dict[str, Any] | None:
        """Return one face's decrypted fields (``subject_id``, ``image_name``, ``metadata``), or None if absent.

        Raises
        ------
        GalleryNotFound
            No gallery of that name.
        KeyStoreError
            As :meth:`photo`.
        """
        self._ready()
        with self.db.connect() as con:
            self._state(con, name)
            rows = con.execute("SELECT gallery, face_id, key_id, sealed FROM gallery_faces "
                               "WHERE gallery = ? AND list_contains(?, face_id)",
                               [name, self._stored_ids(name, face_id)]).fetchall()
        if not rows:
            return None
        ((fields, _),) = self._open_rows(rows[:1])
        return {"subject_id": fields["subject_id"], "image_name": fields["image_name"],
                "metadata": dict(fields["metadata"])}

    def photo(self, name: str, face_id: str) -> bytes | None:
        """Return a face's reference photo, decrypted under its subject's key; ``None`` if none is kept.

        ``None`` too for a face that is not (or no longer) in the gallery: an erased subject's
        photos went with its rows and its key. Who may see a photo is the caller's business
        (:func:`audit.reviewing.review_evidence` reads it through the gate, for the reviewers
        and auditors of a record naming the face).

        Raises
        ------
        GalleryNotFound
            No gallery of that name.
        KeyStoreError
            The photo's key is missing (the key store is not this database's) or the photo was altered.
        """
        self._ready()
        with self.db.connect() as con:
            self._state(con, name)
            rows = con.execute("SELECT key_id, photo, face_id FROM gallery_faces WHERE gallery = ? "
                               "AND list_contains(?, face_id)", [name, self._stored_ids(name, face_id)]).fetchall()
        if not rows or rows[0][1] is None:
            return None
        key_id = str(rows[0][0])
        key = self.keys.get_many([key_id]).get(key_id)
        if key is None:
            raise KeyStoreError(f"gallery {name!r}: face {face_id} has no key in the key store {self.keys.path}; "
                                "the key store is not this database's (FACETRAIL_KEYSTORE) or was lost")
        return unseal(AESGCM(key), bytes(rows[0][1]), _photo_aad(name, str(rows[0][2])))


def _matching(con: Any, gallery: str, column: str, values: list[str], other: str | None = None) -> dict[str, str]:
    """Return ``{value: other column}`` for the rows of ``gallery`` whose ``column`` is among ``values``.

    A join with the values (not ``list_contains``, which costs the list's length per row).
    """
    if not values:
        return {}
    con.register("wanted_values", pa.table({"v": values}))
    try:
        pick = f"f.{other}" if other else "f." + column
        rows = con.execute(
            f"SELECT DISTINCT f.{column}, {pick} FROM gallery_faces f JOIN wanted_values w ON w.v = f.{column} "
            "WHERE f.gallery = ?",
            [gallery],
        ).fetchall()
    finally:
        con.unregister("wanted_values")
    return {str(r[0]): str(r[1]) for r in rows}


def _chunk_buffers(chunk: pa.Array) -> tuple[np.ndarray, memoryview]:
    """Return a binary chunk's row offsets (``int64``, one more than rows) into its bytes, and those bytes."""
    n = len(chunk)
    wide = pa.types.is_large_binary(chunk.type)
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if wide else np.int32, count=n + 1,
                            offset=chunk.offset * (8 if wide else 4)).astype(np.int64)
    values = chunk.buffers()[2]
    return offsets, memoryview(b"" if values is None else values).cast("B")  # unsigned bytes, as the AEAD reads them


def _cut_faces(name: str, plain: memoryview, ends: np.ndarray, sizes: np.ndarray, dims: int
               ) -> tuple[builtins.list[str], np.ndarray]:
    """Cut the subject ids and vectors out of decrypted rows (``plain[end - size:end]`` each), in C.

    Each plaintext is a 6-byte header (the lengths of the subject id and of the JSON), the subject
    id, the fields' JSON (not parsed) and the vector (:func:`core.cache.pack_sealed`).

    Raises
    ------
    KeyStoreError
        A plaintext is not of a ``dims``-dimensional face, or its subject id is not UTF-8.
    """
    n = len(ends)
    starts = ends - sizes
    raw = np.frombuffer(plain, dtype=np.uint8)
    if (sizes < 6 + 4 * dims).any():
        raise KeyStoreError(f"gallery {name!r}: a sealed row is not a face of {dims} dimensions")
    n_head = raw[starts].astype(np.int64) << 8 | raw[starts + 1]
    n_text = (raw[starts + 2].astype(np.int64) << 24 | raw[starts + 3].astype(np.int64) << 16
              | raw[starts + 4].astype(np.int64) << 8 | raw[starts + 5])
    if (starts + 6 + n_head + n_text + 4 * dims != ends).any():
        raise KeyStoreError(f"gallery {name!r}: a sealed row is not a face of {dims} dimensions")
    data = pa.py_buffer(plain)
    rows = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(
        np.concatenate([starts[:1], ends]).astype(np.int64)), data])
    vectors = pc.binary_slice(rows, -4 * dims)
    cut = np.frombuffer(vectors.buffers()[1], dtype=np.int64, count=n + 1, offset=vectors.offset * 8)
    matrix = np.frombuffer(vectors.buffers()[2], dtype=np.float32, count=n * dims,
                           offset=int(cut[0])).reshape(n, dims)
    bounds = np.concatenate([[0], np.cumsum(n_head)]).astype(np.int64)
    heads = raw[np.arange(int(bounds[-1]), dtype=np.int64) + np.repeat(starts + 6 - bounds[:-1], n_head)]
    ids = pa.LargeStringArray.from_buffers(n, pa.py_buffer(bounds), pa.py_buffer(heads))
    try:
        ids.validate(full=True)
    except pa.ArrowInvalid as err:
        raise KeyStoreError(f"gallery {name!r}: a sealed row's subject id is not UTF-8") from err
    return ids.to_pylist(), matrix


def _may_fork() -> bool:
    """Whether a load may decrypt in a forked child: two processors or more, and no other thread of Python here.

    A child starts with a copy of every lock as it was: one held by another thread at that moment
    (inside OpenSSL, say, signing a record) is held for ever in the child, which would hang there.
    The threads of DuckDB never run Python or OpenSSL, nor does a database's reaper thread
    (:func:`core.storage.connection.is_reaper`, alive for a moment after every read of the file); a
    process with threads of its own (the dashboard's server) loads in one process.
    """
    me = threading.current_thread()
    others = [t for t in threading.enumerate() if t is not me and not is_reaper(t)]
    return hasattr(os, "fork") and _cpus() >= 2 and not others


def _core_free() -> bool:
    """Whether a processor is idle for the child (the last minute's load average at most one less than processors).

    On a busy machine a child only competes with this process for the same processors: the
    load then takes longer in all (about 10% more CPU time, for the copy-on-write faults and the
    shared mapping, measured with ``benchmarks/bench_privacy.py``) and is done in one process.
    """
    return os.getloadavg()[0] <= _cpus() - 1


def _cpus() -> int:
    """Return how many processors this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _aad(gallery: str, face_id: str) -> bytes:
    """Return what a face row's ciphertext is bound to: a sealed row moved to another face or gallery does not open."""
    return f"facetrail-face\0{gallery}\0{face_id}".encode()


def _photo_aad(gallery: str, face_id: str) -> bytes:
    """Return what a reference photo's ciphertext is bound to (its gallery and face, and that it is a photo)."""
    return f"facetrail-photo\0{gallery}\0{face_id}".encode()


def _unused_images(con: Any, refs: list[str]) -> list[str]:
    """Return the image references (``image_ref``) among ``refs`` that no gallery holds any more."""
    still_used = set(_matching_anywhere(con, "image_ref", refs))
    return [h for h in refs if h not in still_used]


def _marks(values: Sequence[Any]) -> str:
    """Return the placeholders of an ``IN`` list of ``values`` (at least one)."""
    return "(" + ", ".join("?" * len(values)) + ")"


def _matching_anywhere(con: Any, column: str, values: list[str]) -> list[str]:
    """Return the distinct values among ``values`` that some row of any gallery holds in ``column``.

    An ``IN`` list for a few values (an erasure's), a join for many (a gallery's drop), never
    ``list_contains`` (which costs the list's length per row).
    """
    if not values:
        return []
    if len(values) <= 64:
        rows = con.execute(f"SELECT DISTINCT {column} FROM gallery_faces WHERE {column} IN {_marks(values)}",
                           values).fetchall()
        return [str(r[0]) for r in rows]
    con.register("wanted_values", pa.table({"v": values}))
    try:
        rows = con.execute(f"SELECT DISTINCT f.{column} FROM gallery_faces f JOIN wanted_values w ON w.v = f.{column}"
                           ).fetchall()
    finally:
        con.unregister("wanted_values")
    return [str(r[0]) for r in rows]
