"""Where facetrail keeps personal or biometric data, and the evaluation cache's purge.

:func:`privacy_inventory` answers a data-protection officer's first question: every
table and file of one deployment that holds personal or biometric data, what kind,
how many subjects or rows, the oldest item and the rule that ends its keeping. It
reads counts only (never a value) and needs the ``integrity`` permission (auditors,
admins); a refusal is recorded by the gate.

:func:`purge_evaluation_cache` deletes evaluation embeddings older than the retention
period (``FACETRAIL_EVALUATION_CACHE_DAYS``), or all of them, and destroys their day
keys (:class:`core.cache.EvaluationCache`); ``dry_run`` only counts. It needs the
``evaluate`` permission (whoever may fill the cache may empty it); a refusal is
recorded; a purge (not a dry run) is recorded as a ``retention`` record naming what it
purged. :func:`retention_run` (``facetrail retention run``, :mod:`audit.retention`) applies
every retention rule at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.accounts import Actor
from audit.evidence import EvidenceStore
from audit.retention import gallery_schedules, log_personal_schedule, retention_run
from audit.runtime import Runtime
from audit.session import AuditContext
from core.cache import EvaluationCache, PurgeReport

__all__ = ["DataHolding", "PurgeReport", "privacy_inventory", "purge_evaluation_cache", "retention_run"]


@dataclass(frozen=True)
class DataHolding:
    """One place personal or biometric data is kept."""

    place: str
    """``table:<name>`` or ``file:<name>`` (a file's name, not its path)."""
    kind: str
    """What it holds (``biometric`` or ``personal``, and what exactly)."""
    rows: int
    """Rows (a table) or entries (a file)."""
    subjects: int | None
    """Distinct subjects, where the place knows them."""
    oldest: str | None
    """When the oldest item was written (ISO 8601), where known."""
    retention: str
    """The rule that ends its keeping."""
    protection: str
    """How it is protected at rest."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"place": self.place, "kind": self.kind, "rows": self.rows, "subjects": self.subjects,
                "oldest": self.oldest, "retention": self.retention, "protection": self.protection}


def _iso(value: Any) -> str | None:
    return None if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))


def _gallery_rule(runtime: Runtime) -> str:
    schedules = gallery_schedules(runtime.log, [g.name for g in runtime.galleries.list()])
    named = "; ".join(f"{name}: {s.describe()}" for name, s in sorted(schedules.items()))
    others = "until the subject is erased (gallery delete --subject) or the gallery dropped"
    return f"{named}; other galleries: {others}" if named else f"{others}; no gallery has a schedule"


def _tables(runtime: Runtime, cache_days: float) -> list[DataHolding]:
    out = []
    gallery_rule = _gallery_rule(runtime)
    log_rule = log_personal_schedule(runtime.settings).describe()
    with runtime.db.connect() as con:
        def one(sql: str) -> tuple[Any, ...]:
            row = con.execute(sql).fetchone()
            assert row is not None
            return tuple(row)

        faces, subjects, oldest = one("SELECT count(*), count(DISTINCT gallery || subject_ref), min(enrolled_at) "
                                      "FROM gallery_faces")
        out.append(DataHolding(
            "table:gallery_faces", "biometric: face embeddings, reference photos, subject ids, image names and metadata of enrolled "
            "faces", int(faces), int(subjects), _iso(oldest),
            gallery_rule,
            "AES-256-GCM per subject (key in the key store); erasure destroys the key; face ids and image "
            "SHA-256 only as keyed HMACs (under the key store's secret)"))
        rows, oldest = one("SELECT count(*), min(created_at) FROM embedding_cache")
        out.append(DataHolding(
            "table:embedding_cache", "personal: keyed references of images without a usable face (no embedding)",
            int(rows), None, _iso(oldest), "until the image is erased from every gallery", "none (no biometric data)"))
        rows, oldest = one("SELECT count(*), min(created_at) FROM evaluation_cache")
        out.append(DataHolding(
            "table:evaluation_cache", "biometric: embeddings of evaluated dataset images", int(rows), None,
            _iso(oldest), f"{cache_days:g} days after writing (facetrail privacy purge-evaluation-cache)",
            "AES-256-GCM per UTC day (key in the key store); a purge destroys the day's key"))
        rows, oldest = one("SELECT count(*), min(seq) FROM audit_log")
        out.append(DataHolding(
            "table:audit_log", "personal: operators, purposes and cases, subject ids, face ids, image SHA-256, "
            "review notes", int(rows), None, None if oldest is None else f"record #{oldest}",
            "kept (append-only, for accountability); subject ids, face ids and gallery image hashes read 'erased' "
            f"once their subject is erased or their gallery dropped; {log_rule}",
            "hash chain and signed checkpoints (integrity); subject ids, face ids and gallery image hashes sealed "
            "with AES-256-GCM per (gallery, subject) key in the key store (audit.trail.sealed)"))
        rows, oldest = one("SELECT count(*), min(created_at) FROM users")
        out.append(DataHolding("table:users", "personal: account names and roles (argon2id password hashes)",
                               int(rows), None, _iso(oldest), "until the account is removed (accounts are disabled, "
                               "never deleted, so records keep naming them)", "password hashes only"))
        rows, oldest = one("SELECT count(*), min(created_at) FROM auth_credentials")
        out.append(DataHolding("table:auth_credentials", "personal: sign-in sessions and API tokens per account",
                               int(rows), None, _iso(oldest), "until expiry or revocation (rows kept)",
                               "SHA-256 of each secret only"))
    return out


def _files(runtime: Runtime, cache: EvaluationCache) -> list[DataHolding]:
    out = []
    keys = cache.keys
    if keys.path is not None and keys.path.is_file():
        out.append(DataHolding(f"file:{keys.path.name}", "keys: one per enrolled subject and per evaluation-cache day",
                               len(keys.key_ids()), None, None, "a key is destroyed with its subject or its day",
                               "file mode 0600, rewritten whole on every change (old version zeroed)"))
    store = EvidenceStore.beside(runtime.db.path, keys)
    if store.keys.path is not None and store.keys.path.is_file():
        out.append(DataHolding(f"file:{store.keys.path.name}", "keys: one per image kept for review",
                               len(store.keys.key_ids()), None, None, "a key is destroyed with its image",
                               "file mode 0600, rewritten whole on every change (old version zeroed)"))
    evidence = store.items()
    if evidence:
        out.append(DataHolding(
            f"file:{Path(runtime.db.path).name}.evidence/", "biometric: probe images and video-track crops kept for "
            "review", len(evidence), None, evidence[0].kept_at,
            "until its review ends or 30 days pass (facetrail retention run)",
            "AES-256-GCM, a key per item in the evidence key store; destruction destroys the key"))
    db_path = Path(runtime.db.path)
    wal = Path(str(db_path) + ".wal")
    if runtime.db.path != ":memory:" and wal.is_file():
        out.append(DataHolding(f"file:{wal.name}", "the database's write-ahead log: recent changes of any table",
                               0, None, None, "emptied at every checkpoint (after every erasure)",
                               "as the tables it holds"))
    return out


def privacy_inventory(runtime: Runtime, context: AuditContext | None = None, *,
                      actor: Actor | None = None) -> list[DataHolding]:
    """Return every place this deployment keeps personal or biometric data (see the module docstring).

    ``actor``: who asks (default: the runtime's signed-in account).

    Raises
    ------
    NotAuthenticated, Forbidden
        Refused (and recorded): the signed-in account may not read integrity facts.
    """
    runtime.session(context or AuditContext(purpose="privacy inventory"), actor).check(
        "report", {"what": "privacy inventory"}, permission="integrity")
    cache = EvaluationCache(runtime.db, runtime.galleries.keys,
                            retention_days=runtime.settings.evaluation_cache_days)
    return _tables(runtime, runtime.settings.evaluation_cache_days) + _files(runtime, cache)


def purge_evaluation_cache(runtime: Runtime, context: AuditContext | None = None, *, everything: bool = False,
                           dry_run: bool = False) -> PurgeReport:
    """Delete expired (or all) evaluation embeddings and destroy their day keys; ``dry_run`` only counts.

    Raises
    ------
    NotAuthenticated, Forbidden
        Refused (and recorded): the signed-in account may not evaluate.
    """
    session = runtime.session(context or AuditContext(purpose="evaluation cache retention"))
    session.check("evaluate", {"what": "purge the evaluation cache", "everything": everything, "dry_run": dry_run})
    cache = EvaluationCache(runtime.db, runtime.galleries.keys,
                            retention_days=runtime.settings.evaluation_cache_days)
    if dry_run:
        return cache.purge_expired(everything=everything, dry_run=True)
    return session.run("retention", lambda: cache.purge_expired(everything=everything),
                       lambda r: {"details": {"rule": "evaluation_cache", "everything": everything,
                                              "evaluation_cache": r.to_dict()}},
                       lambda _: {"details": {"rule": "evaluation_cache", "everything": everything}}).result
