"""Pseudonymised exports that re-identify nobody: every identifier that links, under a keyed HMAC.

A pseudonymised export (``audit export --pseudonymize``) must not let a reader who
knows the public names of a dataset, and can hash its public images, link a row to a
person. Before, face ids were an *unkeyed* SHA-256 of (gallery, subject, image hash),
exported next to the image hashes, so names plus images recovered every candidate;
and error texts kept subject ids in clear.

:func:`pseudonymize_record` replaces, with ``HMAC-SHA256(key, kind || value)``:

- subject ids (``ps_`` + 32 hex, as before: candidates, ``details.subject_id(s)``);
- face ids (``pf_``): candidates, ``target_face_id``, ``details.*face_id*`` lists and
  values, track candidate lists, review candidate ids ``"<track>:<face>"``;
- image SHA-256 digests (``ph_``): ``probe_sha256`` and any 64-hex value in details;

and then every occurrence of any of these values inside any other text of the record
(error messages, reasons, notes), so none is left in clear anywhere. The records come
from the log opened (:mod:`audit.trail.sealed`): a pseudonym is the HMAC of the clear
value, and a field whose subject was erased stays ``"erased"``. The model
configuration (weights' checksums, embedding key) and the gallery fingerprint are
facts about software and reference sets, not people, and are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from audit.trail.log import AuditLog
from audit.trail.sealed import ERASED
from core.keystore import KeyStore

__all__ = ["export_pseudonym_key", "pseudonymize_record"]

_HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_KEEP = frozenset({"model_config", "gallery", "started_at", "ended_at", "latency_ms", "seq", "embedding_key"})


def _mac(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _subject(key: bytes, value: str) -> str:
    # the pseudonym of audit.trail.export.pseudonym (kept: exports made before compare)
    return "ps_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _collect(record: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """Return the subject ids, face ids and image digests a record names in its structured fields."""
    subjects: set[str] = set()
    faces: set[str] = set()
    images: set[str] = set(record.get("probe_sha256") or [])
    for c in record.get("candidates") or []:
        subjects.add(str(c.get("subject_id")))
        faces.add(str(c.get("face_id")))
    if record.get("target_face_id"):
        target = str(record["target_face_id"])
        faces.add(target.split(":", 1)[1] if ":" in target else target)

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, name)
        elif isinstance(value, str):
            if name in ("subject_id", "subject_ids"):
                subjects.add(value)
            elif "face_id" in name or name == "candidates":
                faces.add(value)
            images.update(_HEX64.findall(value))

    walk(record.get("details") or {})
    # an erased field (audit.trail.sealed) reads "erased" in every export: its pseudonym would be one for all
    return subjects - {"None", ERASED}, faces - {"None", ERASED}, images - {ERASED}


def pseudonymize_record(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Return a copy of a record dict with every linking identifier pseudonymised (see the module docstring)."""
    subjects, faces, images = _collect(record)
    table = {s: _subject(key, s) for s in subjects}
    table.update({f: "pf_" + _mac(key, "face", f) for f in faces})
    table.update({h: "ph_" + _mac(key, "image", h) for h in images})
    # longest first, so a value inside another (a face id inside a candidate id) is replaced whole
    pattern = re.compile("|".join(re.escape(v) for v in sorted(table, key=len, reverse=True))) if table else None

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v if k in _KEEP else swap(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str) and pattern is not None:
            return table.get(value) or pattern.sub(lambda m: table[m.group(0)], value)
        return value

    out: dict[str, Any] = swap(record)
    return out


def export_pseudonym_key(log: AuditLog) -> bytes:
    """Return the HMAC key of pseudonymised exports: derived from the secret of the database's key store.

    The same key for every export of one deployment (pseudonyms compare across exports); it
    never leaves the key store (:mod:`core.keystore`), and a reader without the store cannot
    compute or invert a pseudonym. ``--pseudonym-key FILE`` still names a key file instead.
    """
    return KeyStore.for_database(log.db, log.db.path).hmac_key("export-pseudonyms")
