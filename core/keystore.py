"""The key store: per-subject data keys whose destruction is an erasure (crypto-shredding).

Why a separate file, and why this shape
---------------------------------------
A gallery's embeddings and personal fields are stored in the database encrypted
(AES-GCM) under one random 256-bit key per enrolled subject. Erasing a subject
deletes its rows *and destroys its key*. Deleting rows is not enough on its own:
DuckDB leaves deleted rows' bytes in free blocks of the file and in its write-ahead
log, so the plaintext of a "deleted" embedding could be read back from the raw file.
With crypto-shredding only ciphertext ever reaches the database; once the key is
gone, whatever copies the database (or its backups of the data, or its WAL) keeps
cannot be decrypted.

So the keys must *not* live in the database: a key deleted there would survive in
the same free blocks. They live in one small file of their own (default
``<database file>.keys``, or ``FACETRAIL_KEYSTORE``), which facetrail never edits in
place. Every change rewrites the whole file: a private temporary file (mode 0600)
in the same folder is written and ``fsync``-ed, atomically renamed over the old
one, and the folder is ``fsync``-ed, so a crash leaves the old or the new store,
never a torn one. The old version's bytes are then overwritten with zeros through a
descriptor held open across the rename and ``fsync``-ed before the descriptor is
released: on a file system that writes in place (ext4, xfs) the destroyed key is
not left in the freed blocks of the old file. What no program can promise is below
the file system (journals with ``data=journal``, copy-on-write file systems, SSD wear
levelling, backups): a deployment that must be sure puts the key store on an
encrypted volume and keeps it out of backups, or backs it up only with a retention
no longer than the erasure deadline. Losing the key store makes every gallery
unreadable (that is the point); it must be backed up as carefully as it is erased.

The file holds a random 32-byte *store secret* (for keyed references: the
:meth:`KeyStore.ref` of a subject is an HMAC-SHA256 under it, so the database can
find a subject's rows without holding the subject id in clear) and, per key, a
random 16-byte key id and the 32-byte key. Nothing in it names a subject. Writers
take an exclusive ``flock`` on ``<store>.lock`` around read-modify-write, so two
processes never lose each other's keys; readers reload when the file changed.

A database held in memory (``:memory:``) gets an in-memory key store, one per
:class:`~core.storage.connection.Database` object.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import mmap
import os
import secrets
import signal
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import RecognitionError
from core.settings import Settings
from core.storage.files import overwrite_with_zeros

__all__ = ["AESGCM", "KeyStore", "KeyStoreError", "default_keystore_path", "seal", "unseal", "unseal_many", "unseal_parallel"]

_MAGIC = b"FTKS1\n"
_SECRET = 32
_ID = 16
_KEY = 32
_ENTRY = _ID + _KEY
_OVERHEAD = 12 + 16  # a sealed row's nonce and GCM tag
# each ASCII byte's value as a hex digit (lowercase only: the canonical form facetrail writes), 255 for others
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


class KeyStoreError(RecognitionError):
    """The key store file cannot be read or written (or is not a facetrail key store)."""

    code = "keystore_error"


def default_keystore_path(db_path: str, settings: Settings | None = None) -> Path | None:
    """Where the key store of a database lives: ``FACETRAIL_KEYSTORE``, else ``<db file>.keys``.

    ``None`` for an in-memory database without a configured store (the keys then live in memory).
    """
    configured = (settings or Settings.from_env()).keystore
    if configured is not None:
        return configured
    if db_path == ":memory:":
        return None
    return Path(str(Path(db_path).expanduser()) + ".keys")


_MEMORY: weakref.WeakKeyDictionary[object, KeyStore] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


class KeyStore:
    """Data keys by key id, in a file rewritten whole on every change (see the module docstring).

    Parameters
    ----------
    path
        The store file (created on first write); ``None`` keeps the keys in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._secret: bytes | None = None
        # the entries of the version read, as the file holds them; the dict by key id and the sorted index
        # of the ids (:meth:`_find`) are made from them only when asked (a gallery's load needs only the index)
        self._body = b""
        self._table: dict[bytes, bytes] | None = {}
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None = None
        self._stamp: tuple[int, int, int] | None = None

    @classmethod
    def for_database(cls, db: object, db_path: str) -> KeyStore:
        """Return the key store of a database: its file (:func:`default_keystore_path`) or, in memory, one per ``db``."""
        path = default_keystore_path(db_path)
        if path is not None:
            return cls(path)
        with _MEMORY_LOCK:
            store = _MEMORY.get(db)
            if store is None:
                store = _MEMORY[db] = cls(None)
            return store

    # -- reading -------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Load the file if it changed since last read (or was never read)."""
        if self.path is None:
            if self._secret is None:
                self._secret = secrets.token_bytes(_SECRET)
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp = None
            self._set_body(b"")
            self._secret = None
            return
        except OSError as err:
            raise KeyStoreError(f"cannot read key store {str(self.path)!r}: {err}") from err
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise KeyStoreError(f"cannot read key store {str(self.path)!r}: {err}") from err
        body = data[len(_MAGIC) + _SECRET :]
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _SECRET or len(body) % _ENTRY:
            raise KeyStoreError(f"{str(self.path)!r} is not a facetrail key store (bad header or length)")
        self._secret = data[len(_MAGIC) : len(_MAGIC) + _SECRET]
        self._set_body(body)
        self._stamp = stamp

    def _set_body(self, body: bytes) -> None:
        """Take ``body`` (the file's entries) as the store's keys; the dict and the index follow when asked."""
        self._body, self._table, self._sorted = body, ({} if not body else None), None

    @property
    def _keys(self) -> dict[bytes, bytes]:
        """The keys by 16-byte key id (made from the entries read on first use; writers change it in place)."""
        if self._table is None:
            body = self._body
            self._table = {body[i : i + _ID]: body[i + _ID : i + _ENTRY] for i in range(0, len(body), _ENTRY)}
            # the dict is the truth from now on (writers change it): the entries read go, so a key a writer
            # destroys is not kept in them
            self._body, self._sorted = b"", None
        return self._table

    def _index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Return the entries read, their ids' first 8 bytes sorted (with the order), and whether those are distinct."""
        if self._sorted is None:
            entries = np.frombuffer(self._body, dtype=np.uint8).reshape(-1, _ENTRY)
            heads = entries[:, :8].copy().view(">u8").ravel()
            order = np.argsort(heads)  # any order of equal heads: twins are not searched here (distinct is False)
            heads = heads[order]
            self._sorted = (heads, order, entries, len(heads) < 2 or bool((heads[1:] != heads[:-1]).all()))
        return self._sorted

    def _find(self, raw_ids: np.ndarray) -> list[bytes | None]:
        """Return the key of each 16-byte id (rows of a ``uint8`` array), None where absent.

        Without the dict (a process's first gallery load): the entries' ids sorted once by their
        first 8 bytes and searched in C, each match checked on all 16 bytes; ids sharing their
        first 8 bytes (about one store in 10^7 of a million keys) are looked up in the dict instead.
        """
        if self._table is not None:
            table = self._table
            return [table.get(bytes(i)) for i in raw_ids]
        heads, order, entries, distinct = self._index()
        if not distinct:
            return [self._keys.get(bytes(i)) for i in raw_ids]
        rows = _search(heads, order, raw_ids)
        hits = entries[rows]
        found = (hits[:, :_ID] == raw_ids).all(axis=1)
        keys: list[bytes | None] = np.ascontiguousarray(hits[:, _ID:]).view(f"V{_KEY}").ravel().tolist()
        if found.all():
            return keys
        return [k if f else None for k, f in zip(keys, found.tolist(), strict=True)]

    def lookup_rows(self, hex_ids: np.ndarray) -> tuple[list[bytes | None], np.ndarray] | None:
        """Look up one key id per row, given as the ASCII bytes of its 32 hex digits (an ``(n, 32)`` ``uint8`` array).

        Returns ``(keys, which)``: row ``i``'s key is ``keys[which[i]]`` (``None`` where the store has
        no such key), each distinct key once, so a load can decrypt a key's rows together. No
        Python object per row: the digits are decoded and searched in C (:meth:`_find`'s index).
        ``None`` if an id is not in canonical form (32 lowercase hex digits): the caller then
        looks the ids up by :meth:`lookup`, which decodes and names them one by one.
        """
        nibbles = _NIBBLE[np.asarray(hex_ids, dtype=np.uint8)]
        if nibbles.ndim != 2 or nibbles.shape[1] != 2 * _ID or bool((nibbles > 15).any()):
            return None
        raw = np.ascontiguousarray(nibbles[:, 0::2] << 4 | nibbles[:, 1::2])
        with self._lock:
            self._refresh()
            if self._table is not None or not len(raw) or not self._index()[3]:
                return _coded(self._find(raw))  # the dict is the truth (after a write), or 8-byte twins
            heads, order, entries, _ = self._index()
            rows = _search(heads, order, raw)
            rows = np.where((entries[rows, :_ID] == raw).all(axis=1), rows, -1)
            present, which = np.unique(rows, return_inverse=True)
            if len(present) == len(rows) and present[0] >= 0:  # a key per row (one-face subjects): in row order
                return (np.ascontiguousarray(entries[rows, _ID:]).view(f"V{_KEY}").ravel().tolist(),
                        np.arange(len(rows), dtype=np.int64))
            keys: list[bytes | None] = np.ascontiguousarray(
                entries[present[present >= 0], _ID:]).view(f"V{_KEY}").ravel().tolist()
            return ([None, *keys] if len(present) and present[0] < 0 else keys), which.astype(np.int64).ravel()

    def _secret_now(self) -> bytes:
        """Return the store secret, creating the store (one write) if it does not exist yet."""
        with self._lock:
            self._refresh()
            if self._secret is None:
                with self._writing():
                    pass  # the write creates the secret
            assert self._secret is not None
            return self._secret

    def ref(self, *parts: str) -> str:
        """Return a keyed reference to ``parts`` (HMAC-SHA256 under the store secret, 32 hex digits).

        Rows carry it instead of a subject id in clear; without the store it links nothing.
        """
        message = "\0".join(parts).encode()
        return hmac.new(self._secret_now(), message, hashlib.sha256).hexdigest()[:32]

    def hmac_key(self, label: str) -> bytes:
        """Return a 32-byte key derived from the store secret for ``label`` (e.g. export pseudonyms)."""
        return hmac.new(self._secret_now(), b"facetrail-derived-key\0" + label.encode(), hashlib.sha256).digest()

    def get_many(self, key_ids: Iterable[str]) -> dict[str, bytes]:
        """Return the keys among ``key_ids`` that exist (a destroyed key is simply absent).

        Read from the store as it is on disk now (re-read if it changed): nothing derived from a
        key outlives its destruction here. A million ids are looked up in C (:meth:`_find`).

        Raises
        ------
        KeyStoreError
            A key id that is not hexadecimal (a row naming no key this store could hold).
        """
        wanted = list(key_ids)
        return {k: v for k, v in zip(wanted, self.lookup(wanted), strict=True) if v is not None}

    def lookup(self, key_ids: Sequence[str]) -> list[bytes | None]:
        """Return the key of each id in order, None where it does not exist (see :meth:`get_many`)."""
        with self._lock:
            self._refresh()
            raw = _unhex(key_ids)
            if raw is not None:
                return self._find(raw)
            out: list[bytes | None] = []
            for key_id in key_ids:  # not all canonical (32 lowercase hex digits): one by one
                try:
                    out.append(self._keys.get(bytes.fromhex(key_id)))
                except ValueError as err:
                    raise KeyStoreError(f"key id {key_id!r} is not hexadecimal: {err}") from err
            return out

    def key_ids(self) -> frozenset[str]:
        """Every key id in the store."""
        with self._lock:
            self._refresh()
            return frozenset(k.hex() for k in self._keys)

    # -- changing ------------------------------------------------------------------------

    def create(self, count: int) -> dict[str, bytes]:
        """Make ``count`` new random keys (one rewrite of the store); return them by key id."""
        if count <= 0:
            return {}
        fresh = {secrets.token_bytes(_ID): secrets.token_bytes(_KEY) for _ in range(count)}
        with self._writing():
            self._keys.update(fresh)
        return {k.hex(): v for k, v in fresh.items()}

    def add_linked(self, groups: Iterable[Mapping[str, bytes]]) -> list[bool]:
        """Add each group of entries (key id -> 32 bytes) whole, unless one of its ids exists already.

        One rewrite of the store, under its lock: two processes adding the same group keep one.
        Returns, per group, whether it was added. (The audit log's field keys are an index entry
        and a key added together: :mod:`audit.trail.sealed`.)
        """
        wanted = [{bytes.fromhex(k): v for k, v in group.items()} for group in groups]
        for group in wanted:
            for key_id, value in group.items():
                if len(key_id) != _ID or len(value) != _KEY:
                    raise KeyStoreError(f"a key store entry is a {_ID}-byte id and {_KEY} bytes, got "
                                        f"{len(key_id)} and {len(value)}")
        if not wanted:
            return []
        added: list[bool] = []
        with self._writing():
            for group in wanted:
                fresh = not any(k in self._keys for k in group)
                if fresh:
                    self._keys.update(group)
                added.append(fresh)
        return added

    def destroy(self, key_ids: Iterable[str]) -> int:
        """Destroy these keys (one rewrite, the old file's bytes overwritten); return how many existed."""
        wanted = {bytes.fromhex(k) for k in key_ids}
        if not wanted:
            return 0
        read = (self._body, self._sorted)
        with self._writing():
            if self._table is None:  # the entries as read (no dict made yet): drop the rows in C
                if self._sorted is None and read[1] is not None and self._body == read[0]:
                    self._sorted = read[1]  # read again unchanged: its lookup index still holds
                return self._drop_entries(wanted)
            gone = [k for k in wanted if k in self._keys]
            for k in gone:
                del self._keys[k]
        return len(gone)

    def _drop_entries(self, wanted: set[bytes]) -> int:
        """Remove the entries of ``wanted`` ids from the entries as read; return how many there were.

        An erasure's path: building the dict of every key (and joining it back for the write) costs
        more than the rest of the erasure in a store of 100,000 subjects.
        """
        entries = np.frombuffer(self._body, dtype=np.uint8).reshape(-1, _ENTRY)
        ids = np.ascontiguousarray(entries[:, :_ID]).view(f"V{_ID}").ravel()
        doomed = np.frombuffer(b"".join(sorted(wanted)), dtype=np.uint8).reshape(-1, _ID).view(f"V{_ID}").ravel()
        hit = np.isin(ids.view(f"S{_ID}"), doomed.view(f"S{_ID}"))
        if hit.any():
            kept = entries[~hit]
            index = self._sorted_without(hit, kept) if len(kept) else None
            self._set_body(kept.tobytes())  # (no entry left: an empty dict, as for an empty file)
            self._sorted = index
        return int(hit.sum())

    def _sorted_without(self, hit: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None:
        """Return the index of :meth:`_find` for the entries left when ``hit`` rows go, without sorting again."""
        if self._sorted is None:
            return None
        heads, order, _, distinct = self._sorted
        stays = ~hit[order]
        renumber = np.cumsum(~hit) - 1
        return heads[stays], renumber[order[stays]], kept, distinct

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the store's locks, read it fresh, let the caller change it, write it back whole."""
        with self._lock:
            if self.path is None:
                self._refresh()
                yield
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as err:
                raise KeyStoreError(f"cannot lock key store {str(self.path)!r}: {err}") from err
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                self._stamp = None
                self._refresh()
                if self._secret is None:
                    self._secret = secrets.token_bytes(_SECRET)
                yield
                self._write()
            finally:
                os.close(lock_fd)

    def _write(self) -> None:
        assert self.path is not None and self._secret is not None
        entries = self._body if self._table is None else b"".join(k + v for k, v in self._table.items())
        data = b"".join([_MAGIC, self._secret, entries])
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            old_fd = os.open(self.path, os.O_RDWR) if self.path.exists() else None
        except OSError as err:
            raise KeyStoreError(f"cannot open key store {str(self.path)!r}: {err}") from err
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            if old_fd is not None:
                overwrite_with_zeros(old_fd)
        except OSError as err:
            raise KeyStoreError(f"cannot write key store {str(self.path)!r}: {err}") from err
        finally:
            if old_fd is not None:
                os.close(old_fd)
            tmp.unlink(missing_ok=True)
        st = os.stat(self.path)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)


def _unhex(key_ids: Sequence[str]) -> np.ndarray | None:
    """Return the key ids (each 32 lowercase hex digits) as rows of 16 bytes (``uint8``), decoded in C.

    None if any id is not in that canonical form (:meth:`KeyStore.lookup` then decodes one by one).
    """
    if not key_ids:
        return np.empty((0, _ID), dtype=np.uint8)
    if set(map(len, key_ids)) != {2 * _ID}:
        return None
    joined = "".join(key_ids)
    try:
        raw = bytes.fromhex(joined)
    except ValueError:
        return None
    if len(raw) != _ID * len(key_ids) or raw.hex() != joined:  # no whitespace, no capitals: as written
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(key_ids), _ID)


def _search(heads: np.ndarray, order: np.ndarray, raw_ids: np.ndarray) -> np.ndarray:
    """Return, per 16-byte id, the entry whose first 8 bytes are the id's (or a neighbour: the caller checks all 16).

    The ids are searched in sorted order (about 3x faster than in the order asked, on a million: the
    search walks the sorted heads forward) and the results put back in the order asked.
    """
    wanted = np.ascontiguousarray(raw_ids[:, :8]).view(">u8").ravel()
    asked = np.argsort(wanted)
    found = np.empty(len(wanted), dtype=np.int64)
    found[asked] = np.searchsorted(heads, wanted[asked])
    return order[np.minimum(found, len(heads) - 1)]


def _coded(per_row: list[bytes | None]) -> tuple[list[bytes | None], np.ndarray]:
    """Each distinct key of ``per_row`` once, and each row's place among them (as :meth:`KeyStore.lookup_rows`)."""
    codes: dict[bytes | None, int] = {}
    which = np.fromiter((codes.setdefault(k, len(codes)) for k in per_row), dtype=np.int64, count=len(per_row))
    return list(codes), which


def seal(key: bytes, payload: bytes, aad: bytes) -> bytes:
    """Encrypt ``payload`` under ``key`` (AES-256-GCM, random 96-bit nonce) bound to ``aad``: nonce + ciphertext."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, payload, aad)


def unseal_many(
    keys: Sequence[bytes], which: np.ndarray, sealed: memoryview, offsets: np.ndarray, aads: Sequence[bytes]
) -> bytearray:
    """Decrypt rows made by :func:`seal`, stored back to back, into one buffer (plaintexts back to back, in order).

    Row ``i`` is ``sealed[offsets[i]:offsets[i + 1]]``, sealed under ``keys[which[i]]`` and bound to
    ``aads[i]``; its plaintext is 28 bytes (nonce and tag) shorter. See :func:`unseal_into`.

    Raises
    ------
    KeyStoreError
        A row is shorter than a nonce and a tag, or does not decrypt (see :func:`unseal`).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    out = bytearray(plain_size(offsets))
    unseal_into(keys, which, sealed, offsets, aads, memoryview(out))
    return out


def plain_size(offsets: np.ndarray) -> int:
    """Return how many bytes the plaintexts of sealed rows at ``offsets`` (one more than rows) take.

    Raises
    ------
    KeyStoreError
        A row is shorter than a nonce and a tag.
    """
    sizes = np.diff(np.asarray(offsets, dtype=np.int64)) - _OVERHEAD
    if len(sizes) and int(sizes.min()) < 0:
        raise KeyStoreError("a sealed row is shorter than its nonce and tag: it was altered")
    return int(sizes.sum())


def unseal_into(
    keys: Sequence[bytes | None], which: np.ndarray, sealed: memoryview, offsets: np.ndarray, aads: Sequence[bytes],
    out: memoryview,
) -> None:
    """Decrypt rows as :func:`unseal_many` does, writing their plaintexts back to back into ``out`` (exactly their size).

    The rows are decrypted key by key: one AES-GCM set-up is made for a key's rows and dropped
    after them, so a load never holds more than one (a kept set-up costs about 2.4 KB: 2.4 GB for
    a million subjects) and nothing made from a key lives on after the load. No Python object per
    row besides its views (the gallery load's hot loop).

    Raises
    ------
    KeyStoreError
        A row is shorter than a nonce and a tag, its key is None, or it does not decrypt.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = offsets[1:] - offsets[:-1] - _OVERHEAD
    if len(sizes) and int(sizes.min()) < 0:
        raise KeyStoreError("a sealed row is shorter than its nonce and tag: it was altered")
    ends = np.cumsum(sizes)
    if (int(ends[-1]) if len(ends) else 0) != len(out):
        raise ValueError(f"the plaintexts take {int(ends[-1]) if len(ends) else 0} bytes, not {len(out)}")
    which = np.asarray(which)
    at, to, begin = offsets[:-1], offsets[1:], ends - sizes
    rising = len(which) < 2 or bool((which[1:] > which[:-1]).all())  # a key per row, seen without a sort
    distinct = len(which) if rising else len(np.unique(which))
    if distinct == len(which):  # a key per row (one-face subjects, the worst case): no loop in Python at all
        row_keys = list(map(keys.__getitem__, which.tolist()))
        if None in row_keys:
            raise KeyStoreError("a sealed row's key is not in the key store")
        nonces = map(sealed.__getitem__, map(slice, at.tolist(), (at + 12).tolist()))
        bodies = map(sealed.__getitem__, map(slice, (at + 12).tolist(), to.tolist()))
        into = map(out.__getitem__, map(slice, begin.tolist(), ends.tolist()))
        try:  # each set-up made for its row and dropped after it, as below
            deque(map(AESGCM.decrypt_into, map(AESGCM, cast(list[bytes], row_keys)), nonces, bodies, aads, into), maxlen=0)
        except InvalidTag as err:
            raise KeyStoreError(
                "a sealed row does not decrypt under its key: altered, or sealed under another key") from err
        return
    if len(which) > 1 and 1 + int(np.count_nonzero(which[1:] != which[:-1])) > distinct:
        # a key's rows apart from each other: brought together (in row order), for one set-up per key
        order = np.argsort(which, kind="stable")
        which, at, to, begin, ends = which[order], at[order], to[order], begin[order], ends[order]
        aads = [aads[i] for i in order.tolist()]
    rows = zip(which.tolist(), at.tolist(), (at + 12).tolist(), to.tolist(), begin.tolist(), ends.tolist(), aads,
               strict=True)
    last, cipher = -1, None
    try:
        for k, a, b, c, d, e, aad in rows:
            if k != last:
                key = keys[k]
                if key is None:
                    raise KeyStoreError("a sealed row's key is not in the key store")
                last, cipher = k, AESGCM(key)
            cipher.decrypt_into(sealed[a:b], sealed[b:c], aad, out[d:e])  # type: ignore[union-attr]
    except InvalidTag as err:
        raise KeyStoreError("a sealed row does not decrypt under its key: altered, or sealed under another key") from err


#: What a decrypting child process's exit status means (:func:`unseal_parallel`).
_CHILD_DONE, _CHILD_REFUSED = 0, 3

#: What a part of sealed rows needs besides its bytes, made by the process that decrypts it: ``(keys, which, aads)``
#: (as :func:`unseal_into` takes them).
Opener = Callable[[], tuple[Sequence[bytes | None], np.ndarray, Sequence[bytes]]]


def unseal_parallel(
    parts: Sequence[tuple[memoryview, np.ndarray, Opener]],
    processes: int,
    own: float = 0.5,
) -> Iterator[tuple[memoryview, int]]:
    """Decrypt parts of rows (each ``(sealed, offsets, opener)``), yielded in part order.

    Row ``i`` of a part is ``sealed[offsets[i]:offsets[i + 1]]``; ``opener()`` gives the part's
    keys, each row's key and the rows' associated data (:func:`unseal_into`). It is called by the
    process that decrypts the part, so looking the keys up is shared out too; the first part's is
    called before any fork (what it builds once, such as the key store's search index, is then
    inherited rather than built again in each process).

    Yields ``(plain, p)`` once part ``p`` is decrypted: ``plain`` holds its rows' plaintexts back
    to back, valid until the next part is asked for (this process's parts are decrypted into one
    scratch buffer in turn, so a load touches the memory of one part, not of the whole gallery).
    With ``processes`` 2 or more, this process decrypts the first parts (about the ``own`` share of
    the rows; the caller works on each as it is yielded) while forked children decrypt the others
    at the same time, into an anonymous shared mapping (memory, no file: nothing decrypted
    reaches a disk, and the keys stay in the memory the children inherited). A child only
    decrypts (no database, no lock of this process), tells this process through a pipe each time
    a part is done (so it is yielded while the child goes on with the next), and leaves by
    ``os._exit``; none outlives the generator: closed early, or failing (a row that does not
    decrypt, an interruption), it kills and reaps them.

    Raises
    ------
    KeyStoreError
        A row is shorter than a nonce and a tag, its key is None, does not decrypt (in this process
        or a child: a part a child refused is decrypted again here, to raise its own error), or a
        child failed otherwise (named with its exit status).
    """
    spans = [plain_size(offsets) for _, offsets, _ in parts]
    forking = processes >= 2 and len(parts) >= 2 and hasattr(os, "fork")
    groups = _groups([len(offsets) - 1 for _, offsets, _ in parts], processes if forking else 1, own)
    scratch = np.empty(max((spans[i] for i in groups[0]), default=0), dtype=np.uint8).data
    opened = {groups[0][0]: parts[groups[0][0]][2]()} if parts else {}
    if not forking:
        for i in range(len(parts)):
            yield _unseal_part(parts[i], scratch[: spans[i]], opened.pop(i, None)), i
        return
    theirs = [i for group in groups[1:] for i in group]
    at = dict(zip(theirs, np.cumsum([0] + [spans[i] for i in theirs]).tolist(), strict=False))
    shared = mmap.mmap(-1, max(sum(spans[i] for i in theirs), 1), flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    buffer = memoryview(shared)
    children: list[tuple[int, int]] = []  # (pid, the read end of its pipe)
    try:
        for group in groups[1:]:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: decrypt its parts, leave without running anything of the parent's
                status = 1
                try:
                    os.close(read_end)
                    for i in group:
                        _unseal_part(parts[i], buffer[at[i] : at[i] + spans[i]])
                        os.write(write_end, i.to_bytes(4, "big"))  # atomic (under PIPE_BUF): part i is done
                    status = _CHILD_DONE
                except KeyStoreError:
                    status = _CHILD_REFUSED
                finally:
                    os._exit(status)
            os.close(write_end)
            children.append((pid, read_end))
        for i in groups[0]:
            yield _unseal_part(parts[i], scratch[: spans[i]], opened.pop(i, None)), i
        for group in groups[1:]:
            pid, read_end = children[0]
            for i in group:
                if _read_exactly(read_end, 4) != i.to_bytes(4, "big"):  # the child stopped (exited) before part i
                    _reap(children)
                    _refused_here(parts[i], spans[i])
                yield buffer[at[i] : at[i] + spans[i]], i
            if _reap(children) != _CHILD_DONE:
                raise KeyStoreError("a decrypting process failed after its last part")
    finally:
        for pid, read_end in children:  # left only when this generator failed, was interrupted or closed
            os.close(read_end)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _unseal_part(part: tuple[memoryview, np.ndarray, Opener], out: memoryview,
                 opened: tuple[Sequence[bytes | None], np.ndarray, Sequence[bytes]] | None = None) -> memoryview:
    """Decrypt one part of :func:`unseal_parallel` into ``out`` (its plaintexts' size); ``opened``: its opener's result."""
    sealed, offsets, opener = part
    keys, which, aads = opener() if opened is None else opened
    unseal_into(keys, which, sealed, offsets, aads, out)
    return out


def _read_exactly(fd: int, n: int) -> bytes:
    """Read ``n`` bytes from a pipe, or fewer at its end (the writer gone)."""
    got = b""
    while len(got) < n:
        more = os.read(fd, n - len(got))
        if not more:
            break
        got += more
    return got


def _reap(children: list[tuple[int, int]]) -> int:
    """Close the first child's pipe, wait for it to exit and forget it; return its exit status.

    Raises
    ------
    KeyStoreError
        It failed otherwise than by refusing a part (named with its exit status).
    """
    pid, read_end = children.pop(0)
    os.close(read_end)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status not in (_CHILD_DONE, _CHILD_REFUSED):
        raise KeyStoreError(f"a decrypting process failed (exit status {status})")
    return status


def _refused_here(part: tuple[memoryview, np.ndarray, Opener], span: int) -> None:
    """Decrypt a part a child refused (a missing key, a row that does not decrypt) here, raising its own error.

    Raises
    ------
    KeyStoreError
        Always: the part's own error, or, if it decrypts here, that the key store changed meanwhile.
    """
    _unseal_part(part, memoryview(bytearray(span)))
    raise KeyStoreError("a decrypting process refused a part of the rows that decrypts here: the key store "
                        "changed during the load; load again")


def _groups(rows: Sequence[int], processes: int, own: float) -> list[list[int]]:
    """Split parts (``rows`` each, in order) into runs of consecutive parts: the first about ``own`` of the rows.

    The others share the rest equally, one run per further process (a run may be empty).
    """
    out: list[list[int]] = [[] for _ in range(processes)]
    total, done = max(sum(rows), 1), 0
    for i, n in enumerate(rows):
        share = done / total
        group = 0 if share < own else min(processes - 1, 1 + int((share - own) * (processes - 1) / (1 - own)))
        out[group].append(i)
        done += n
    return [out[0], *(g for g in out[1:] if g)]


def unseal(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`seal` made with ``cipher``'s key.

    Raises
    ------
    KeyStoreError
        The ciphertext or its associated data was altered (or the key is not the one it was sealed with).
    """
    try:
        return cipher.decrypt(sealed[:12], sealed[12:], aad)
    except InvalidTag as err:
        raise KeyStoreError("a sealed row does not decrypt under its key: altered, or sealed under another key") from err
