"""The evidence store: the images a review needs, kept encrypted, only until the review ends.

Reviewers must compare photos, so the probe image of a search with candidates is kept
for its review (issue 11). Nothing else of a probe is kept. Each item is sealed
(AES-256-GCM) under a key of its own, in a folder beside the database (``<db file>.evidence/``;
in memory for ``:memory:``): ``<id>.sealed`` holds the ciphertext, ``<id>.json`` what is not
personal (the record's ``seq``, the kind, when it was kept and when it expires). Destroying an
item destroys its key first, then deletes its files, so a copy of the ciphertext left anywhere
opens for nobody.

The keys are in a key store of their own (:func:`evidence_keystore_path`: beside the
database's key store, ``<key store>.evidence``, so wherever the deployer keeps keys, away from
the data), not in the database's: a key store is rewritten whole at every change, and the
database's holds a key per enrolled subject, so keeping one probe there rewrote 48 MB (about a
second) per search with candidates in a gallery of a million subjects. This one holds only the
items not yet destroyed. Items kept before it existed have their key in the database's key
store, where :meth:`EvidenceStore.read` and :meth:`EvidenceStore.destroy` find it.

- :meth:`EvidenceStore.keep` seals an image (the search record names the item in
  ``details.retained``, so the keeping is recorded with the search itself);
- :meth:`EvidenceStore.read` opens it for reviewers and auditors (``read_log``
  permission); anyone else is refused and the refusal recorded;
- :meth:`EvidenceStore.purge_due` destroys the items whose review ended (no candidate of
  its record still pending) or whose retention expired (default 30 days), and records
  each destruction as an ``evidence`` record (``details.destroyed``, ``details.reason``);
  a dry run lists what is due and changes nothing; a second run finds nothing.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit.session import AuditSession
from audit.trail.log import AuditLog
from core.keystore import AESGCM, KeyStore, seal, unseal

__all__ = ["EvidenceItem", "EvidenceStore", "RETENTION_DAYS", "evidence_keystore_path"]

#: Default days an item is kept when its review does not end first.
RETENTION_DAYS = 30.0


@dataclass(frozen=True)
class EvidenceItem:
    """One kept image: what it is for, never what it shows."""

    evidence_id: str
    kind: str
    """``probe_image`` (a search's probe) or ``track_crop`` (a video track's best face)."""
    key_id: str
    kept_at: str
    expires_at: str
    seq: int | None = None
    """The audit record it is evidence for (set once that record is written)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the key id)."""
        return {"evidence_id": self.evidence_id, "kind": self.kind, "seq": self.seq, "kept_at": self.kept_at,
                "expires_at": self.expires_at}


def evidence_keystore_path(keys: KeyStore) -> Path | None:
    """Where the evidence keys of a database whose key store is ``keys`` live: ``<key store file>.evidence``.

    ``None`` (keys in memory) when the database's key store is in memory.
    """
    return None if keys.path is None else Path(str(keys.path) + ".evidence")


class EvidenceStore:
    """Sealed images for reviews (see the module docstring).

    Parameters
    ----------
    folder
        Where items live (``None``: in memory).
    keys
        The database's key store: the evidence keys are kept beside it (:func:`evidence_keystore_path`),
        and items kept before that have their key in it.
    retention_days
        Days an item is kept at most.
    clock
        The current time (tests pass a fake one).
    """

    def __init__(self, folder: Path | None, keys: KeyStore, *, retention_days: float = RETENTION_DAYS,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.folder = folder
        self.database_keys = keys
        self.keys = KeyStore(evidence_keystore_path(keys))
        self.retention = timedelta(days=retention_days)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._memory: dict[str, tuple[EvidenceItem, bytes]] = {}

    @classmethod
    def beside(cls, db_path: str, keys: KeyStore, **options: Any) -> EvidenceStore:
        """Return the store of a database: ``<db file>.evidence/`` (in memory for ``:memory:``)."""
        folder = None if db_path == ":memory:" else Path(str(Path(db_path).expanduser()) + ".evidence")
        return cls(folder, keys, **options)

    # -- keeping ---------------------------------------------------------------------------------

    def keep(self, data: bytes, kind: str) -> EvidenceItem:
        """Seal ``data`` under a new key; return the item (link it to its record with :meth:`link`)."""
        ((key_id, key),) = self.keys.create(1).items()
        now = self.clock()
        item = EvidenceItem(secrets.token_hex(16), kind, key_id, now.isoformat(), (now + self.retention).isoformat())
        self._write(item, seal(key, data, item.evidence_id.encode()))
        return item

    def link(self, evidence_id: str, seq: int) -> EvidenceItem:
        """Name the audit record ``seq`` the item is evidence for."""
        item = replace(self._item(evidence_id), seq=seq)
        self._write(item, None)
        return item

    def _write(self, item: EvidenceItem, sealed: bytes | None) -> None:
        meta = {**item.to_dict(), "key_id": item.key_id}
        if self.folder is None:
            self._memory[item.evidence_id] = (item, sealed if sealed is not None else self._memory[item.evidence_id][1])
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if sealed is not None:
            _write_private(self.folder / f"{item.evidence_id}.sealed", sealed)
        _write_private(self.folder / f"{item.evidence_id}.json", json.dumps(meta).encode())

    # -- reading ---------------------------------------------------------------------------------

    def items(self) -> list[EvidenceItem]:
        """Every item kept, oldest first."""
        if self.folder is None:
            found = [i for i, _ in self._memory.values()]
        elif not self.folder.is_dir():
            found = []
        else:
            found = [self._item(p.stem) for p in self.folder.glob("*.json")]
        return sorted(found, key=lambda i: i.kept_at)

    def _item(self, evidence_id: str) -> EvidenceItem:
        if self.folder is None:
            if evidence_id not in self._memory:
                raise KeyError(evidence_id)
            return self._memory[evidence_id][0]
        path = self.folder / f"{evidence_id}.json"
        if not path.is_file():
            raise KeyError(evidence_id)
        meta = json.loads(path.read_text())
        return EvidenceItem(meta["evidence_id"], meta["kind"], meta["key_id"], meta["kept_at"], meta["expires_at"],
                            meta["seq"])

    def read(self, session: AuditSession, evidence_id: str) -> bytes:
        """Open an item for a reviewer or an auditor.

        Raises
        ------
        NotAuthenticated, Forbidden
            Refused (and recorded): the account may not read the log's evidence.
        KeyError
            No such item (never kept, or destroyed).
        """
        session.check("review", {"evidence_id": evidence_id, "what": "read evidence"}, permission="read_log")
        item = self._item(evidence_id)
        held = self._key(item.key_id)
        if held is None:
            raise KeyError(evidence_id)
        key = held[1]
        sealed = (self._memory[evidence_id][1] if self.folder is None
                  else (self.folder / f"{evidence_id}.sealed").read_bytes())
        return unseal(AESGCM(key), sealed, evidence_id.encode())

    # -- destroying ------------------------------------------------------------------------------

    def _key(self, key_id: str) -> tuple[KeyStore, bytes] | None:
        """Return an item's key and the store holding it: the evidence keys', or the database's (items kept before)."""
        for store in (self.keys, self.database_keys):
            key = store.get_many([key_id]).get(key_id)
            if key is not None:
                return store, key
        return None

    def destroy(self, evidence_id: str) -> bool:
        """Destroy an item: its key first, then its files; return whether it existed."""
        try:
            item = self._item(evidence_id)
        except KeyError:
            return False
        held = self._key(item.key_id)
        if held is not None:  # (none: destroyed already, by a run that stopped before the files went)
            held[0].destroy([item.key_id])
        if self.folder is None:
            del self._memory[evidence_id]
        else:
            (self.folder / f"{evidence_id}.sealed").unlink(missing_ok=True)
            (self.folder / f"{evidence_id}.json").unlink(missing_ok=True)
        return True

    def due(self, log: AuditLog) -> list[tuple[EvidenceItem, str]]:
        """Items to destroy now and why: ``retention_expired`` or ``review_ended``."""
        now = self.clock()
        out = []
        for item in self.items():
            if datetime.fromisoformat(item.expires_at) <= now:
                out.append((item, "retention_expired"))
            elif item.seq is not None and log.match_status(item.seq).candidates and not any(
                    c.status == "pending" for c in log.match_status(item.seq).candidates):
                out.append((item, "review_ended"))
        return out

    def purge_due(self, session: AuditSession, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Destroy every item due (recorded, one ``evidence`` record per run); ``dry_run`` only lists them.

        Raises
        ------
        NotAuthenticated, Forbidden
            Refused (and recorded): the account may not run integrity work (auditors, admins).
        """
        session.check("evidence", {"dry_run": dry_run})
        due = [{**item.to_dict(), "reason": why} for item, why in self.due(session.log)]
        if dry_run or not due:
            return due

        def call() -> list[dict[str, Any]]:
            for d in due:
                self.destroy(d["evidence_id"])
            return due

        session.run("evidence", call, lambda done: {"details": {"destroyed": done}},
                    lambda _: {"details": {"due": due}})
        return due


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
