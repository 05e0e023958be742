"""Embedding caches: only gallery enrolment reuses embeddings; a probe's embedding is never stored.

Two caches, keyed by (image SHA-256, embedding key), so an unchanged image is not embedded
twice under the same configuration:

- :class:`EmbeddingCache`, the **enrolment cache** of a :class:`~core.gallery.GalleryStore`.
  It stores no embedding at all. An image already enrolled in a gallery of the same
  embedding key is a hit read back from that gallery (decrypted under its subject's key,
  so it is shredded with the subject); what it stores itself are the outcomes that belong
  to an image and hold nothing biometric (no face found, several faces under ``refuse``).
  Whatever goes through it (an enrolment, the demo's probes) leaves no embedding behind:
  a search's or a verification's probe lives only in memory for its query.
- :class:`EvaluationCache`, the **evaluation cache** (table ``evaluation_cache``): the
  embeddings of evaluated datasets, which are reused across runs of one dataset and
  are expensive to recompute. Each entry is encrypted (AES-GCM) under the key of the UTC
  day it was written (table ``evaluation_cache_keys``, keys in the key store); entries
  older than the retention period (``FACETRAIL_EVALUATION_CACHE_DAYS``, 30 by default)
  are never returned, and :meth:`EvaluationCache.purge_expired` (``facetrail privacy
  purge-evaluation-cache``) deletes them and destroys their days' keys, so a purged
  embedding cannot be read back from the file's free blocks.

Both key their entries by the image's keyed reference (:func:`image_refs`, the HMAC gallery rows
keep in ``image_ref``), never by its SHA-256 in clear: whoever holds the database without the
key store cannot confirm that a given photo was submitted or evaluated (schema version 9).

Entries of one image are purged when that image is erased from every gallery (see
:meth:`core.gallery.GalleryStore.delete_subject`).

Every face read back names the detector of the cascade that found it (:func:`face_from_fields`);
an embedding written before faces named their detector is treated as absent, so the image
is embedded again (a configuration without fallback detectors computes the same vectors).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from core.keystore import AESGCM, KeyStore, seal, unseal
from core.results import Face
from core.settings import Settings
from core.storage.connection import Database

__all__ = ["CachedOutcome", "EmbeddingCache", "EvaluationCache", "PurgeReport", "image_refs", "pack_sealed",
           "unpack_head", "unpack_sealed"]

#: Failures that belong to the image itself and can be cached.
CACHEABLE_ERRORS = frozenset({"no_face", "multiple_faces"})

#: Looks up embeddings of already-enrolled images: ``(hashes, embedding key) -> outcomes by hash``.
EnrolledLookup = Callable[[Sequence[str], str], dict[str, "CachedOutcome"]]


@dataclass(frozen=True, eq=False)
class CachedOutcome:
    """What the cache knows of one image: an embedding, or a failure code."""

    image_sha256: str
    vector: np.ndarray | None
    face: Face | None
    faces_detected: int
    error_code: str | None
    error_message: str | None


def pack_sealed(fields: dict[str, Any], vector: np.ndarray, head: str = "") -> bytes:
    """Return the plaintext of a sealed row: ``head``, the fields as JSON, the float32 vector.

    ``head`` is a short text read without parsing (a subject id, see :func:`unpack_head`); the head
    and the JSON are length-prefixed.
    """
    top = head.encode()
    text = json.dumps(fields, sort_keys=True, default=str).encode()
    return (struct.pack(">HI", len(top), len(text)) + top + text
            + np.asarray(vector, dtype=np.float32).tobytes())


def unpack_sealed(plain: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """Inverse of :func:`pack_sealed` (the head is not returned: see :func:`unpack_head`)."""
    n_head, n_text = struct.unpack_from(">HI", plain)
    start = 6 + n_head
    return json.loads(plain[start : start + n_text]), np.frombuffer(plain[start + n_text :], dtype=np.float32).copy()


def unpack_head(plain: bytes) -> tuple[str, bytes]:
    """Return the head and the raw vector bytes of a sealed row's plaintext, without parsing its JSON (fast)."""
    n_head, n_text = struct.unpack_from(">HI", plain)
    return plain[6 : 6 + n_head].decode(), plain[6 + n_head + n_text :]


def face_from_fields(data: dict[str, Any]) -> Face | None:
    """Return the :class:`Face` of a stored row, or ``None`` for one written before faces named their detector."""
    return Face.from_dict(data) if "detector" in data else None


def image_refs(keys: KeyStore, hashes: Iterable[str]) -> list[str]:
    """Return each image SHA-256's keyed reference (32 hex digits): what rows and cache entries keep instead of it.

    An HMAC-SHA256 under a key derived from the key store's secret, the same for every gallery and
    cache, so an image is found by its hash while the stored value links nothing without the store.
    """
    key = keys.hmac_key("facetrail-image-ref")
    return [hmac.new(key, h.encode(), hashlib.sha256).hexdigest()[:32] for h in hashes]


def _delete_stale(con: Any, table: str, embedding_key: str, refs: Sequence[str]) -> None:
    """Delete the rows of these image references under ``embedding_key`` the caller found stale (see ``put_many``)."""
    if refs:
        con.execute(
            f"DELETE FROM {table} WHERE embedding_key = ? AND list_contains(?, image_sha256)",
            [embedding_key, sorted(set(refs))],
        )


def _failures_table(embedding_key: str, items: Sequence[CachedOutcome], refs: Sequence[str]) -> pa.Table:
    return pa.table(
        {
            "image_sha256": list(refs),  # the keyed references (the column keeps its name of before version 9)
            "embedding_key": [embedding_key] * len(items),
            "faces_detected": pa.array([o.faces_detected for o in items], type=pa.int32()),
            "error_code": pa.array([o.error_code for o in items], type=pa.string()),
            "error_message": pa.array([o.error_message for o in items], type=pa.string()),
        }
    )


class EmbeddingCache:
    """The enrolment cache: image-level failures stored, embeddings only read back from galleries.

    Parameters
    ----------
    db
        The database (table ``embedding_cache``).
    enrolled
        Reads embeddings of images already enrolled under an embedding key (the gallery
        store's, decrypted); ``None``: only failures are known.
    """

    def __init__(self, db: Database, enrolled: EnrolledLookup | None = None, keys: KeyStore | None = None) -> None:
        self.db = db
        self._enrolled = enrolled
        self.keys = keys if keys is not None else KeyStore.for_database(db, db.path)

    def _refs(self, hashes: Iterable[str]) -> dict[str, str]:
        """Return ``{keyed reference: hash}`` of these image hashes (what the tables are keyed by)."""
        wanted = list(dict.fromkeys(hashes))
        return dict(zip(image_refs(self.keys, wanted), wanted, strict=True))

    def get_many(self, hashes: Sequence[str], embedding_key: str) -> dict[str, CachedOutcome]:
        """Return the known outcomes for ``hashes`` under ``embedding_key``."""
        if not hashes:
            return {}
        by_ref = self._refs(hashes)
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT image_sha256, faces_detected, error_code, error_message FROM embedding_cache "
                "WHERE embedding_key = ? AND error_code IS NOT NULL AND list_contains(?, image_sha256)",
                [embedding_key, list(by_ref)],
            ).fetchall()
        out = {by_ref[r[0]]: CachedOutcome(by_ref[r[0]], None, None, int(r[1]), r[2], r[3]) for r in rows}
        wanted = list(by_ref.values())
        rest = [h for h in wanted if h not in out]
        if rest and self._enrolled is not None:
            out.update(self._enrolled(rest, embedding_key))
        return out

    def put_many(
        self, embedding_key: str, outcomes: Iterable[CachedOutcome], *, replace: Sequence[str] = ()
    ) -> None:
        """Remember the failures among ``outcomes``; embeddings are never stored here.

        Entries of the images in ``replace`` (outcomes the caller found stale, e.g. a
        ``multiple_faces`` written by a ``refuse`` engine) are deleted first.
        """
        items = [o for o in outcomes if o.error_code is not None]
        if not items and not replace:
            return
        with self.db.connect(transaction=True) as con:
            _delete_stale(con, "embedding_cache", embedding_key, list(self._refs(replace)))
            if not items:
                return
            con.register("cache_rows", _failures_table(embedding_key, items, list(self._refs(o.image_sha256 for o in items))))
            con.execute(
                "INSERT INTO embedding_cache (image_sha256, embedding_key, faces_detected, error_code, "
                "error_message) SELECT image_sha256, embedding_key, faces_detected, error_code, error_message "
                "FROM cache_rows ON CONFLICT DO NOTHING"
            )
            con.unregister("cache_rows")

    def purge(self, hashes: Sequence[str]) -> int:
        """Erase every cached entry of these images, under every configuration."""
        return _delete_refs(self.db, "embedding_cache", list(self._refs(hashes)))


def _delete_refs(db: Database, table: str, refs: Sequence[str]) -> int:
    if not refs:
        return 0
    with db.connect(transaction=True) as con:
        count = con.execute(
            f"SELECT count(*) FROM {table} WHERE list_contains(?, image_sha256)", [list(refs)]
        ).fetchall()[0]
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, image_sha256)", [list(refs)])
    return int(count[0]) if count else 0


@dataclass(frozen=True)
class PurgeReport:
    """What a purge of the evaluation cache removed."""

    entries: int
    """Cache rows deleted."""
    keys_destroyed: int
    """Day keys destroyed (their rows can no longer be decrypted, wherever a copy is left)."""
    oldest_kept: str | None
    """When the oldest entry still kept was written (ISO 8601), or None."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"entries": self.entries, "keys_destroyed": self.keys_destroyed, "oldest_kept": self.oldest_kept}


class EvaluationCache(EmbeddingCache):
    """The evaluation cache: embeddings of evaluated images, sealed under day keys, kept ``retention_days``.

    Parameters
    ----------
    db
        The database (tables ``evaluation_cache`` and ``evaluation_cache_keys``).
    keys
        The key store (default: the database's, :meth:`core.keystore.KeyStore.for_database`).
    retention_days
        Entries older than this are never returned and are purged by :meth:`purge_expired`
        (default ``FACETRAIL_EVALUATION_CACHE_DAYS``).
    clock
        The current time (tests pass a fake one).
    """

    def __init__(self, db: Database, keys: KeyStore | None = None, *, retention_days: float | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(db, keys=keys)
        days = retention_days if retention_days is not None else Settings.from_env().evaluation_cache_days
        self.retention = timedelta(days=days)
        self.clock = clock or (lambda: datetime.now(UTC))

    def _cutoff(self) -> datetime:
        return self.clock() - self.retention

    def get_many(self, hashes: Sequence[str], embedding_key: str) -> dict[str, CachedOutcome]:
        """Return the outcomes for ``hashes`` under ``embedding_key`` written within the retention period."""
        if not hashes:
            return {}
        by_ref = self._refs(hashes)
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT image_sha256, key_id, sealed, faces_detected, error_code, error_message FROM evaluation_cache "
                "WHERE embedding_key = ? AND created_at >= ? AND list_contains(?, image_sha256)",
                [embedding_key, self._cutoff(), list(by_ref)],
            ).fetchall()
        keys = self.keys.get_many({r[1] for r in rows if r[1] is not None})
        ciphers = {k: AESGCM(v) for k, v in keys.items()}
        out: dict[str, CachedOutcome] = {}
        for ref, key_id, sealed, faces, code, message in rows:
            sha = by_ref[ref]
            if code is not None:
                out[sha] = CachedOutcome(sha, None, None, int(faces), code, message)
            elif key_id in ciphers:
                fields, vector = unpack_sealed(unseal(ciphers[key_id], bytes(sealed), f"{sha}\0{embedding_key}".encode()))
                face = face_from_fields(fields["face"])
                if face is not None:  # else written before faces named their detector: embedded again
                    out[sha] = CachedOutcome(sha, vector, face, int(faces), None, None)
        return out

    def _day_key(self, day: date) -> tuple[str, bytes]:
        with self.db.connect() as con:
            found = con.execute("SELECT key_id FROM evaluation_cache_keys WHERE day = ?", [day]).fetchall()
        if found:
            key = self.keys.get_many([found[0][0]]).get(found[0][0])
            if key is not None:
                return str(found[0][0]), key
        ((key_id, key),) = self.keys.create(1).items()
        with self.db.connect(transaction=True) as con:
            con.execute("DELETE FROM evaluation_cache_keys WHERE day = ?", [day])
            con.execute("INSERT INTO evaluation_cache_keys (day, key_id) VALUES (?, ?)", [day, key_id])
        return key_id, key

    def put_many(
        self, embedding_key: str, outcomes: Iterable[CachedOutcome], *, replace: Sequence[str] = ()
    ) -> None:
        """Store outcomes, each embedding sealed under today's key.

        An existing entry is kept, except for the images in ``replace`` and entries whose
        face names no detector (written before faces did), which are replaced.
        """
        items = list(outcomes)
        if not items:
            return
        now = self.clock()
        key_id, key = self._day_key(now.astimezone(UTC).date())
        sealed = [
            None if o.vector is None or o.face is None
            else seal(key, pack_sealed({"face": o.face.to_dict()}, o.vector), f"{o.image_sha256}\0{embedding_key}".encode())
            for o in items
        ]
        refs = self._refs(o.image_sha256 for o in items)
        ref_of = {sha: ref for ref, sha in refs.items()}
        rows = _failures_table(embedding_key, items, [ref_of[o.image_sha256] for o in items]).append_column(
            "sealed", pa.array(sealed, type=pa.binary())
        ).append_column("key_id", pa.array([key_id if s is not None else None for s in sealed], type=pa.string()))
        with self.db.connect(transaction=True) as con:
            # a sealed entry this call embeds again was unreadable (no detector) or stale: replace it
            fresh = [ref_of[o.image_sha256] for o in items if o.vector is not None]
            _delete_stale(con, "evaluation_cache", embedding_key, [*self._refs(replace), *fresh])
            con.register("cache_rows", rows)
            con.execute(
                "INSERT INTO evaluation_cache (image_sha256, embedding_key, key_id, sealed, faces_detected, error_code, "
                "error_message, created_at) SELECT image_sha256, embedding_key, key_id, sealed, faces_detected, "
                "error_code, error_message, ? FROM cache_rows ON CONFLICT DO NOTHING",
                [now],
            )
            con.unregister("cache_rows")

    def purge(self, hashes: Sequence[str]) -> int:
        """Erase every evaluation-cache entry of these images."""
        return _delete_refs(self.db, "evaluation_cache", list(self._refs(hashes)))

    def purge_expired(self, *, everything: bool = False, dry_run: bool = False) -> PurgeReport:
        """Delete entries older than the retention period (``everything``: all) and destroy their day keys.

        ``dry_run`` counts what would go and changes nothing. Running it twice purges nothing the second time.
        """
        cutoff = self.clock() + timedelta(days=1) if everything else self._cutoff()
        day = cutoff.astimezone(UTC).date()
        with self.db.connect() as con:
            entries = int(con.execute("SELECT count(*) FROM evaluation_cache WHERE created_at < ?",
                                      [cutoff]).fetchall()[0][0])
            # a day's key goes once its whole day is past the cut-off (the day of the cut-off itself stays)
            key_ids = [str(r[0]) for r in con.execute(
                "SELECT key_id FROM evaluation_cache_keys WHERE day < ?", [day]).fetchall()]
        if not dry_run:
            with self.db.connect(transaction=True) as con:
                con.execute("DELETE FROM evaluation_cache WHERE created_at < ?", [cutoff])
                con.execute("DELETE FROM evaluation_cache_keys WHERE day < ?", [day])
            self.keys.destroy(key_ids)
            if not self.db.in_transaction:
                with self.db.connect() as con:
                    con.execute("CHECKPOINT")
        with self.db.connect() as con:
            oldest = con.execute("SELECT min(created_at) FROM evaluation_cache WHERE created_at >= ?",
                                 [cutoff]).fetchall()[0][0]
        return PurgeReport(entries, len(key_ids),
                           oldest.isoformat() if oldest is not None else None)
