"""Storage of the audit trail: its only SQL (DuckDB via :class:`core.storage.connection.Database`).

Tables (created by :mod:`core.storage.schema`), append-only by construction:
this module contains no statement that changes or removes a row.

``audit_log(seq, prev_hash, entry_hash, record, note, frontier, subtrees)``
    ``record`` holds the canonical encoding verbatim (BLOB); filters read it with
    DuckDB's JSON functions, so there is no second copy of any field to tamper with.
    ``note`` (schema version 4) is the signed checkpoint of the tree of records
    ``1..seq``, written in the same statement as the record (so no record is ever
    stored unsigned); ``frontier`` holds, every :data:`FRONTIER_EVERY` records, the
    Merkle subtree roots at ``seq`` (:class:`~audit.trail.chain.MerkleFrontier`), so a
    new process signs the next root without rehashing the log. The frontier is a cache
    that is checked against a signed root before it is used, and that verification
    never reads. ``subtrees`` (schema version 7) holds the roots of the perfect subtrees the
    record's leaf completes, so proofs read O(log n) hashes (:meth:`AuditStore.subtree_hashes`).
``audit_log_meta(name, value)``
    The log's id (its origin is ``facetrail.example/<id>``), written once.
``audit_log_keys(vkey, from_size, added_at, statement)``
    Every public key that signed the log (verifier-key strings), from which tree size.
``audit_cosignatures(size, witness, signature, received_at)``
    Witnesses' cosignature lines of the checkpoint at ``size``.
``audit_checkpoint_chain``
    Checkpoints of schema versions 1-3 (before every record was signed); kept, not written.

:meth:`AuditStore.scan` reads the log for verification as Arrow batches (DuckDB's
fastest way out) and hands them on as plain :class:`~audit.trail.chain.RowBatch`
columns, so the verifier never sees Arrow. Another database can replace DuckDB by
reimplementing this module.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audit.errors import SeqTaken
from audit.trail.chain import Checkpoint, MerkleFrontier, PackedBatch, RowBatch
from core.errors import BadInput
from core.storage.connection import Database

__all__ = ["FRONTIER_EVERY", "AuditFilter", "AuditStore", "RecordFacts", "StoreRow", "StoreWriter"]

#: The Merkle frontier is stored with every this many records.
FRONTIER_EVERY = 1024
#: Rows per batch of the verifier's read (:meth:`AuditStore.scan_packed`).
SCAN_BATCH = 100_000

_ROW = "SELECT seq, prev_hash, entry_hash, record FROM audit_log"
# one JSON parse per record, in C: not UTF-8, not JSON, or not carrying its own seq (json_extract fails on bad JSON)
_UNDECODABLE = (
    "SELECT min(seq) FROM audit_log WHERE seq BETWEEN ? AND ? AND NOT coalesce("
    "try(json_extract(try(decode(record)), '$.seq')::BIGINT) = seq, false)"
)
# the verifier's read: the RFC 6962 leaf input of each row
_PACKED = "SELECT seq, prev_hash, entry_hash, '\\x00'::BLOB || prev_hash || record AS leaf FROM audit_log"
# ... and beside it, in DuckDB's own threads, the decode check of _UNDECODABLE over every row
_FIRST_UNDECODABLE = (
    "SELECT min(seq) FROM audit_log WHERE NOT coalesce("
    "try(json_extract(try(decode(record)), '$.seq')::BIGINT) = seq, false)"
)
_FEW_ROWS = 1000  # tail_of_action: up to this many new rows are read whole
_CP = "SELECT seq, head_hash, merkle_root, created_at, key_id, signature, prev, frontier FROM audit_checkpoint_chain"


@dataclass(frozen=True)
class StoreRow:
    """One stored log row, as stored (not yet decoded or checked)."""

    seq: int
    prev_hash: bytes
    entry_hash: bytes
    canonical: bytes


@dataclass(frozen=True)
class RecordFacts:
    """What a search filters on of one stored record, read in SQL without decoding it (none of it is sealed).

    Taken as stored: a reader that opens the record still checks it (:meth:`AuditLog.get`).
    A record never changes once stored, so neither do its facts.
    """

    seq: int
    action: str | None
    outcome: str | None
    operator: str | None
    reviewer: str | None
    target_seq: int | None
    policy: str | None
    """``details.threshold_policy.status``."""
    threshold: str | None
    """``details.threshold`` as its JSON text (records keep floats as decimal strings)."""
    candidates: int
    """How many candidates the record lists."""
    gallery: str | None = None
    """``gallery.name``."""
    case_ref: str | None = None
    started_at: str | None = None
    probe_group: str | None = None
    """``details.probe_group``: the probe's group as the operator stated it (:mod:`audit.probe_group`)."""


#: The JSON paths of :class:`RecordFacts`' fields after ``seq`` (``candidates``: the array, counted after).
_FACT_PATHS = ("$.action", "$.outcome", "$.operator", "$.reviewer", "$.target_seq", "$.details.threshold_policy.status",
               "$.details.threshold", "$.candidates", "$.gallery.name", "$.case_ref", "$.started_at",
               "$.details.probe_group")
# one parse of each record (DuckDB reads a list of paths in one pass over the text), the candidates counted
# from their own short array
_FACTS = ("SELECT seq, x[1], x[2], x[3], x[4], x[5], x[6], x[7], CASE WHEN x[8] IS NULL OR x[8] = '[]' THEN 0 "
          "ELSE json_array_length(x[8]) END, x[9], x[10], x[11], x[12] FROM (SELECT seq, json_extract_string(decode(record), "
          "[" + ", ".join(f"'{p}'" for p in _FACT_PATHS) + "]) AS x FROM audit_log{where})")


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

    def problem(self) -> str | None:
        """Return what makes this filter unusable (``since``/``until`` not ISO times or out of order), or None.

        A text like ``last week`` would otherwise compare as a string and select nothing, silently.
        """
        bounds: dict[str, datetime] = {}
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                bounds[name] = _as_utc(datetime.fromisoformat(value))
            except (TypeError, ValueError):
                return f"{name}: {str(value)[:40]!r} is not a UTC date or time (use YYYY-MM-DD or an ISO time)"
        if len(bounds) == 2 and bounds["since"] >= bounds["until"]:
            return f"since {self.since} is not before until {self.until}: no record can match"
        return None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _where(filters: AuditFilter) -> tuple[str, list[Any]]:
    """Return the ``WHERE`` clause (empty when nothing is filtered) and its parameters of ``filters``.

    Raises
    ------
    BadInput
        ``since`` or ``until`` is unusable (:meth:`AuditFilter.problem`).
    """
    problem = filters.problem()
    if problem is not None:
        raise BadInput(problem)
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
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _whole(text: str | None) -> int | None:
    """Return a JSON whole number's text as an int (None for none, or for anything else, as the SQL cast filters)."""
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _row(t: tuple[Any, ...]) -> StoreRow:
    return StoreRow(int(t[0]), bytes(t[1]), bytes(t[2]), bytes(t[3]))


def _hash_column(column: pa.Array) -> bytes | None:
    """Return a binary column of 32-byte values as one buffer (no copy per value), or None if one is not."""
    if column.null_count or len(column) == 0:
        return None
    lengths = pc.binary_length(column)
    if pc.min(lengths).as_py() != 32 or pc.max(lengths).as_py() != 32:
        return None
    if not pa.types.is_fixed_size_binary(column.type):
        column = column.cast(pa.binary(32))
    data = column.buffers()[1]
    return bytes(data.slice(column.offset * 32, len(column) * 32).to_pybytes())


def _packed(batch: pa.RecordBatch) -> RowBatch | PackedBatch:
    """Turn one Arrow batch of :data:`_PACKED` into what the verifier reads (see :meth:`AuditStore.scan_packed`)."""
    seqs, prevs, hashes, leaves = (batch.column(i) for i in range(4))
    prev_buf, hash_buf = _hash_column(prevs), _hash_column(hashes)
    if prev_buf is None or hash_buf is None or seqs.null_count or leaves.null_count:
        # a NULL record reads as empty bytes: its hash does not match, and the walk names it
        records: list[bytes] = [b"" if r is None or p is None else r[1 + len(p):]
                                for p, r in zip(prevs.to_pylist(), leaves.to_pylist(), strict=True)]
        return RowBatch(seqs.to_pylist(), prevs.to_pylist(), hashes.to_pylist(), records)
    # Arrow -> Python bytes in C: cheaper than a memoryview per value, and hashlib reads bytes fastest
    return PackedBatch(seqs.to_numpy().astype(np.int64).tobytes(), prev_buf, hash_buf, leaves.to_pylist())


def _first_undecodable(con: duckdb.DuckDBPyConnection) -> int | None:
    """Run the decode check of every row on ``con`` (a connection of its own); the first failing seq, or None."""
    row = con.execute(_FIRST_UNDECODABLE).fetchone()
    return None if row is None or row[0] is None else int(row[0])


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

    def insert(
        self, seq: int, prev_hash: bytes, entry_hash: bytes, canonical: bytes, note: str | None = None,
        frontier: bytes | None = None, subtrees: bytes | None = None,
    ) -> None:
        """Append one record row with the signed note of the tree it ends (and, at times, the frontier).

        ``subtrees``: the roots of the perfect subtrees the record's leaf completes
        (:meth:`~audit.trail.chain.MerkleFrontier.append_hash_subtrees`), read by
        :meth:`AuditStore.subtree_hashes`.

        Raises
        ------
        SeqTaken
            If a record with ``seq`` exists (the transaction must be rolled back).
        """
        try:
            self._con.execute(
                "INSERT INTO audit_log (seq, prev_hash, entry_hash, record, note, frontier, subtrees) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [seq, prev_hash, entry_hash, canonical, note, frontier, subtrees],
            )
        except duckdb.ConstraintException as err:
            raise SeqTaken(f"audit record seq {seq} already exists") from err

    def latest_note(self) -> tuple[int, str] | None:
        """Return ``(seq, note)`` of the last record that has a signed note, or None."""
        # the last record's note, read by its seq (a point lookup); a search over the note column only
        # when the last record has none (a log made before signed notes, or a forged tail)
        row = self._con.execute(
            "SELECT seq, note FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log) AND note IS NOT NULL"
        ).fetchone() or self._con.execute(
            "SELECT seq, note FROM audit_log WHERE note IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def frontier_before(self, seq: int) -> tuple[int, bytes] | None:
        """Return ``(seq, frontier)`` of the last stored frontier at or before ``seq``, or None."""
        row = self._con.execute(
            "SELECT seq, frontier FROM audit_log WHERE frontier IS NOT NULL AND seq <= ? ORDER BY seq DESC LIMIT 1",
            [seq],
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def meta(self, name: str) -> str | None:
        """Return the log's stored fact ``name`` (e.g. ``log_id``), or None."""
        row = self._con.execute("SELECT value FROM audit_log_meta WHERE name = ?", [name]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        """Store fact ``name`` once (a second value for it is refused by the primary key)."""
        self._con.execute("INSERT INTO audit_log_meta (name, value) VALUES (?, ?)", [name, value])

    def insert_key(self, vkey: str, from_size: int, added_at: str, statement: str | None) -> None:
        """Record a public key that signs the log from tree size ``from_size`` on (once per key)."""
        self._con.execute(
            "INSERT INTO audit_log_keys (vkey, from_size, added_at, statement) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", [vkey, from_size, added_at, statement],
        )

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

    def field_key_last_use(self) -> list[tuple[str, str]]:
        """Return ``(key id, latest started_at)`` of every field key sealed tokens of the log name (audit.trail.sealed)."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT key_id, max(started_at) FROM (SELECT json_extract_string(decode(record), '$.started_at') "
                "AS started_at, unnest(regexp_extract_all(decode(record), "
                "'\"(?:[0-9]+:)?sealed\\.[sfit]\\.([0-9a-f]{32})\\.', 1)) AS key_id FROM audit_log) "
                "GROUP BY key_id ORDER BY key_id").fetchall()
        return [(str(k), str(t)) for k, t in rows]

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
        """Return rows matching ``filters``, in seq order (filters read the canonical JSON).

        Raises
        ------
        BadInput
            ``since`` or ``until`` is not an ISO date or time, or they are in the wrong order
            (:meth:`AuditFilter.problem`).
        """
        where, params = _where(filters)
        sql = _ROW + where + " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.db.connect() as con:
            rows = con.execute(sql, params).fetchall()
        return [_row(r) for r in rows]

    def rows(self, seqs: Sequence[int]) -> list[StoreRow]:
        """Return the rows with these seqs, in seq order (a seq with no row is left out)."""
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return []
        with self.db.connect() as con:
            rows = con.execute(_ROW + " WHERE seq IN (SELECT unnest(?::BIGINT[])) ORDER BY seq", [wanted]).fetchall()
        return [_row(r) for r in rows]

    def facts(self, filters: AuditFilter) -> list[RecordFacts]:
        """Return :class:`RecordFacts` of the rows matching ``filters``, in seq order: no record leaves DuckDB.

        Raises
        ------
        BadInput
            As :meth:`select`.
        """
        where, params = _where(filters)
        with self.db.connect() as con:
            rows = con.execute(_FACTS.format(where=where) + " ORDER BY seq", params).fetchall()
        return [RecordFacts(int(r[0]), r[1], r[2], r[3], r[4], _whole(r[5]), r[6], r[7], int(r[8]), r[9], r[10], r[11],
                            r[12]) for r in rows]

    def tail_of_action(self, from_seq: int, action: str) -> list[tuple[int, bytes, bytes | None]]:
        """Return ``(seq, entry_hash, record or None)`` of the rows from ``from_seq`` on, in seq order.

        The record is given only for rows whose action is ``action`` (records that decode are
        canonical JSON, so they hold ``"action":"<action>"`` verbatim). The row at ``from_seq``,
        every row of ``action`` and the last row are always among those returned (others
        may be left out). Rows before
        ``from_seq`` are skipped through DuckDB's zone maps, so a caller that keeps what it
        read and asks from the last seq it saw pays for the new rows only: a few are read
        whole and matched in Python (cheaper than parsing them in SQL), many are filtered
        in SQL.
        """
        marker = b'"action":' + json.dumps(action, ensure_ascii=False).encode()
        with self.db.connect() as con:
            if from_seq > 0:
                few = con.execute(
                    "SELECT seq, entry_hash, record FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?",
                    [int(from_seq), _FEW_ROWS + 1],
                ).fetchall()
                if len(few) <= _FEW_ROWS:
                    return [(int(r[0]), bytes(r[1]), bytes(r[2]) if marker in bytes(r[2]) else None) for r in few]
            rows = con.execute(  # only the rows the caller uses: the first, those of the action, the last
                "SELECT seq, entry_hash, r FROM (SELECT seq, entry_hash, CASE WHEN "
                "json_extract_string(decode(record), '$.action') = ? THEN record END AS r FROM audit_log "
                "WHERE seq >= ?) WHERE r IS NOT NULL OR seq = ? OR seq = (SELECT max(seq) FROM audit_log) "
                "ORDER BY seq",
                [action, int(from_seq), int(from_seq)],
            ).fetchall()
        return [(int(r[0]), bytes(r[1]), None if r[2] is None else bytes(r[2])) for r in rows]

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

    def scan_packed(
        self, batch_size: int | None = None, ordered: bool = True
    ) -> Generator[tuple[RowBatch | PackedBatch, int | None], None, None]:
        """Yield the whole log as ``(batch, None)`` pairs, the last as ``(batch, first undecodable seq or None)``.

        This is the verifier's read. DuckDB builds each row's leaf input
        (``0x00 || prev_hash || record``); the batch is handed on as a
        :class:`~audit.trail.chain.PackedBatch` (the hashes as whole buffers, no Python object
        per hash), or as a plain :class:`~audit.trail.chain.RowBatch` when a row is not of the
        stored form (a NULL, a hash that is not 32 bytes), so that the verifier's walk names
        it. Beside the read, on a second connection in a worker thread, DuckDB checks in C that
        every record is a JSON object carrying its own seq (as :meth:`first_undecodable`,
        over the whole table); the answer comes with the last batch, so the Python hashing and
        that parse run on two cores. A consumer that stops early (a fault) closes the
        generator: the check is interrupted and its thread joined. ``ordered`` as for :meth:`scan`.
        """
        # inside an open transaction a second connection would not see its rows: the check then runs after the read
        beside = not self.db.in_transaction
        with self.db.connect() as con:
            checker = con.cursor() if beside else None  # a connection of its own: its query runs beside the read
            pool = ThreadPoolExecutor(1, thread_name_prefix="facetrail-audit-decode")
            check = pool.submit(_first_undecodable, checker) if checker is not None else None
            try:
                reader = con.sql(_PACKED + (" ORDER BY seq" if ordered else "")).to_arrow_reader(
                    batch_size or SCAN_BATCH)
                held = None
                for batch in reader:
                    if held is not None:
                        yield _packed(held), None
                    held = batch
                reader.close()
                if held is not None:
                    yield _packed(held), check.result() if check is not None else _first_undecodable(con)
            finally:
                if checker is not None and check is not None and not check.done():
                    checker.interrupt()  # the consumer stopped early
                pool.shutdown(wait=True)
                if checker is not None:
                    checker.close()

    def hashes(self, start: int, end: int) -> list[bytes]:
        """Return the stored entry hashes of records ``start..end`` (inclusive), in seq order."""
        with self.db.connect() as con:
            return StoreWriter(con).hashes(start, end)

    def subtree_hashes(self, subtrees: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Return the stored hashes of perfect subtrees ``(start, 2**h)`` (0-based leaves), in one read.

        A leaf (``h = 0``) is the entry hash of record ``start + 1``; a larger subtree is
        stored with the record that completes it, ``start + 2**h`` (schema version 7). A
        subtree whose record has none stored (written before version 7) is left out. The
        hashes are not checked here: a proof made of them is checked against the signed roots
        (:meth:`audit.trail.log.AuditLog.prove_consistency`).
        """
        wanted = {(int(start), int(size)) for start, size in subtrees}
        seqs = sorted({start + size for start, size in wanted})
        if not seqs:
            return {}
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT seq, entry_hash, subtrees FROM audit_log WHERE seq IN (SELECT unnest(?::BIGINT[]))", [seqs]
            ).fetchall()
        by_seq = {int(r[0]): (bytes(r[1]), None if r[2] is None else bytes(r[2])) for r in rows}
        out: dict[tuple[int, int], bytes] = {}
        for start, size in wanted:
            found = by_seq.get(start + size)
            if found is None:
                continue
            level = size.bit_length() - 1
            if level == 0:
                out[(start, size)] = found[0]
            elif found[1] is not None and len(found[1]) >= 32 * level:
                out[(start, size)] = found[1][32 * (level - 1) : 32 * level]
        return out

    def latest_note(self) -> tuple[int, str] | None:
        """Return ``(seq, note)`` of the last record that has a signed note, or None."""
        with self.db.connect() as con:
            return StoreWriter(con).latest_note()

    def note(self, seq: int) -> str | None:
        """Return the signed note stored with record ``seq`` (None: no such record, or none stored)."""
        with self.db.connect() as con:
            row = con.execute("SELECT note FROM audit_log WHERE seq = ? LIMIT 1", [seq]).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def first_note_seq(self) -> int | None:
        """Return the smallest seq that has a signed note (records before it predate signed notes), or None."""
        with self.db.connect() as con:
            row = con.execute("SELECT min(seq) FROM audit_log WHERE note IS NOT NULL").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def notes(self, batch_size: int = 50_000) -> Generator[list[tuple[int, str | None]], None, None]:
        """Yield ``(seq, note)`` of every record in seq order, in batches (for checking every signature)."""
        with self.db.connect() as con:
            reader = con.sql("SELECT seq, note FROM audit_log ORDER BY seq").to_arrow_reader(batch_size)
            for batch in reader:
                yield list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))

    def first_undecodable(self, start: int, end: int) -> int | None:
        """Return the first seq in ``start..end`` whose bytes are not a JSON object of its seq (in SQL), or None."""
        with self.db.connect() as con:
            row = con.execute(_UNDECODABLE, [start, end]).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def meta(self, name: str) -> str | None:
        """Return the log's stored fact ``name``, or None."""
        with self.db.connect() as con:
            return StoreWriter(con).meta(name)

    def keys(self) -> list[tuple[str, int, str, str | None]]:
        """Return ``(vkey, from_size, added_at, statement)`` of every key that signed the log, oldest first."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT vkey, from_size, added_at, statement FROM audit_log_keys ORDER BY from_size, added_at"
            ).fetchall()
        return [(str(r[0]), int(r[1]), str(r[2]), None if r[3] is None else str(r[3])) for r in rows]

    def insert_cosignature(self, size: int, witness: str, signature: str, received_at: str) -> None:
        """Store a witness's cosignature line of the checkpoint at ``size`` (a repeat is ignored)."""
        with self.db.connect() as con:
            con.execute(
                "INSERT INTO audit_cosignatures (size, witness, signature, received_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", [size, witness, signature, received_at],
            )

    def cosignatures(self, size: int | None = None) -> list[tuple[int, str, str, str]]:
        """Return ``(size, witness, signature line, received_at)`` of stored cosignatures (of ``size`` only)."""
        sql = "SELECT size, witness, signature, received_at FROM audit_cosignatures"
        params: list[Any] = []
        if size is not None:
            sql += " WHERE size = ?"
            params.append(size)
        with self.db.connect() as con:
            rows = con.execute(sql + " ORDER BY size, witness, received_at", params).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        """Return all stored checkpoints in seq order."""
        with self.db.connect() as con:
            rows = con.execute(_CP + " ORDER BY seq, created_at").fetchall()
        return [_checkpoint(r) for r in rows]
