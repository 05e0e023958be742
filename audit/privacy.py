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
recorded. The purge alone is not a record of its own; :func:`retention_run` (``facetrail
retention run``) applies every retention rule at once and is recorded as a
``retention`` record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.accounts import Actor
from audit.evidence import EvidenceStore
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


def _tables(runtime: Runtime, cache_days: float) -> list[DataHolding]:
    out = []
    with runtime.db.connect() as con:
        def one(sql: str) -> tuple[Any, ...]:
            row = con.execute(sql).fetchone()
            assert row is not None
            return tuple(row)

        faces, subjects, oldest = one("SELECT count(*), count(DISTINCT gallery || subject_ref), min(enrolled_at) "
                                      "FROM gallery_faces")
        out.append(DataHolding(
            "table:gallery_faces", "biometric: face embeddings, subject ids, image names and metadata of enrolled "
            "faces", int(faces), int(subjects), _iso(oldest),
            "until the subject is erased (gallery delete --subject) or the gallery dropped; no schedule yet",
            "AES-256-GCM per subject (key in the key store); erasure destroys the key"))
        rows, oldest = one("SELECT count(*), min(created_at) FROM embedding_cache")
        out.append(DataHolding(
            "table:embedding_cache", "personal: image SHA-256 of images without a usable face (no embedding)",
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
            "once their subject is erased or their gallery dropped",
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
    evidence = EvidenceStore.beside(runtime.db.path, keys).items()
    if evidence:
        out.append(DataHolding(
            f"file:{Path(runtime.db.path).name}.evidence/", "biometric: probe images and video-track crops kept for "
            "review", len(evidence), None, evidence[0].kept_at,
            "until its review ends or 30 days pass (facetrail retention run)",
            "AES-256-GCM, a key per item in the key store; destruction destroys the key"))
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
    runtime.session(context or AuditContext(purpose="evaluation cache retention")).check(
        "evaluate", {"what": "purge the evaluation cache", "everything": everything, "dry_run": dry_run})
    cache = EvaluationCache(runtime.db, runtime.galleries.keys,
                            retention_days=runtime.settings.evaluation_cache_days)
    return cache.purge_expired(everything=everything, dry_run=dry_run)


def retention_run(runtime: Runtime, context: AuditContext | None = None, *, dry_run: bool = False,
                  actor: Actor | None = None, evidence: EvidenceStore | None = None,
                  clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Apply every retention rule now: expired evaluation embeddings, evidence whose review ended or expired.

    A dry run lists what is due and changes nothing (no record). A run destroys what is due and
    is recorded as one ``retention`` record (what was purged, by rule); running it again purges
    nothing (its record says so).

    Parameters
    ----------
    actor
        Who runs it (default: the runtime's signed-in account).
    evidence
        The evidence store (default: the one beside the database).
    clock
        The current time (tests pass a fake one).

    Raises
    ------
    NotAuthenticated, Forbidden
        Refused (and recorded): retention is integrity work (auditors, admins).
    """
    session = runtime.session(context or AuditContext(purpose="retention schedule"), actor)
    session.check("retention", {"dry_run": dry_run})
    cache = EvaluationCache(runtime.db, runtime.galleries.keys,
                            retention_days=runtime.settings.evaluation_cache_days, clock=clock)
    store = evidence or EvidenceStore.beside(runtime.db.path, runtime.galleries.keys, clock=clock)
    items = [{**item.to_dict(), "reason": why} for item, why in store.due(session.log)]
    planned = cache.purge_expired(dry_run=True)
    if dry_run:
        return {"dry_run": True, "evaluation_cache": planned.to_dict(), "evidence": items}

    def call() -> dict[str, Any]:
        purged = cache.purge_expired()
        for item in items:
            store.destroy(item["evidence_id"])
        return {"dry_run": False, "evaluation_cache": purged.to_dict(), "evidence": items}

    done = session.run("retention", call, lambda r: {"details": {k: v for k, v in r.items() if k != "dry_run"}},
                       lambda _: {"details": {"evaluation_cache": planned.to_dict(), "evidence": items}})
    return {**done.result, "audit_seq": done.seq}
