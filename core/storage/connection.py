"""The one way facetrail opens its DuckDB database.

DuckDB lets one process hold a file open for writing, and while it does, no other
process can open that file at all. Opening a file costs about 25 ms here, and a
committed insert on an open connection about 1 ms, so facetrail leases the
connection: :meth:`Database.connect` reuses an open connection while work keeps
coming, closes it after ``idle_release`` seconds without work, and gives it up
for a moment after holding it ``max_hold`` seconds so that another process (the
dashboard beside a CLI batch, say) gets its turn. When another process holds the
lock, opening is retried with bounded back-off; only after ``lock_timeout``
seconds does the caller see :class:`DatabaseBusy`, an error that names the file.

``":memory:"`` databases (tests, throw-away runs) keep one connection for the
life of the :class:`Database`, shared by threads through cursors under a lock.

Because no other process can open the file while this one holds it, what this
process read stays what the file holds until the connection is given up, except for
its own writes. :meth:`Database.lease_generation` numbers the leases (it changes
whenever the connection was opened again), so a reader can keep what it read for as
long as the number is unchanged and it has seen this process's own writes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import duckdb

from core.settings import Settings
from core.storage.errors import DatabaseBusy, StorageError
from core.storage.files import overwrite_with_zeros
from core.storage.schema import migrate

__all__ = ["Database", "default_db_path"]

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file")

#: Every open Database, so that interpreter exit can stop their reaper threads first.
_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()
#: Every :class:`Database`'s reaper thread (:meth:`Database._reap`), for :func:`is_reaper`.
_REAPERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def is_reaper(thread: threading.Thread) -> bool:
    """Whether ``thread`` is a :class:`Database`'s reaper, which lets go of an idle file connection.

    It runs only :meth:`Database._reap` (this module's lock, DuckDB's ``close``), never OpenSSL or
    other code a forked child uses, so a child forked while it runs inherits no lock it needs
    (:func:`core.gallery._may_fork`).
    """
    return thread in _REAPERS


@atexit.register
def _close_all() -> None:
    """Stop reapers and close connections before the interpreter finalises.

    A daemon thread still inside DuckDB's C++ code when Python finalises is
    unwound by force, which aborts the process ("terminate called after throwing").
    """
    for db in list(_OPEN):
        db.close()


def default_db_path() -> str:
    """Return the database path: ``$FACETRAIL_DB`` if set, else ``data/facetrail.duckdb``."""
    return Settings.from_env().db


def _is_lock_error(err: BaseException) -> bool:
    text = str(err)
    return any(marker in text for marker in _LOCK_MARKERS)


class Database:
    """A DuckDB database opened per unit of work.

    Parameters
    ----------
    path
        A file path, or ``":memory:"``. The parent folder of a file is created.
    lock_timeout
        Seconds to keep retrying while another process holds the file lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = 30.0,
        idle_release: float = 0.25,
        max_hold: float = 1.0,
    ) -> None:
        raw = str(path) if path is not None else default_db_path()
        self.path = raw
        self.in_memory = raw == ":memory:"
        self.lock_timeout = lock_timeout
        self.idle_release = idle_release
        self.max_hold = max_hold
        self._mutex = threading.RLock()
        self._shared: duckdb.DuckDBPyConnection | None = None
        self._opened_at = 0.0
        self._last_used = 0.0
        self._depth = 0
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        self.schema_version: int | None = None
        self._tx: duckdb.DuckDBPyConnection | None = None
        self._tx_owner = 0
        self._generation = 0
        if self.in_memory:
            self._shared = duckdb.connect(":memory:")
        else:
            try:
                Path(raw).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StorageError(f"cannot create the folder for database {raw!r}: {err}") from err

    def __repr__(self) -> str:
        return f"Database({self.path!r})"

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return duckdb.connect(str(Path(self.path).expanduser()), read_only=read_only)
            except duckdb.Error as err:
                if not _is_lock_error(err):
                    raise StorageError(f"cannot open database {self.path!r}: {err}") from err
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(
                        f"database {self.path!r} is held by another process and stayed locked for "
                        f"{self.lock_timeout:.0f} s; try again when that process is done"
                    ) from err
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.05)

    def _lease(self) -> duckdb.DuckDBPyConnection:
        """Return the open file connection, opening or cycling it as needed (mutex held)."""
        now = time.monotonic()
        if self._shared is not None and self._depth == 0 and now - self._opened_at > self.max_hold:
            self._release()
            time.sleep(0.05)  # a waiting process polls at most every 50 ms: let it in
        if self._shared is None:
            self._shared = self._open(read_only=False)
            self._generation += 1
            self._opened_at = time.monotonic()
            if self._reaper is None or not self._reaper.is_alive():
                self._stop.clear()
                self._reaper = threading.Thread(target=self._reap, name="facetrail-db-reaper", daemon=True)
                _REAPERS.add(self._reaper)
                self._reaper.start()
                _OPEN.add(self)
        return self._shared

    def _release(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def _reap(self) -> None:
        """Close the file connection once it has been idle for ``idle_release`` seconds."""
        while not self._stop.wait(self.idle_release / 2):
            with self._mutex:
                if self._shared is None:
                    return
                if self._depth == 0 and time.monotonic() - self._last_used >= self.idle_release:
                    self._release()
                    return

    @contextlib.contextmanager
    def connect(self, *, transaction: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection for one unit of work.

        With ``transaction=True`` the work is committed when the block ends and
        rolled back if it raises. Threads of one process take turns (the block
        holds a process-wide lock), which also keeps multi-statement work atomic.

        Units of work nest: inside a transaction, every further ``connect`` of the
        same thread joins it (same connection, committed or rolled back with the
        outer block). That is how a gallery change and its audit record commit
        together or not at all.
        """
        with self._mutex:
            if self._tx is not None:  # this thread holds the mutex, so the open transaction is its own
                yield self._tx
                return
            shared = self._shared if self.in_memory else self._lease()
            assert shared is not None
            if self.schema_version is None:
                self._migrate(shared)
            con = shared.cursor()
            self._depth += 1
            try:
                if transaction:
                    con.begin()
                    self._tx, self._tx_owner = con, threading.get_ident()
                    try:
                        yield con
                    except BaseException:
                        self._tx = None
                        con.rollback()
                        raise
                    self._tx = None
                    con.commit()
                else:
                    yield con
            finally:
                self._tx = None
                con.close()
                self._depth -= 1
                self._last_used = time.monotonic()

    def lease_generation(self) -> int:
        """Return the number of the connection held now (opening it if needed); it changes at every reopening.

        While the number is unchanged since a read, this process held the file all along, so
        no other process can have written it in between (DuckDB lets no other process open a
        file one holds): only this process's own writes can have changed it. An in-memory
        database is never reopened (0).
        """
        if self.in_memory:
            return 0
        with self._mutex:
            if self._tx is None:  # (a transaction holds the connection already)
                self._lease()
                self._last_used = time.monotonic()
            return self._generation

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside a :meth:`connect` transaction of this database."""
        return self._tx is not None and self._tx_owner == threading.get_ident()

    def _migrate(self, shared: duckdb.DuckDBPyConnection) -> None:
        """Bring the file to the current schema, once per :class:`Database` (mutex held)."""
        con = shared.cursor()
        try:
            con.begin()
            try:
                self.schema_version = migrate(con, repr(self.path))
            except BaseException:
                con.rollback()
                raise
            con.commit()
        except duckdb.Error as err:
            raise StorageError(f"cannot prepare database {self.path!r}: {err}") from err
        finally:
            con.close()

    def rewrite(self, *, drop_mark: str | None = None) -> bool:
        """Rewrite the whole file as a fresh copy of its tables, renamed over it; return whether it was rewritten.

        DuckDB leaves the bytes of deleted or updated rows in free blocks of the file; a copy
        holds only the live rows. The copy (``COPY FROM DATABASE`` into a new file beside it,
        ``fsync``-ed) is atomically renamed over the file, the folder is ``fsync``-ed and the old
        file's bytes are overwritten with zeros through a descriptor held across the rename
        (as the key store does): a crash leaves the old file or the new one, never a torn one.
        ``drop_mark``: the ``database_marks`` entry asking for the rewrite, deleted in the copy
        only (so a rewrite cut short is asked for again).

        Not done (``False``; the mark stays, so it is retried) while another :class:`Database` of
        this process has the same file open: DuckDB shares one instance per file within a
        process, and that connection would go on writing to the replaced file. Another process
        holding the file makes the open wait as usual (:class:`DatabaseBusy` at the timeout).
        """
        if self.in_memory:
            if drop_mark is not None:
                with self.connect() as con:
                    con.execute("DELETE FROM database_marks WHERE name = ?", [drop_mark])
            return True
        path = Path(self.path).expanduser().resolve()
        with self._mutex:
            if self._tx is not None:
                raise StorageError(f"cannot rewrite {self.path!r} inside a transaction")
            if self._others_open(path):
                return False
            self._release()
            tmp = path.with_name(f".{path.name}.{os.getpid()}.rewrite")
            tmp.unlink(missing_ok=True)
            con = self._open(read_only=False)
            try:
                con.execute("CHECKPOINT")
                source = con.execute("SELECT current_database()").fetchall()[0][0]
                con.execute("ATTACH '{}' AS facetrail_fresh".format(str(tmp).replace("'", "''")))
                con.execute(f'COPY FROM DATABASE "{source}" TO facetrail_fresh')
                if drop_mark is not None:
                    con.execute("DELETE FROM facetrail_fresh.database_marks WHERE name = ?", [drop_mark])
                con.execute("DETACH facetrail_fresh")
            except duckdb.Error as err:
                tmp.unlink(missing_ok=True)
                raise StorageError(f"cannot rewrite database {self.path!r}: {err}") from err
            finally:
                con.close()
            if self._others_open(path):
                tmp.unlink(missing_ok=True)
                return False
            _replace_zeroing(tmp, path)
            return True

    def _others_open(self, path: Path) -> bool:
        """Whether another :class:`Database` of this process holds ``path`` open."""
        return any(db is not self and db._shared is not None and not db.in_memory
                   and Path(db.path).expanduser().resolve() == path for db in list(_OPEN))

    def close(self) -> None:
        """Close the open connection (file or in-memory); a file database reopens on next use."""
        self._stop.set()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join()
        with self._mutex:
            self._release()


def _replace_zeroing(fresh: Path, path: Path) -> None:
    """Rename ``fresh`` over ``path`` (both synced), then overwrite the replaced file's bytes with zeros."""
    try:
        fd = os.open(fresh, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        old_fd = os.open(path, os.O_RDWR)
        try:
            os.replace(fresh, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            overwrite_with_zeros(old_fd)
        finally:
            os.close(old_fd)
    except OSError as err:
        raise StorageError(f"cannot replace database {str(path)!r} with its rewritten copy: {err}") from err
