"""The sealed gallery's fast load: every row decrypted and checked, and crypto-shredding still holds.

The load looks every subject key up in one pass of the key store and decrypts the rows part by
part, key by key, with one AES-GCM set-up per key made for its rows and dropped after them
(:func:`core.keystore.unseal_into`); on a machine with an idle processor a forked child decrypts
a share of the parts at the same time (:func:`core.keystore.unseal_parallel`). These tests are
written from the attacker's side: rows altered, cut short or re-sealed with another shape must
fail the load with a message, in either process's share; a destroyed key must open nothing, in
this process or after another process erased the subject, even when the erased rows are put back
from a copy of the database; a load leaves no process and no file behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import core.gallery as gallery_module
from core import Database, Embedding, EnrollItem, Face, GalleryStore, ModelConfig, ThresholdSource
from core.cache import pack_sealed
from core.keystore import KeyStore, KeyStoreError, seal, unseal_many, unseal_parallel

FACE = Face(0, 0, 10, 10, 1.0, "dlib")
CONFIG = ModelConfig(model="Dlib", detector="dlib", alignment="dlib_5pt", threshold=0.3,
                     threshold_source=ThresholdSource(kind="user", description="test"),
                     weights_sha256=(("t.dat", "0" * 64),), versions=(("deepface", "test"),))
SUBJECTS = ["Zoë_Ångström", "a", "Jane_Roe_01", "李_小龍", "x" * 200]


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[GalleryStore, dict[str, tuple[str, bytes]]]:
    """Gallery ``g``: five subjects with one to three faces each, metadata of different lengths."""
    rng = np.random.default_rng(7)
    store = GalleryStore(Database(tmp_path / "g.duckdb"))
    store.create("g", CONFIG)
    items = [EnrollItem(s, Embedding(unit(rng), f"{i}{j}".ljust(64, "0"), FACE, 1, CONFIG), f"{i}_{j}.jpg",
                        {"note": "n" * (i * 37 + j)})
             for i, s in enumerate(SUBJECTS) for j in range(1 + i % 3)]
    store.enroll("g", items)
    by_face = {f["face_id"]: f for f in store.faces("g")}
    assert len(by_face) == len(items)
    vectors = {(it.subject_id, it.image_name): it.embedding.vector.tobytes() for it in items}
    expected = {fid: (f["subject_id"], vectors[(f["subject_id"], f["image_name"])]) for fid, f in by_face.items()}
    return store, expected


def loaded_rows(store: GalleryStore) -> dict[str, tuple[str, bytes]]:
    index = store.load("g").index
    matrix = index.matrix  # type: ignore[attr-defined]
    return {fid: (sid, matrix[i].tobytes())
            for i, (fid, sid) in enumerate(zip(index._face_ids, index._subject_ids, strict=True))}  # type: ignore[attr-defined]


def rows_of(store: GalleryStore, subject: str) -> list[tuple[object, ...]]:
    with store.db.connect() as con:
        return con.execute("SELECT * FROM gallery_faces WHERE subject_ref = ?",
                           [store.keys.ref("g", subject)]).fetchall()


def columns(store: GalleryStore) -> list[str]:
    with store.db.connect() as con:
        return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'gallery_faces' ORDER BY ordinal_position").fetchall()]


def put_back(store: GalleryStore, rows: list[tuple[object, ...]]) -> None:
    """Re-insert erased rows, as someone restoring them from yesterday's copy of the database file would."""
    cols = columns(store)
    with store.db.connect() as con:
        for r in rows:
            con.execute(f"INSERT INTO gallery_faces ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        list(r))


def test_every_row_loads_with_its_subject_and_vector(gallery) -> None:
    store, expected = gallery
    assert loaded_rows(store) == expected
    store._loaded.clear()  # a second load gives the same
    assert loaded_rows(store) == expected


def test_an_erased_subjects_restored_rows_do_not_open(gallery) -> None:
    store, expected = gallery
    victim = SUBJECTS[3]
    rows = rows_of(store, victim)
    key_id = str(rows[0][columns(store).index("key_id")])
    store.load("g")
    assert store.keys.lookup([key_id])[0] is not None  # the key exists before (so the test can fail)
    store.delete_subject("g", victim)
    assert store.keys.lookup([key_id]) == [None]
    assert victim not in {sid for sid, _ in loaded_rows(store).values()}
    put_back(store, rows)
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="1 subject key"):
        store.load("g")


def test_an_erasure_by_another_process_reaches_this_ones_load(gallery) -> None:
    store, _ = gallery
    victim = SUBJECTS[1]
    rows = rows_of(store, victim)
    key_id = str(rows[0][columns(store).index("key_id")])
    store.load("g")
    other = GalleryStore(store.db)
    other.keys = KeyStore(store.keys.path)  # its own key store object on the same file, as another process has
    other.delete_subject("g", victim)
    assert store.keys.lookup([key_id]) == [None]  # the file changed: re-read
    put_back(store, rows)
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="not in the key store"):
        store.load("g")


def test_an_uppercase_key_id_finds_its_key_until_it_is_destroyed(gallery) -> None:
    store, _ = gallery
    rows = rows_of(store, SUBJECTS[0])
    key_id = str(rows[0][columns(store).index("key_id")])
    assert store.keys.lookup([key_id.upper()])[0] is not None
    store.delete_subject("g", SUBJECTS[0])
    assert store.keys.lookup([key_id.upper()]) == [None]
    assert KeyStore(store.keys.path).lookup([key_id.upper(), key_id]) == [None, None]


@pytest.mark.parametrize("which", ["first", "last"])
def test_rows_naming_their_key_in_capitals_load_in_either_process_share(gallery, parallel, which: str) -> None:
    """Key ids not in the canonical form take the one-by-one lookup, also in the child (which looks its keys up)."""
    store, expected = gallery
    with store.db.connect() as con:
        fid = con.execute("SELECT face_id FROM gallery_faces").fetchall()[0 if which == "first" else -1][0]
        con.execute("UPDATE gallery_faces SET key_id = upper(key_id) WHERE face_id = ?", [fid])
    store._loaded.clear()
    assert loaded_rows(store) == expected
    assert no_children_left(parallel)


def test_a_key_id_that_is_not_hex_is_named(gallery) -> None:
    store, _ = gallery
    with pytest.raises(KeyStoreError, match="'zz' is not hexadecimal"):
        KeyStore(store.keys.path).lookup(["zz"])


def test_ids_sharing_their_first_eight_bytes_find_their_own_keys(tmp_path: Path) -> None:
    """The first load's sorted index is by 8-byte prefix: twins must not be mistaken for each other."""
    writer = KeyStore(tmp_path / "k.keys")
    twins = {"ab" * 8 + "00" * 8: b"\x01" * 32, "ab" * 8 + "ff" * 8: b"\x02" * 32, "cd" * 16: b"\x03" * 32}
    assert writer.add_linked([twins]) == [True]
    fresh = KeyStore(tmp_path / "k.keys")  # a new process: nothing read yet
    asked = ["ab" * 8 + "ff" * 8, "ab" * 8 + "00" * 8, "ab" * 8 + "11" * 8, "cd" * 16]
    assert fresh.lookup(asked) == [b"\x02" * 32, b"\x01" * 32, None, b"\x03" * 32]


def test_a_first_load_index_tells_present_from_absent_ids(tmp_path: Path) -> None:
    writer = KeyStore(tmp_path / "k.keys")
    made = writer.create(50)
    fresh = KeyStore(tmp_path / "k.keys")
    ids = list(made)
    absent = "0" * 32
    near = ids[0][:16] + ("0" if ids[0][16] != "0" else "1") + ids[0][17:]  # same first 8 bytes, another id
    assert fresh.lookup([*ids[::-1], absent, near]) == [made[i] for i in ids[::-1]] + [None, None]
    assert fresh.get_many([ids[3], absent]) == {ids[3]: made[ids[3]]}


def test_a_destroyed_key_is_not_kept_in_the_store_objects_memory(tmp_path: Path) -> None:
    path = tmp_path / "k.keys"
    made = KeyStore(path).create(5)
    store = KeyStore(path)
    doomed = next(iter(made))
    assert store.lookup([doomed]) == [made[doomed]]  # read through the first-load index
    store.destroy([doomed])
    assert store.lookup([doomed]) == [None]
    held = store._body + b"".join(store._keys.values()) + b"".join(store._keys)
    assert made[doomed] not in held and bytes.fromhex(doomed) not in held


def test_rows_of_one_key_apart_decrypt_in_place() -> None:
    """Rows whose keys interleave are decrypted key by key, each plaintext where its row is."""
    keys = [bytes([k]) * 32 for k in range(3)]
    which = np.array([2, 0, 1, 0, 2, 2, 1])
    plains = [bytes([i]) * (5 + 3 * i) for i in range(len(which))]
    aads = [f"row{i}".encode() for i in range(len(which))]
    sealed = [seal(keys[k], p, a) for k, p, a in zip(which, plains, aads, strict=True)]
    offsets = np.cumsum([0] + [len(x) for x in sealed])
    data = memoryview(b"".join(sealed))
    assert bytes(unseal_many(keys, which, data, offsets, aads)) == b"".join(plains)
    swapped = [aads[1], aads[0], *aads[2:]]  # a row moved to another place does not open there
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        unseal_many(keys, which, data, offsets, swapped)


def test_a_row_cut_short_fails_the_load(gallery) -> None:
    store, _ = gallery
    with store.db.connect() as con:
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = (SELECT min(face_id) FROM gallery_faces)",
                    [b"\x00" * 20])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="shorter than its nonce and tag"):
        store.load("g")


def test_a_flipped_bit_fails_the_load(gallery) -> None:
    store, _ = gallery
    with store.db.connect() as con:
        fid, sealed = con.execute("SELECT face_id, sealed FROM gallery_faces ORDER BY face_id DESC LIMIT 1").fetchone()
        flipped = bytearray(sealed)
        flipped[-30] ^= 1
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?", [bytes(flipped), fid])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        store.load("g")


@pytest.mark.parametrize("dims", [64, 129])
def test_a_row_resealed_with_the_key_but_another_shape_fails_the_load(gallery, dims: int) -> None:
    """Someone holding the key store re-seals a face with a vector of the wrong size: named, not loaded."""
    store, _ = gallery
    cols = columns(store)
    row = rows_of(store, SUBJECTS[2])[0]
    fid, key_id = row[cols.index("face_id")], str(row[cols.index("key_id")])
    key = store.keys.get_many([key_id])[key_id]
    plain = pack_sealed({"image_name": "x.jpg"}, np.ones(dims, np.float32), SUBJECTS[2])
    with store.db.connect() as con:
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?",
                    [seal(key, plain, f"facetrail-face\0g\0{fid}".encode()), fid])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="not a face of 128 dimensions"):
        store.load("g")


@pytest.mark.parametrize("wide", [False, True])
def test_rows_in_many_chunks_open_part_by_part_in_order(gallery, wide: bool) -> None:
    """The database hands rows over in chunks (several at 200,000 faces): each opens on its own, in row order."""
    store, expected = gallery
    with store.db.connect() as con:
        table = con.sql("SELECT face_id, key_id, sealed FROM gallery_faces ORDER BY face_id").to_arrow_table()
    if wide:
        table = table.set_column(2, "sealed", table.column("sealed").cast(pa.large_binary()))
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=3))
    parts = list(store._open_for_index("g", chunked, 128))
    assert len(parts) == -(-table.num_rows // 3) > 1
    got = {fid: (sid, vec.tobytes()) for fids, sids, matrix in parts
           for fid, sid, vec in zip(fids, sids, matrix, strict=True)}
    assert got == expected
    assert [f for fids, _, _ in parts for f in fids] == table.column("face_id").to_pylist()


def children() -> set[int]:
    """Return the pids of this process's children, running or exited and not yet reaped (zombies), from /proc.

    Read, never waited for: other tests' fixtures may have children of their own (a server, a browser) that a
    ``waitpid(-1)`` would count, or even reap.
    """
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process ended while /proc was listed
        if int(text.rsplit(")", 1)[1].split()[1]) == me:  # "pid (comm) state ppid ..."; comm may hold ")"
            found.add(int(text.split(" ", 1)[0]))
    return found


def no_children_left(before: set[int]) -> bool:
    """Whether this process has no child (running or unreaped) that it did not have ``before``."""
    return children() <= before


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Make even a small gallery's load decrypt in two processes, in parts of two rows; the children there before."""
    monkeypatch.setattr(gallery_module, "_PARALLEL_ROWS", 1)
    monkeypatch.setattr(gallery_module, "_PART_ROWS", 2)
    monkeypatch.setattr(gallery_module, "_may_fork", lambda: True)  # whatever threads earlier tests left
    monkeypatch.setattr(gallery_module, "_core_free", lambda: True)  # however busy the machine is
    return children()  # the tests' checks count only children made after this


def test_a_load_in_two_processes_gives_every_row_in_order_and_leaves_no_process_or_file(
    gallery, parallel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, expected = gallery
    before = {p: p.stat().st_size for p in tmp_path.rglob("*")}
    shm = set(Path("/dev/shm").iterdir()) if Path("/dev/shm").is_dir() else set()
    forks: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    store._loaded.clear()
    assert loaded_rows(store) == expected
    assert forks == [1]  # the child did decrypt (so the check above covers its rows)
    index = store.load("g").index
    with store.db.connect() as con:
        stored = [r[0] for r in con.execute("SELECT face_id FROM gallery_faces WHERE gallery = 'g'").fetchall()]
    assert index._face_ids == stored  # type: ignore[attr-defined]  # in the table's order, part after part
    assert no_children_left(parallel)
    assert {p: p.stat().st_size for p in tmp_path.rglob("*")} == before  # nothing written (no plaintext on disk)
    assert (set(Path("/dev/shm").iterdir()) if Path("/dev/shm").is_dir() else set()) == shm


@pytest.mark.parametrize("which", ["first", "last"])
def test_an_altered_row_in_either_process_share_fails_the_load_and_the_child_is_reaped(
    gallery, parallel, which: str
) -> None:
    """The first row is this process's share, the last the child's: either way the load is refused, nobody left."""
    store, _ = gallery
    with store.db.connect() as con:  # the load's first or last row (it reads them in the table's order)
        fid, sealed = con.execute("SELECT face_id, sealed FROM gallery_faces").fetchall()[0 if which == "first" else -1]
        flipped = bytearray(sealed)
        flipped[20] ^= 1
        con.execute("UPDATE gallery_faces SET sealed = ? WHERE face_id = ?", [bytes(flipped), fid])
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        store.load("g")
    assert no_children_left(parallel)


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_missing_key_in_either_process_share_is_named_and_the_child_is_reaped(gallery, parallel, which: str) -> None:
    """The child looks its own share's keys up: a key missing there is named as precisely as in this process's share."""
    store, _ = gallery
    with store.db.connect() as con:
        key_id = con.execute("SELECT key_id FROM gallery_faces").fetchall()[0 if which == "first" else -1][0]
    assert store.keys.destroy([key_id]) == 1
    store._loaded.clear()
    with pytest.raises(KeyStoreError, match=r"gallery 'g': 1 subject key\(s\) are not in the key store"):
        store.load("g")
    assert no_children_left(parallel)


def four_parts(before_opening: Callable[[int], None] = lambda lo: None) -> tuple[list[bytes], list[Any]]:
    """400 rows under 4 keys in turn, in parts of 100 (for :func:`unseal_parallel`): the plaintexts and the parts.

    ``before_opening(first row)`` runs in the process that opens a part, before it is opened.
    """
    keys = [bytes([k]) * 32 for k in range(4)]
    plains = [bytes([i % 251]) * 50 for i in range(400)]
    aads = [f"row{i}".encode() for i in range(400)]
    sealed = [seal(keys[i % 4], p, a) for i, (p, a) in enumerate(zip(plains, aads, strict=True))]
    offsets = np.cumsum([0] + [len(x) for x in sealed])
    data = memoryview(b"".join(sealed))
    which = np.arange(400) % 4

    def opener(lo: int) -> tuple[list[bytes], np.ndarray, list[bytes]]:
        before_opening(lo)
        return keys, which[lo : lo + 100], aads[lo : lo + 100]

    return plains, [(data, offsets[lo : lo + 101], partial(opener, lo)) for lo in range(0, 400, 100)]


def test_a_childs_part_is_handed_over_as_soon_as_it_is_done_while_the_child_goes_on(tmp_path: Path) -> None:
    """The parent gets each of the child's parts when the child finishes it, not only once the child has exited.

    The child's last part waits (in its opener, in the child) for a flag file that the test writes only once it
    holds the child's first part; the child records whether it saw the flag. Were the parts handed over only at the
    child's exit, it would wait in vain and record that it did not.
    """
    before = children()
    flag, saw = tmp_path / "flag", tmp_path / "saw"

    def wait_for_flag(lo: int) -> None:
        if lo == 300:  # the child's last part
            deadline = time.monotonic() + 10
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            saw.write_text(str(flag.exists()))

    plains, parts = four_parts(wait_for_flag)
    got = []
    for plain, i in unseal_parallel(parts, 2, own=0.5):  # this process: parts 0 and 1; the child: 2 and 3
        got.append((bytes(plain), i))
        if i == 2:
            flag.write_text("")
    assert [i for _, i in got] == [0, 1, 2, 3]
    assert b"".join(p for p, _ in got) == b"".join(plains)
    assert saw.read_text() == "True"
    assert no_children_left(before)


def test_a_load_stopped_early_kills_and_reaps_the_decrypting_child() -> None:
    """A caller that stops reading the parts (an error while indexing them) leaves no process decrypting."""
    before = children()
    plains, parts = four_parts()
    got = unseal_parallel(parts, 2)
    buffer, first = next(got)
    assert first == 0 and bytes(buffer[:5000]) == b"".join(plains[:100])
    assert not no_children_left(before)  # the child is there (decrypting or done, not yet reaped)
    got.close()
    assert no_children_left(before)
    rest = [(bytes(plain), i) for plain, i in unseal_parallel(parts, 2)]  # read to its end: every part, in order
    assert [i for _, i in rest] == [0, 1, 2, 3]
    assert b"".join(plain for plain, _ in rest) == b"".join(plains)
    assert no_children_left(before)


def test_rows_each_under_its_own_key_decrypt_in_place_and_refuse_a_moved_row_or_a_missing_key() -> None:
    """One-face subjects (every row its own key) take the load's loop-free path: same checks as the others."""
    keys = [bytes([k]) * 32 for k in range(6)]
    which = np.array([3, 0, 5, 1, 4, 2])
    plains = [bytes([i]) * (40 + i) for i in range(6)]
    aads = [f"row{i}".encode() for i in range(6)]
    sealed = [seal(keys[k], p, a) for k, p, a in zip(which, plains, aads, strict=True)]
    offsets = np.cumsum([0] + [len(x) for x in sealed])
    data = memoryview(b"".join(sealed))
    assert bytes(unseal_many(keys, which, data, offsets, aads)) == b"".join(plains)
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        unseal_many(keys, which, data, offsets, [*aads[:4], aads[5], aads[4]])
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        unseal_many(keys, which[::-1].copy(), data, offsets, aads)  # rows under each other's keys
    with pytest.raises(KeyStoreError, match="key is not in the key store"):
        unseal_many([*keys[:5], None], which, data, offsets, aads)  # type: ignore[list-item]


def test_a_process_with_threads_of_its_own_loads_without_forking(
    gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child forked while another thread holds a lock (inside OpenSSL, say) could hang: such a process never forks."""
    store, expected = gallery
    monkeypatch.setattr(gallery_module, "_PARALLEL_ROWS", 1)
    monkeypatch.setattr(gallery_module, "_PART_ROWS", 2)
    forks: list[int] = []
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or pytest.fail("forked"))
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        store._loaded.clear()
        assert loaded_rows(store) == expected
    finally:
        release.set()
        other.join()
    assert forks == []


def test_a_databases_reaper_thread_does_not_keep_a_load_from_forking(
    gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of the file leaves the database's reaper thread alive for a moment: it must not stop the fork.

    (It did: a load that came right after its read decided in that moment and decrypted in one process.) The
    process's threads are the test's and the reaper (others that earlier tests may have left are not shown).
    """
    store, expected = gallery
    monkeypatch.setattr(gallery_module, "_PARALLEL_ROWS", 1)
    monkeypatch.setattr(gallery_module, "_PART_ROWS", 2)
    monkeypatch.setattr(gallery_module, "_core_free", lambda: True)
    monkeypatch.setattr(gallery_module, "_cpus", lambda: 2)
    with store.db.connect():
        pass
    reaper = store.db._reaper
    assert reaper is not None and reaper.is_alive()
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.current_thread(), reaper])
    made: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: made.append(1) or real_fork())
    store._loaded.clear()
    assert loaded_rows(store) == expected
    assert made == [1]
    other = threading.Thread(target=lambda: None)
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.current_thread(), reaper, other])
    assert not gallery_module._may_fork()  # any other thread of Python still keeps it from forking


@pytest.mark.parametrize(("load", "forks"), [(0.4, True), (1.0, True), (1.5, False), (9.0, False)])
def test_a_load_forks_only_when_a_processor_is_idle(
    gallery, monkeypatch: pytest.MonkeyPatch, load: float, forks: bool
) -> None:
    """On a busy machine a child only competes with its parent: the load is then done in one process, rows the same."""
    store, expected = gallery
    monkeypatch.setattr(gallery_module, "_PARALLEL_ROWS", 1)
    monkeypatch.setattr(gallery_module, "_PART_ROWS", 2)
    monkeypatch.setattr(gallery_module, "_may_fork", lambda: True)
    monkeypatch.setattr(gallery_module, "_cpus", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    before = children()
    made: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: made.append(1) or real_fork())
    store._loaded.clear()
    assert loaded_rows(store) == expected
    assert made == ([1] if forks else [])
    assert no_children_left(before)
