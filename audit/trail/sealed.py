r"""Shreddable personal fields inside audit records: sealed at write time, erased by destroying a key.

Why
---
The log must keep who was searched for accountability, and it is never rewritten
(append-only, hash-chained, signed). An erased subject's id, face ids and gallery image
hashes must still become unreadable. So the record never holds them in clear: each such
value is replaced, *before the record is encoded and signed*, by a **sealed token**, and
the chain, the Merkle tree and the signatures cover the token. Erasing the subject
destroys the key the tokens were sealed under: ``audit verify`` and every excerpt made
earlier still verify (not a byte changed), and the fields then read ``"erased"``, with
the record of the erasure (its seq, who, when, why).

The token
---------
``sealed.<kind>.<key id>.<base64url(nonce || AES-256-GCM ciphertext)>``, a plain string,
so it fits every field it replaces (a candidate's ``subject_id``, a ``probe_sha256``
entry, a review's ``target_face_id``, a video candidate id ``"<track>:<face id>"``)
and every reader that does not open it sees an opaque string. ``kind`` is ``s``
(subject id), ``f`` (face id), ``i`` (image SHA-256) or ``t`` (a free text that names one
of those, e.g. an error message), and is bound as associated data
(``facetrail-log-field\0<kind>``). The nonce is ``HMAC-SHA256(key, aad || value)[:12]``
(a synthetic IV, as SIV does): one value under one key always gives the same token, so
equality still works where readers compare raw JSON (the reports' SQL joins a review's
``target_face_id`` to the query's candidate and counts searches per subject) while the
value stays unreadable without the key. What that reveals is only what the readers
need: two fields of one kind hold the same value.

The keys
--------
One key per (gallery, subject), in the database's key store (:class:`core.keystore.KeyStore`,
the file whose destroyed entries are really gone), as two entries added together:
an *index* entry whose id is the store's keyed reference of ``("facetrail-log-field-key",
gallery, subject)`` and whose value begins with a random 16-byte key id, and the key
itself under that random id. Tokens name the random id only. Erasing the subject
destroys both entries: afterwards neither the tokens nor anything else in the store
links to the subject, even for someone who keeps the store secret and guesses the name
(the keyed reference of a guess finds no entry, and the random id in a token is not
derived from anything). Sealing keeps the keys (and tokens) it used in memory for as long as
the key store file is the version it read them from: one look at the file per record
(:meth:`FieldKeys.keys_for`); any rewrite of the file (an erasure in any process) drops them all.

Which fields
------------
:func:`seal_fields` (called by :meth:`audit.trail.log.AuditLog.append`, so no writer
can forget it) seals, under the key of the subject they belong to: ``candidates[]``
``subject_id`` and ``face_id``; ``details.subject_id`` and ``details.subject_ids``;
face ids in ``target_face_id`` and ``details`` (``face_id``, ``target_face_id``,
``new_face_ids``, ``existing_face_ids``, ``deleted_face_ids``, ``tracks[].candidates``);
``probe_sha256`` entries that are gallery images; a retention record's ``details.subjects[]``
``subject_id`` (each under the key of its entry's ``gallery_name``); and the free texts ``details.error``,
``details.reason``, ``note`` and an enrolment's failed images (``details.failures.first``:
paths and messages) when they contain one of those values in clear (sealed whole, e.g. an
error message or an image path naming the subject). The subject of a face id or an
image hash is known from the record itself (its candidates, a record naming one
subject), from the hint a writer adds under :data:`SUBJECTS_HINT` (``{clear value:
[gallery, subject]}``, popped before the record is built), or else is looked up at
sealing time in the gallery (``FieldKeys.face_subjects``, which the audit log sets to
:meth:`core.gallery.GalleryStore.face_subjects`), so erasing the subject erases it. Only
a face id the gallery does not hold (any more) and nothing names is sealed under the
gallery's own key (subject ``""``): it is erased when the gallery is dropped. Values a record keeps where :func:`seal_fields` does
not look are sealed by their writer with :meth:`FieldKeys.seal_owned` (a blind batch's plan,
itself sealed under the batch's key and published at the reveal: :mod:`audit.blind`); the
log opens them where they stand, and :meth:`FieldKeys.open_json` opens them inside such a blob.

Reading
-------
:class:`FieldKeys.open` is the one way to read a record's sealed fields: it returns the
record with every token opened, or ``"erased"`` where its key is gone, and the list of
erased fields with the erasure that destroyed the key (:class:`ErasedField`). The log
opens every record it hands out (:meth:`~audit.trail.log.AuditLog.get`,
:meth:`~audit.trail.log.AuditLog.list`): whoever the session lets read the log (the
roles :mod:`audit.accounts` allows) and holds the key store sees clear values, nothing
else changes for them. Whoever has the database or an excerpt without the key store
(a third-party verifier) sees tokens. Records written before sealing (older files) hold
clear values and read as before; they keep verifying.

Erasure
-------
:meth:`FieldKeys.erasure_ids` gives the random key ids an erasure record names (in
``details.erased_field_keys``, written before the keys are destroyed);
:meth:`FieldKeys.shred_ids` names the key store entries to destroy, which the audited
erasure destroys after the record committed (a rolled-back erasure loses nothing), in the
same rewrite of the store as the gallery's key (:meth:`core.gallery.GalleryStore.flush`). :func:`erasures_by_key` reads those records back to say who
erased what, when and why.

Retention
---------
A key seals every field of one subject, so what retention can shred is a subject's fields
*all at once*: :meth:`audit.trail.log.AuditLog.field_keys_due` names the field keys whose
newest record started before a cut-off (no record newer than the cut-off names that
subject), i.e. a retention period counted from the subject's last appearance in the log,
the rule BIPA states for biometric identifiers. The retention run records them in its
record's ``details.erased_field_keys`` first (so readers learn who, when and why), then
destroys them (:meth:`FieldKeys.shred_key_ids`). "Fields older than X" of a subject who
still appears after X cannot be shredded alone: that would take a key per (subject, day)
and tokens that differ from day to day, which breaks the equality the reports' SQL
counts and joins on (a review and its search fall on different days). Chosen: per-subject
keys; the per-day variant is not built.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag

from audit.errors import AuditError
from audit.trail.records import AuditRecord, decode_record
from core.keystore import AESGCM, KeyStore, KeyStoreError

__all__ = [
    "ERASED",
    "ERASED_KEYS",
    "SUBJECTS_HINT",
    "ErasedField",
    "Erasure",
    "FieldKeys",
    "SealedFieldError",
    "erasures_by_key",
    "is_sealed",
    "seal_fields",
    "subject_commitment",
]

#: What an erased field reads.
ERASED = "erased"
#: The ``details`` key of an erasure record listing the field keys it destroyed.
ERASED_KEYS = "erased_field_keys"
#: The top-level key a writer may add to a record's fields: ``{clear value: [gallery, subject]}``.
SUBJECTS_HINT = "sealed_subjects"
#: Actions whose records may name destroyed field keys.
ERASING_ACTIONS = ("delete", "drop_gallery", "retention")

_PREFIX = "sealed."
_TOKEN = re.compile(r"sealed\.([sfit])\.([0-9a-f]{32})\.([A-Za-z0-9_-]+)")
_VIDEO = re.compile(r"^(\d+):(.+)$")
_KEY_IDS = re.compile(r'"(?:\d+:)?sealed\.[sfit]\.([0-9a-f]{32})\.')
_QUOTED = re.compile(r'"(\d+:)?(sealed\.[sfit]\.[0-9a-f]{32}\.[A-Za-z0-9_-]+)"')
_WHOLE = re.compile(r"(\d+:)?(sealed\.[sfit]\.[0-9a-f]{32}\.[A-Za-z0-9_-]+)")  # a whole string that _QUOTED opens
_FACE_KEYS = ("face_id", "target_face_id", "new_face_ids", "existing_face_ids", "deleted_face_ids")
_TEXT_KEYS = ("error", "reason")
_INDEX_LABEL = "facetrail-log-field-key"
_CACHED = 16384  # keys (and tokens) kept in memory at most; beyond, the cache starts again


class _KeyGone(Exception):
    """A token's key is gone (internal: the record is then opened field by field, to name the erased paths)."""


class SealedFieldError(AuditError):
    """A sealed field does not open under its key (altered, or sealed under another key store)."""

    code = "sealed_field_error"


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is (or, for a video candidate id, contains) a sealed token."""
    return isinstance(value, str) and _PREFIX in value


def subject_commitment(salt: bytes, subject_id: str) -> str:
    """Return ``sha256(salt || subject_id)`` (hex): what an erasure record says about whose data it erased.

    The salt (32 random bytes) is given only to the requester, in the receipt written at
    erasure time: with it and their id they show the record is about them; without it the
    log names nobody (a guessed id does not reproduce the commitment).
    """
    if len(salt) != 32:
        raise ValueError(f"a commitment salt is 32 bytes, got {len(salt)}")
    return hashlib.sha256(salt + subject_id.encode("utf-8")).hexdigest()


def _aad(kind: str) -> bytes:
    return b"facetrail-log-field\0" + kind.encode()


@dataclass(frozen=True)
class Erasure:
    """The record that destroyed a field key: who, when, why."""

    seq: int
    action: str
    operator: str | None
    at: str
    purpose: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "action": self.action, "operator": self.operator, "at": self.at,
                "purpose": self.purpose}


@dataclass(frozen=True)
class ErasedField:
    """A field of a record that reads ``"erased"``, and the erasure that destroyed its key (None if unrecorded)."""

    path: str
    """Where in the record (``$.candidates[0].subject_id``)."""
    key_id: str
    """The destroyed key's random id (links nothing to the subject)."""
    erasure: Erasure | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"path": self.path, "key_id": self.key_id,
                "erased_by": None if self.erasure is None else self.erasure.to_dict()}


class FieldKeys:
    """The audit log's field keys in a key store: seal, open, name and shred (see the module docstring)."""

    def __init__(self, keys: KeyStore,
                 face_subjects: Callable[[str, list[str]], Mapping[str, str]] | None = None) -> None:
        self.keys = keys
        #: ``(gallery, face ids) -> {face id: subject id}`` of the faces the gallery holds (see "Which fields")
        self.face_subjects = face_subjects
        self._ciphers: dict[str, AESGCM] = {}  # opening: key id -> cipher
        # what sealing looked up or made, as of the key store file's version ``_seen`` (a file store only):
        # (gallery, subject) -> (key id, key), key id -> cipher, (key id, kind, value) -> token
        self._owned: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._sealers: dict[str, AESGCM] = {}
        self._tokens: dict[tuple[str, str, str], str] = {}
        self._seen: tuple[int, int, int] | None = None
        # a look at the file and the keys read and kept after it are one step for the threads of a process:
        # keys read before another thread saw the file change are never kept after it dropped the others
        self._lock = threading.RLock()

    def _forget_if_changed(self) -> None:
        """Drop every cached key, cipher and token when the key store file changed (another process may have erased a key).

        The file's version is the stamp :class:`~core.keystore.KeyStore` itself re-reads the
        file on (inode, modification time, size: each rewrite is a new file renamed over it).
        """
        if self.keys.path is None:
            return
        with self._lock:
            try:
                st = os.stat(self.keys.path)
            except FileNotFoundError:
                stamp = None
            except OSError as err:
                raise SealedFieldError(f"cannot read the key store {str(self.keys.path)!r}: {err}") from err
            else:
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._seen:
                self._forget()
                self._seen = stamp

    def _forget(self) -> None:
        """Drop every cached key, cipher and token (a key is destroyed, or the store changed)."""
        with self._lock:
            self._ciphers.clear()
            self._owned.clear()
            self._sealers.clear()
            self._tokens.clear()

    def _index(self, gallery: str, subject: str) -> str:
        return self.keys.ref(_INDEX_LABEL, gallery, subject)

    def keys_for(self, pairs: Iterable[tuple[str, str]], *, create: bool) -> dict[tuple[str, str], tuple[str, bytes]]:
        """Return ``(key id, key)`` of each (gallery, subject); missing ones made (one store rewrite) if ``create``.

        With a key store file, one look at the file (:meth:`_forget_if_changed`) per call, before
        anything is read: while it is the version the keys kept in memory were read from (or a
        later one), they are taken from memory; once it changed (an erasure anywhere rewrites
        it), every key is read from the store again. After this call made keys (its own rewrite
        of the file), the file is looked at again before they are read back and kept.
        """
        with self._lock:
            wanted = sorted(set(pairs))
            cached = self.keys.path is not None
            if cached:
                self._forget_if_changed()
                known = {pair: self._owned[pair] for pair in wanted if pair in self._owned}
                if len(known) == len(wanted):
                    return known
            index = {pair: self._index(*pair) for pair in wanted}
            found = self._lookup(index)
            missing = [pair for pair in wanted if pair not in found]
            if missing and create:
                groups = []
                for pair in missing:
                    key_id = secrets.token_bytes(16)
                    groups.append({index[pair]: key_id + secrets.token_bytes(16), key_id.hex(): secrets.token_bytes(32)})
                self.keys.add_linked(groups)
                if cached:  # the file as written (or as anyone changed it since): what is read next is of it
                    self._forget_if_changed()
                found = self._lookup(index)
            if cached and len(found) <= _CACHED:  # (an enrolment of more subjects at once is not kept)
                if len(self._owned) + len(found) > _CACHED:
                    self._owned.clear()
                self._owned.update(found)
            return found

    def _lookup(self, index: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], tuple[str, bytes]]:
        entries = self.keys.get_many(index.values())
        ids = {pair: entries[i][:16].hex() for pair, i in index.items() if i in entries}
        keys = self.keys.get_many(ids.values())
        return {pair: (key_id, keys[key_id]) for pair, key_id in ids.items() if key_id in keys}

    def erasure_ids(self, gallery: str, subjects: Iterable[str]) -> list[str]:
        """Return the random key ids of these subjects' field keys (what an erasure record names); absent ones skipped."""
        found = self.keys_for([(gallery, s) for s in subjects], create=False)
        return sorted(key_id for key_id, _ in found.values())

    def shred_ids(self, gallery: str, subjects: Iterable[str]) -> list[str]:
        """Return the key store ids to destroy to shred these subjects' fields (for one rewrite with other keys).

        The caller destroys them in this key store (:meth:`core.gallery.GalleryStore.flush` ``also``).
        """
        index = {(gallery, s): self._index(gallery, s) for s in subjects}
        entries = self.keys.get_many(index.values())
        key_ids = [entries[i][:16].hex() for i in index.values() if i in entries]
        if key_ids:
            self._forget()
        return [*entries, *key_ids]

    def shred_key_ids(self, key_ids: Iterable[str]) -> int:
        """Destroy field keys named by their random ids (and their index entries, found by value); return how many.

        For retention (:meth:`audit.trail.log.AuditLog.field_keys_due`), which knows the key ids
        its records name but not the subjects. One read of the whole store, one rewrite.
        """
        wanted = set(key_ids)
        if not wanted:
            return 0
        entries = self.keys.get_many(self.keys.key_ids())
        index = [i for i, value in entries.items() if value[:16].hex() in wanted and i not in wanted]
        gone = [k for k in wanted if k in entries]
        self._forget()
        self.keys.destroy([*index, *gone])
        return len(gone)

    # -- tokens ---------------------------------------------------------------------------

    @staticmethod
    def token(key_id: str, key: bytes, kind: str, value: str, cipher: AESGCM | None = None) -> str:
        """Seal ``value`` (deterministically: see the module docstring) as a token naming ``key_id``.

        ``cipher``: ``AESGCM(key)`` when the caller keeps one.
        """
        aad = _aad(kind)
        payload = value.encode("utf-8")
        nonce = hmac.digest(key, aad + b"\0" + payload, "sha256")[:12]
        sealed = nonce + (cipher or AESGCM(key)).encrypt(nonce, payload, aad)
        return f"{_PREFIX}{kind}.{key_id}.{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}"

    def _sealed(self, key_id: str, key: bytes, kind: str, value: str) -> str:
        """Return :meth:`token`, kept (with the key's cipher) while the key store file is the version it was sealed at.

        Only a key :meth:`keys_for` has just returned is passed here, so a kept token is one of
        a key that was in the file as last looked at: any change to the file drops them all.
        """
        if self.keys.path is None:
            return self.token(key_id, key, kind, value)
        memo = (key_id, kind, value)
        found = self._tokens.get(memo)
        if found is None:
            cipher = self._sealers.get(key_id)
            if cipher is None:
                cipher = self._sealers[key_id] = AESGCM(key)
            found = self.token(key_id, key, kind, value, cipher)
            if len(self._tokens) >= _CACHED:
                self._tokens.clear()
            self._tokens[memo] = found
        return found

    def _open_token(self, match: re.Match[str], path: str) -> str | None:
        """Open one token; None when its key is gone."""
        kind, key_id, body = match.groups()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            with self._lock:
                found = self.keys.get_many([key_id])
                if key_id not in found:
                    return None
                cipher = self._ciphers[key_id] = AESGCM(found[key_id])
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except binascii.Error as err:
            raise SealedFieldError(f"the sealed field {path} is not base64: {err}") from err
        try:
            return cipher.decrypt(sealed[:12], sealed[12:], _aad(kind)).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as err:
            raise SealedFieldError(f"the sealed field {path} does not open under its key {key_id}: altered, or "
                                   f"sealed under another key store ({type(err).__name__})") from err

    def open_value(self, value: str) -> str:
        """Return one stored value opened: clear, ``"erased"`` if its key is gone, or itself if it is not sealed.

        For readers that count over the stored JSON (the reports' SQL) and show a value at the end.

        Raises
        ------
        SealedFieldError
            The token does not open under its key.
        """
        self._forget_if_changed()
        opened = self._walk(value, "value", [])
        return str(opened)

    def open_json(self, value: Any) -> Any:
        """Return a JSON value (dicts, lists, strings) with every token in it opened (``"erased"`` if its key is gone).

        For sealed values kept inside a record's own sealed blob (a blind batch's plan,
        :mod:`audit.blind`), which :meth:`open` cannot see.

        Raises
        ------
        SealedFieldError
            A token does not open under its key.
        """
        self._forget_if_changed()
        text = json.dumps(value, ensure_ascii=False)
        if _PREFIX not in text:
            return value
        self._load_ciphers(text)
        try:  # one pass over the text, as open() does; the walk only when a key is gone (or a token is bad)
            return json.loads(_QUOTED.sub(self._swap, text))
        except (SealedFieldError, _KeyGone):
            return self._walk(value, "$", [])

    def _load_ciphers(self, text: str) -> None:
        """Load the keys of every token in ``text`` not cached yet, in one key store read."""
        wanted = {m.group(1) for m in _KEY_IDS.finditer(text)} - self._ciphers.keys()
        if wanted:
            with self._lock:
                for key_id, key in self.keys.get_many(wanted).items():
                    self._ciphers[key_id] = AESGCM(key)

    def seal_owned(self, values: Iterable[tuple[str, str, str, str]]) -> dict[tuple[str, str, str, str], str]:
        """Seal ``(kind, value, gallery, subject)`` values under their subjects' field keys (made if missing).

        Returns ``{(kind, value, gallery, subject): token}``, the tokens :func:`seal_fields` would write for them, for
        values a writer puts where :func:`seal_fields` does not look (a blind batch's plan, sealed
        again under the batch's key and committed to before it is recorded).

        Raises
        ------
        AuditError
            The key store cannot be read or written.
        """
        wanted = list(values)
        try:
            keys = self.keys_for({(gallery, subject) for _, _, gallery, subject in wanted}, create=True)
        except KeyStoreError as err:
            raise AuditError(f"cannot seal personal values: {err}") from err
        return {(kind, value, gallery, subject): self._sealed(*keys[(gallery, subject)], kind, value)
                for kind, value, gallery, subject in wanted}

    def refresh(self) -> None:
        """Forget the cached ciphers if the key store file changed since the last look (a key may be erased)."""
        self._forget_if_changed()

    def open(self, record: AuditRecord, erasures: Callable[[], Mapping[str, Erasure]] | None = None,
             canonical: bytes | None = None, just_sealed: Mapping[str, str] | None = None, *,
             refreshed: bool = False) -> tuple[AuditRecord, tuple[ErasedField, ...]]:
        """Return ``record`` with every sealed field opened (``"erased"`` where the key is gone) and the erased fields.

        ``canonical``: the record's canonical bytes when the caller has them (they are opened
        as text, quicker than walking the record). ``just_sealed``: token -> clear value of tokens the
        caller has just sealed itself (:func:`seal_fields` ``tokens``), the clear values it
        holds anyway: when every token of the record is among them, no key is read. ``refreshed``:
        the caller has just called :meth:`refresh` for this read of several records (one look at
        the key store file for them all, instead of one per record).

        Raises
        ------
        SealedFieldError
            A token does not open under its key (the record was sealed wrongly, or altered before signing).
        """
        text = (canonical if canonical is not None else record.canonical()).decode("utf-8")
        if _PREFIX not in text:
            return record, ()
        if just_sealed:
            clear = just_sealed
            try:
                opened_known = _QUOTED.sub(lambda m: json.dumps((m.group(1) or "") + clear[m.group(2)],
                                                                ensure_ascii=False), text)
            except KeyError:
                pass  # a token the caller did not seal (a writer's own: seal_owned): opened under its key below
            else:
                return AuditRecord.from_dict(json.loads(opened_known)), ()
        if not refreshed:
            self._forget_if_changed()
        self._load_ciphers(text)  # one key store read for the record's keys
        try:
            opened_text = _QUOTED.sub(self._swap, text)
        except (SealedFieldError, _KeyGone):
            pass  # an erased or bad token: the walk below names its path
        else:
            return AuditRecord.from_dict(json.loads(opened_text)), ()
        data = record.to_dict()
        erased: list[tuple[str, str]] = []
        opened = self._walk(data, "$", erased)
        if not erased and opened == data:
            return record, ()
        known = erasures() if erased and erasures is not None else {}
        return AuditRecord.from_dict(opened), tuple(ErasedField(path, key_id, known.get(key_id))
                                                    for path, key_id in erased)

    def _swap(self, match: re.Match[str]) -> str:
        """Return a quoted token of the canonical text as its quoted clear value (raise _KeyGone if erased)."""
        token = _TOKEN.fullmatch(match.group(2))
        assert token is not None  # _QUOTED matches tokens only
        clear = self._open_token(token, "$")
        if clear is None:
            raise _KeyGone
        return json.dumps((match.group(1) or "") + clear, ensure_ascii=False)

    def _walk(self, value: Any, path: str, erased: list[tuple[str, str]]) -> Any:
        if isinstance(value, dict):
            return {k: self._walk(v, f"{path}.{k}", erased) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, f"{path}[{i}]", erased) for i, v in enumerate(value)]
        if not is_sealed(value):
            return value
        video = _VIDEO.match(value)
        prefix, body = (video.group(1) + ":", video.group(2)) if video else ("", value)
        match = _TOKEN.fullmatch(body)
        if match is None:
            return value  # text that merely contains the word: not a token
        clear = self._open_token(match, path)
        if clear is None:
            erased.append((path, match.group(2)))
            return prefix + ERASED
        return prefix + clear


def opened_known(record: AuditRecord, clear: Mapping[str, str], canonical: bytes) -> AuditRecord | None:
    """Return ``record`` (its canonical bytes ``canonical``) with its tokens replaced by the values ``clear`` gives.

    The record :meth:`FieldKeys.open` reads from the canonical bytes (every token opened where
    it stands as a whole string, a video candidate id's ``"<track>:"`` kept, dict keys
    included), made from the clear values a writer has just sealed (:func:`seal_fields`
    ``tokens``: token -> value) without decoding anything or reading a key. The fields are
    looked at in turn until every ``sealed.`` of the bytes is accounted for (a search's are all
    in its candidates). ``None`` when the record holds a token ``clear`` does not give (one its
    writer sealed itself: open it under its key).
    """
    known = _Known(clear, canonical.count(_PREFIX.encode()))
    changes: dict[str, Any] = {}
    try:
        if record.candidates:  # where a search's tokens are
            candidates = tuple(_known_candidate(c, known) for c in record.candidates)
            if any(a is not b for a, b in zip(candidates, record.candidates, strict=True)):
                changes["candidates"] = candidates
        if record.probe_sha256 is not None and not known.done():
            probes = tuple(known.text(p) for p in record.probe_sha256)
            if probes != record.probe_sha256:
                changes["probe_sha256"] = probes
        for name in _RECORD_TEXT:
            if known.done():
                break
            value = getattr(record, name)
            opened = known.text(value) if isinstance(value, str) else value
            if opened is not value:
                changes[name] = opened
        if record.gallery is not None and not known.done():
            gallery = record.gallery
            name, fingerprint = known.text(gallery.name), known.text(gallery.fingerprint)
            if name is not gallery.name or fingerprint is not gallery.fingerprint:
                changes["gallery"] = type(gallery)(name, fingerprint, gallery.size)
        for name in ("details", "model_config"):
            value = getattr(record, name)
            if value is not None and not known.done():
                opened = known.value(value)
                if opened is not value:
                    changes[name] = opened
    except KeyError:
        return None
    return type(record)(**{**vars(record), **changes}) if changes else record


#: The fields of a record that are free strings (others are validated shapes no token fits), in the order looked at.
_RECORD_TEXT = ("target_face_id", "note", "operator", "purpose", "case_ref", "legal_basis", "reviewer", "decision",
                "outcome")


class _Known:
    """Open the tokens of one record from clear values (:func:`opened_known`), counting the ``sealed.`` seen."""

    def __init__(self, clear: Mapping[str, str], expected: int) -> None:
        self.clear = clear
        self.expected = expected
        self.seen = 0

    def done(self) -> bool:
        """Whether every ``sealed.`` of the record's bytes was in a string looked at already."""
        return self.seen >= self.expected

    def text(self, value: str) -> str:
        """Return a string as :meth:`FieldKeys.open` opens it (KeyError: a token not in ``clear``)."""
        if _PREFIX not in value:
            return value
        self.seen += value.count(_PREFIX)
        whole = _WHOLE.fullmatch(value)
        return value if whole is None else (whole.group(1) or "") + self.clear[whole.group(2)]

    def value(self, value: Any) -> Any:
        """:meth:`text` through a JSON value (dict keys included); ``value`` itself when nothing in it changes."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            pairs = [(k, v, self.text(k), self.value(v)) for k, v in value.items()]
            if all(k is ok and v is ov for k, v, ok, ov in pairs):
                return value
            return {ok: ov for _, _, ok, ov in sorted(pairs, key=lambda p: p[0])}  # canonical order, as decoded
        if isinstance(value, list):
            items = [self.value(v) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value


def _known_candidate(candidate: Any, known: _Known) -> Any:
    subject, face = known.text(candidate.subject_id), known.text(candidate.face_id)
    if subject is candidate.subject_id and face is candidate.face_id:
        return candidate
    return type(candidate)(subject, face, candidate.distance, candidate.similarity, candidate.rank)


# -- sealing at write time ----------------------------------------------------------------------


def _gallery_of(fields: Mapping[str, Any]) -> str:
    gallery = fields.get("gallery")
    if isinstance(gallery, Mapping):
        return str(gallery.get("name") or "")
    name = getattr(gallery, "name", None)
    if isinstance(name, str):
        return name
    details = fields.get("details")
    if isinstance(details, Mapping) and isinstance(details.get("gallery_name"), str):
        return str(details["gallery_name"])
    return ""


def _as_dict(value: Any) -> dict[str, Any]:
    to_dict = getattr(value, "to_dict", None)
    return dict(to_dict() if callable(to_dict) else value)


class _Sealing:
    """The owners of one record's personal values and the tokens that replace them."""

    def __init__(self, fields: Mapping[str, Any], hints: Mapping[str, Any], keys: FieldKeys) -> None:
        self.field_keys = keys
        self.gallery = _gallery_of(fields)
        self.subjects: dict[str, tuple[str, str]] = {}  # clear subject id -> (gallery, subject)
        self.faces: dict[str, tuple[str, str]] = {}     # clear face id -> owner
        self.images: dict[str, tuple[str, str]] = {}    # clear image SHA-256 -> owner
        for value, owner in hints.items():
            if not (isinstance(owner, (list, tuple)) and len(owner) == 2 and all(isinstance(o, str) for o in owner)):
                raise ValueError(f"{SUBJECTS_HINT} maps a value to [gallery, subject], got {owner!r} for {value!r}")
            pair = (owner[0], owner[1])
            self.subjects.setdefault(pair[1], pair)
            (self.images if re.fullmatch(r"[0-9a-f]{64}", value) else self.faces)[value] = pair
        self.tokens: dict[tuple[str, str, str, str], str] = {}
        self.keys: dict[tuple[str, str], tuple[str, bytes]] = {}

    def owner_of_face(self, face: str) -> tuple[str, str]:
        if face in self.faces:
            return self.faces[face]
        owners = set(self.subjects.values())
        owner = owners.pop() if len(owners) == 1 else (self.gallery, "")
        self.faces[face] = owner  # a text naming it is sealed with it
        return owner

    def seal(self, kind: str, value: str, owner: tuple[str, str]) -> str:
        if is_sealed(value) or value == ERASED:
            return value
        key_id, key = self.keys[owner]
        memo = (kind, value, *owner)
        if memo not in self.tokens:
            self.tokens[memo] = self.field_keys._sealed(key_id, key, kind, value)
        return self.tokens[memo]

    def subject(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.subjects:
            return self.seal("s", value, self.subjects[value])
        return value

    def face(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        video = _VIDEO.match(value)
        if video and video.group(2) in self.faces:
            return f"{video.group(1)}:{self.seal('f', video.group(2), self.faces[video.group(2)])}"
        return self.seal("f", value, self.owner_of_face(value))

    def text(self, value: Any) -> Any:
        """Seal a free text that names a clear id whole, under that id's owner."""
        if isinstance(value, dict):
            return {k: self.text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.text(v) for v in value]
        if not isinstance(value, str) or is_sealed(value):
            return value
        for table in (self.subjects, self.faces, self.images):
            for clear, owner in table.items():
                if clear and clear in value:
                    return self.seal("t", value, owner)
        return value


def _collect(fields: Mapping[str, Any], sealing: _Sealing) -> list[dict[str, Any]]:
    """Learn the record's subjects (and faces) from its own fields; return its candidates as dicts."""
    candidates = [_as_dict(c) for c in fields.get("candidates") or ()]
    for c in candidates:
        subject, face = c.get("subject_id"), c.get("face_id")
        if isinstance(subject, str) and not is_sealed(subject):
            owner = sealing.subjects.setdefault(subject, (sealing.gallery, subject))
            if isinstance(face, str):
                sealing.faces.setdefault(face, owner)
    details = fields.get("details")
    if isinstance(details, Mapping):
        named = details.get("subject_ids")
        for subject in ([details.get("subject_id")] + (list(named) if isinstance(named, list) else [])):
            if isinstance(subject, str) and not is_sealed(subject):
                sealing.subjects.setdefault(subject, (sealing.gallery, subject))
    return candidates


def _face_values(data: Mapping[str, Any], details: Mapping[str, Any]) -> list[str]:
    """Return the clear face ids a record names where :func:`seal_fields` seals face ids (video ids' face part)."""
    found: list[Any] = [data.get("target_face_id")]
    for key in _FACE_KEYS:
        value = details.get(key)
        found.extend(value if isinstance(value, list) else [value])
    if isinstance(details.get("face_detectors"), Mapping):
        found.extend(details["face_detectors"])
    if isinstance(details.get("tracks"), list):
        found.extend(f for t in details["tracks"] if isinstance(t, Mapping) for f in t.get("candidates") or [])
    out = []
    for value in found:
        if isinstance(value, str) and not is_sealed(value) and value != ERASED:
            video = _VIDEO.match(value)
            out.append(video.group(2) if video else value)
    return out


def _look_up_faces(data: Mapping[str, Any], details: Mapping[str, Any], sealing: _Sealing, keys: FieldKeys) -> None:
    """Learn the subjects of the record's faces its fields do not tie to one subject, from the gallery."""
    if keys.face_subjects is None or not sealing.gallery or len(set(sealing.subjects.values())) == 1:
        return
    unknown = sorted({f for f in _face_values(data, details) if f not in sealing.faces})
    if not unknown:
        return
    try:
        found = keys.face_subjects(sealing.gallery, unknown)
    except KeyStoreError as err:
        raise AuditError(f"cannot seal a record's face ids under their subjects' keys: {err}") from err
    for face, subject in found.items():
        sealing.faces[face] = (sealing.gallery, subject)


def _listed_subjects(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the (gallery, subject) of each clear entry of a retention record's ``details.subjects`` list."""
    listed = details.get("subjects")
    if not isinstance(listed, list):
        return []
    return [(str(s.get("gallery_name") or ""), s["subject_id"]) for s in listed
            if isinstance(s, Mapping) and isinstance(s.get("subject_id"), str) and not is_sealed(s["subject_id"])]


def seal_fields(fields: Mapping[str, Any], keys: FieldKeys, tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the record fields with every personal value sealed (see the module docstring); ``fields`` is unchanged.

    ``tokens``, when given, receives token -> clear value of every value sealed here (for
    :meth:`FieldKeys.open` ``just_sealed``).

    Raises
    ------
    ValueError
        A malformed :data:`SUBJECTS_HINT`.
    """
    data = dict(fields)
    sealing = _Sealing(data, data.pop(SUBJECTS_HINT, None) or {}, keys)
    candidates = _collect(data, sealing)
    details = dict(data.get("details") or {})
    has_faces = (data.get("target_face_id") is not None or any(k in details for k in _FACE_KEYS)
                 or "tracks" in details or "face_detectors" in details)
    listed = _listed_subjects(details)
    if not sealing.subjects and not has_faces and not listed:
        return data
    if has_faces:
        _look_up_faces(data, details, sealing, keys)
    owners = (set(sealing.subjects.values()) | set(sealing.faces.values()) | set(sealing.images.values())
              | set(listed))
    if has_faces and len(set(sealing.subjects.values())) != 1 and any(
            f not in sealing.faces for f in _face_values(data, details)):
        owners.add((sealing.gallery, ""))  # a face nothing ties to a subject (see owner_of_face)
    try:
        sealing.keys = keys.keys_for(owners, create=True)
    except KeyStoreError as err:
        raise AuditError(f"cannot seal a record's personal fields: {err}") from err
    for c in candidates:
        subject = c.get("subject_id")
        if isinstance(subject, str) and subject in sealing.subjects:
            owner = sealing.subjects[subject]
            c["subject_id"] = sealing.seal("s", subject, owner)
            if isinstance(c.get("face_id"), str):
                c["face_id"] = sealing.seal("f", c["face_id"], owner)
    if candidates:
        data["candidates"] = candidates
    for key in ("subject_id", "subject_ids"):
        if key in details:
            value = details[key]
            details[key] = [sealing.subject(s) for s in value] if isinstance(value, list) else sealing.subject(value)
    for key in _FACE_KEYS:
        if key in details:
            value = details[key]
            details[key] = [sealing.face(f) for f in value] if isinstance(value, list) else sealing.face(value)
    if listed:  # a retention run's erased subjects, each of its own gallery
        details["subjects"] = [{**s, "subject_id": sealing.seal("s", s["subject_id"],
                                                               (str(s.get("gallery_name") or ""), s["subject_id"]))}
                               if isinstance(s, Mapping) and isinstance(s.get("subject_id"), str) else s
                               for s in details["subjects"]]
    if isinstance(details.get("face_detectors"), Mapping):  # face id -> the detector that found it
        details["face_detectors"] = {sealing.face(f): d for f, d in details["face_detectors"].items()}
    if isinstance(details.get("tracks"), list):
        details["tracks"] = [{**t, "candidates": [sealing.face(f) for f in t.get("candidates") or []]}
                             if isinstance(t, Mapping) else t for t in details["tracks"]]
    if data.get("target_face_id") is not None:
        data["target_face_id"] = sealing.face(data["target_face_id"])
    probes = data.get("probe_sha256")
    if probes and sealing.images:
        data["probe_sha256"] = [sealing.seal("i", p, sealing.images[p]) if p in sealing.images else p
                                for p in probes]
    for key in _TEXT_KEYS:
        if key in details:
            details[key] = sealing.text(details[key])
    failures = details.get("failures")
    if isinstance(failures, Mapping) and isinstance(failures.get("first"), list):  # image paths name subjects
        details["failures"] = {**failures, "first": [sealing.text(f) for f in failures["first"]]}
    if "details" in data or details:
        data["details"] = details
    if isinstance(data.get("note"), str):
        data["note"] = sealing.text(data["note"])
    if tokens is not None:
        tokens.update({token: memo[1] for memo, token in sealing.tokens.items()})
    return data


def erasures_by_key(records: Iterable[bytes]) -> dict[str, Erasure]:
    """Map each destroyed field key id to the erasure record naming it, from canonical record bytes."""
    out: dict[str, Erasure] = {}
    for blob in records:
        record = decode_record(blob)
        named = record.details.get(ERASED_KEYS)
        if not isinstance(named, list):
            continue
        erasure = Erasure(record.seq, record.action, record.operator, record.ended_at, record.purpose)
        for key_id in named:
            if isinstance(key_id, str):
                out.setdefault(key_id, erasure)
    return out


def with_erasure_ids(details: Mapping[str, Any], key_ids: list[str]) -> dict[str, Any]:
    """Return ``details`` naming the field keys an erasure destroys (unchanged when there are none)."""
    return {**details, ERASED_KEYS: key_ids} if key_ids else dict(details)

