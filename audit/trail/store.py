"""Storage of the audit trail: its only SQL (DuckDB via :class:`core.storage.connection.Database`).

Two tables (created by :mod:`core.storage.schema`), append-only by construction:
this module contains no statement that changes or removes a row.

``audit_log(seq, prev_hash, entry_hash, record)``
    ``record`` holds the canonical encoding verbatim (BLOB); filters read it with
    DuckDB's JSON functions, so there is no second copy of any field to tamper with.
``audit_checkpoint_chain(seq, head_hash, merkle_root, created_at, key_id, signature, frontier, prev)``
    One :class:`~audit.trail.chain.Checkpoint` per row, plus ``frontier``: the
    Merkle subtree roots at ``seq`` (:class:`~audit.trail.chain.MerkleFrontier`), so
    that the next checkpoint costs O(records since). The frontier is a cache that
    verification never trusts: it recomputes the tree.

:meth:`AuditStore.scan` reads the log for verification as Arrow batches (DuckDB's
fastest way out) and hands them on as plain :class:`~audit.trail.chain.RowBatch`
columns, so the verifier never sees Arrow. Another database can replace DuckDB by
reimplementing this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from audit.errors import SeqTaken
from audit.trail.chain import Checkpoint, MerkleFrontier, RowBatch
from core.storage.connection import Database

__all__ = ["AuditFilter", "AuditStore", "StoreRow", "StoreWriter"]

_ROW = "SELECT seq, prev_hash, entry_hash, record FROM audit_log"
_CP = "SELECT seq, head_hash, merkle_root, created_at, key_id, signature, prev, frontier FROM audit_checkpoint_chain"


@dataclass(frozen=True)
class StoreRow:
    """One stored log row, as stored (not yet decoded or checked)."""

    seq: int
    prev_hash: bytes
    entry_hash: bytes
    canonical: bytes


@dataclass(frozen=True)
class AuditFilter:
    """Selection of records; every given field must match (None = any).

    ``since`` and ``until`` are UTC ISO strings compared with ``started_at``
    (``since`` inclusive, ``until`` exclusive; a date like ``2026-01-31`` works).
    """

    operator: str | None = None
    case_ref: str | None = None
    gallery: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None
    target_seq: int | None = None
    after_seq: int | None = None
    """Only records with a larger seq (cheap: prunes storage blocks before any JSON is read)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the filter as a dict of the fields that are set."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _row(t: tuple[Any, ...]) -> StoreRow:
    return StoreRow(int(t[0]), bytes(t[1]), bytes(t[2]), bytes(t[3]))


def _checkpoint(t: tuple[Any, ...]) -> Checkpoint:
    return Checkpoint(int(t[0]), bytes(t[1]), bytes(t[2]), str(t[3]), str(t[4]), bytes(t[5]), bytes(t[6]))


class StoreWriter:
    """Operations inside one write transaction (see :meth:`AuditStore.writing`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def head(self) -> tuple[int, bytes] | None:
        """Return ``(seq, entry_hash)`` of the last record, or None for an empty log."""
        row = self._con.execute(
            "SELECT seq, entry_hash FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def insert(self, seq: int, prev_hash: bytes, entry_hash: bytes, canonical: bytes) -> None:
        """Append one record row.

        Raises
        ------
        SeqTaken
            If a record with ``seq`` exists (the transaction must be rolled back).
        """
        try:
            self._con.execute(
                "INSERT INTO audit_log VALUES (?, ?, ?, ?)", [seq, prev_hash, entry_hash, canonical]
            )
        except duckdb.ConstraintException as err:
            raise SeqTaken(f"audit record seq {seq} already exists") from err

    def last_checkpoint(self) -> tuple[Checkpoint, MerkleFrontier] | None:
        """Return the checkpoint with the highest seq and its stored frontier, or None."""
        row = self._con.execute(_CP + " ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        cp = _checkpoint(row)
        return cp, MerkleFrontier.from_bytes(cp.seq, bytes(row[7]))

    def hashes(self, start: int, end: int) -> list[bytes]:
        """Return the stored entry hashes of records ``start..end`` (inclusive), in seq order."""
        rows = self._con.execute(
            "SELECT entry_hash FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq", [start, end]
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def insert_checkpoint(self, cp: Checkpoint, frontier: MerkleFrontier) -> None:
        """Append one checkpoint row with the Merkle frontier at its seq."""
        self._con.execute(
            "INSERT INTO audit_checkpoint_chain (seq, head_hash, merkle_root, created_at, key_id, signature, "
            "frontier, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [cp.seq, cp.head_hash, cp.merkle_root, cp.created_at, cp.key_id, cp.signature, frontier.to_bytes(),
             cp.prev],
        )


class AuditStore:
    """The audit tables of one :class:`core.storage.connection.Database`.

    Parameters
    ----------
    db
        The database; connections are leased per unit of work.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextlib.contextmanager
    def writing(self, transaction: bool = True) -> Iterator[StoreWriter]:
        """Yield a :class:`StoreWriter` for one unit of work.

        With ``transaction`` (the default) the block is one transaction, committed at its
        end; without, each statement commits by itself (for a single insert, one
        statement is atomic and saves the BEGIN/COMMIT round trips).
        """
        with self.db.connect(transaction=transaction) as con:
            yield StoreWriter(con)

    def head(self) -> tuple[int, bytes] | None:
        """Return ``(seq, entry_hash)`` of the last record, or None."""
        with self.db.connect() as con:
            return StoreWriter(con).head()

    def size(self) -> int:
        """Return the number of stored records."""
        with self.db.connect() as con:
            row = con.execute("SELECT count(*) FROM audit_log").fetchone()
        return int(row[0]) if row else 0

    def get(self, seq: int) -> StoreRow | None:
        """Return the row with this seq (the first one, should there be several), or None."""
        with self.db.connect() as con:
            row = con.execute(_ROW + " WHERE seq = ? LIMIT 1", [seq]).fetchone()
        return None if row is None else _row(row)

    def select(self, filters: AuditFilter, limit: int | None = None) -> list[StoreRow]:
        """Return rows matching ``filters``, in seq order (filters read the canonical JSON)."""
        clauses: list[str] = []
        params: list[Any] = []
        text = "decode(record)"
        for name, field in (("operator", "operator"), ("case_ref", "case_ref"), ("action", "action")):
            value = getattr(filters, name)
            if value is not None:
                clauses.append(f"json_extract_string({text}, '$.{field}') = ?")
                params.append(value)
        if filters.gallery is not None:
            clauses.append(f"json_extract_string({text}, '$.gallery.name') = ?")
            params.append(filters.gallery)
        if filters.since is not None:
            clauses.append(f"json_extract_string({text}, '$.started_at') >= ?")
            params.append(filters.since)
        if filters.until is not None:
            clauses.append(f"json_extract_string({text}, '$.started_at') < ?")
            params.append(filters.until)
        if filters.after_seq is not None:
            clauses.insert(0, "seq > ?")
            params.insert(0, filters.after_seq)
        if filters.target_seq is not None:
            clauses.append(f"CAST(json_extract({text}, '$.target_seq') AS BIGINT) = ?")
            params.append(filters.target_seq)
        sql = _ROW + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.db.connect() as con:
            rows = con.execute(sql, params).fetchall()
        return [_row(r) for r in rows]

    def scan(self, batch_size: int = 100_000, ordered: bool = True) -> Generator[RowBatch, None, None]:
        """Yield the whole log as :class:`~audit.trail.chain.RowBatch` es, in seq order.

        With ``ordered=False`` rows come in storage (insertion) order, which for an
        untouched log is seq order, without the cost of a sort; the verifier checks the
        order itself. The scan holds one connection until the generator is exhausted
        or closed.
        """
        with self.db.connect() as con:
            reader = con.sql(_ROW + (" ORDER BY seq" if ordered else "")).to_arrow_reader(batch_size)
            for batch in reader:
                # Arrow -> Python lists of int / bytes in C, about a fifth of the hashing cost
                seqs, prevs, hashes, records = (batch.column(i).to_pylist() for i in range(4))
                yield RowBatch(seqs, prevs, hashes, records)

    def hashes(self, start: int, end: int) -> list[bytes]:
        """Return the stored entry hashes of records ``start..end`` (inclusive), in seq order."""
        with self.db.connect() as con:
            return StoreWriter(con).hashes(start, end)

    def checkpoints(self) -> list[Checkpoint]:
        """Return all stored checkpoints in seq order."""
        with self.db.connect() as con:
            rows = con.execute(_CP + " ORDER BY seq, created_at").fetchall()
        return [_checkpoint(r) for r in rows]
