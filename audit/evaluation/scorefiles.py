"""A system's own comparison scores, read from its score files: :func:`read_pair_scores`.

An auditor rarely runs the system they audit: a city audits its vendor from the
scores the vendor's system produced. Three formats are read:

``csv``
    A header ``image_a,image_b,score``, then one pair per line; ``image_a`` and
    ``image_b`` are names from the manifest's ``image`` column (quoted fields work).
``4-column`` (bob.measure)
    ``claimed_id real_id test_label score``, whitespace-separated, ``#`` comments and
    blank lines skipped: ``test_label`` is an image of the manifest, ``claimed_id`` the
    enrolled identity it was compared with (a subject, not an image), ``real_id`` the
    test image's subject.
``5-column`` (bob.measure)
    ``claimed_id model_label real_id test_label score``: as above, with
    ``model_label`` the enrolled image.

bob.measure's convention is that a pair is genuine iff ``claimed_id == real_id``;
here the identities must also agree with the manifest (``real_id`` is the subject of
``test_label``, ``claimed_id`` of ``model_label``), so genuine means the same person
in both. The format is detected from the first line unless named.

Reading is streamed: the file is read in blocks of whole lines (:data:`BLOCK_BYTES`),
each parsed by pyarrow's CSV reader into two integer image columns and a float64
score column, so memory grows with the number of pairs (about 24 bytes each), not
with the file. Every problem is a :class:`ScoreFileError` that names the line and
what is wrong: a name the manifest does not have, a score that is not a finite
number, a pair of an image with itself, a pair listed twice (in either order),
identities that contradict the manifest, a line with the wrong number of fields, an
unknown format, no pairs at all. Nothing is stored from a file with a problem.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import BadInput

__all__ = [
    "BLOCK_BYTES",
    "CSV_HEADER",
    "FORMATS",
    "PairScoreFile",
    "ScoreFileError",
    "ScoreFormat",
    "describe_format",
    "detect_format",
    "read_pair_scores",
]

ScoreFormat = Literal["csv", "4-column", "5-column"]
FORMATS: tuple[str, ...] = ("csv", "4-column", "5-column")

#: The header a CSV pair score file starts with.
CSV_HEADER = ("image_a", "image_b", "score")

#: Bytes read and parsed at a time (whole lines).
BLOCK_BYTES = 32 << 20

_COLUMNS: dict[str, tuple[str, ...]] = {
    "csv": CSV_HEADER,
    "4-column": ("claimed_id", "real_id", "test_label", "score"),
    "5-column": ("claimed_id", "model_label", "real_id", "test_label", "score"),
}
_SPACES = re.compile(rb"[ \t]+")
_EDGE_SPACE = re.compile(rb"(?m)^ | $")
_COMMENT = re.compile(rb"(?m)^[ \t]*#[^\n]*")


class ScoreFileError(BadInput):
    """A score file that cannot be evaluated: the message names the line and the problem."""

    code = "bad_score_file"


@dataclass(frozen=True, eq=False)
class PairScoreFile:
    """The pairs of a score file, as indices into the manifest's images (and, for 4-column files, identities)."""

    path: Path
    """The file."""
    format: ScoreFormat
    """Its format."""
    sha256: str
    """SHA-256 of its bytes."""
    lines: int
    """Lines in the file."""
    side_a: np.ndarray
    """``(pairs,)`` int32: the first side, an image row of the manifest, or ``images + subject index`` for
    a 4-column file's enrolled identity."""
    side_b: np.ndarray
    """``(pairs,)`` int32: the second side (an image row)."""
    score: np.ndarray
    """``(pairs,)`` float64: the system's score."""
    line: np.ndarray
    """``(pairs,)`` int64: the line of each pair."""
    subjects: tuple[str, ...]
    """The manifest's subjects (sorted), which a 4-column identity index counts from."""


def _fail(path: Path, line: int, problem: str) -> ScoreFileError:
    return ScoreFileError(f"{path.name} line {line}: {problem}")


def _first_line(path: Path) -> tuple[int, str]:
    """Return the first line with content (number, text), skipping blank lines and ``#`` comments."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8-sig", errors="replace").strip()
            if text and not text.startswith("#"):
                return number, text
            if number > 10_000:
                break
    raise ScoreFileError(f"{path.name}: no pairs (the file has no line with a score)")


def detect_format(path: Path) -> ScoreFormat:
    """Return the format of a score file from its first line (see the module docstring).

    Raises
    ------
    ScoreFileError
        Neither the CSV header nor 4 or 5 whitespace-separated fields.
    """
    number, text = _first_line(path)
    if tuple(c.strip().lower() for c in next(csv.reader([text]))) == CSV_HEADER:
        return "csv"
    fields = text.split()
    if len(fields) in (4, 5):
        return cast(ScoreFormat, f"{len(fields)}-column")
    raise _fail(path, number, f"unknown score file format: expected the header {','.join(CSV_HEADER)!r} or "
                              f"bob.measure's 4 or 5 whitespace-separated columns, found {text[:80]!r}")


def _blocks(path: Path, block_bytes: int) -> Iterator[bytes | memoryview]:
    """Buffers of whole lines, in file order (a last line gets its newline); large ones are not copied.

    A read usually ends inside a line: the rest of that line goes out with the start of
    the next read as a small buffer of its own, so the bulk of each read is passed on
    as a view, never copied.
    """
    carry = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(block_bytes):
            view = memoryview(chunk)
            if carry:
                head = chunk.find(b"\n")
                if head < 0:
                    carry += chunk
                    continue
                yield carry + chunk[: head + 1]
                view = view[head + 1 :]
                carry = b""
            cut = chunk.rfind(b"\n")
            tail = cut + 1 - (len(chunk) - len(view))  # the last newline's end, within the view
            if tail <= 0:
                carry = bytes(view)
                continue
            if tail < len(view):
                carry = bytes(view[tail:])
            yield view[:tail]
    if carry:
        yield carry + b"\n"


def _normalise_bob(buffer: bytes | memoryview) -> bytes | memoryview:
    """One space between fields, none at the ends, comments blanked (lines keep their numbers)."""
    block = bytes(buffer)
    if b"\r" in block:
        block = block.replace(b"\r", b"")
    if b"#" in block:
        block = _COMMENT.sub(b"", block)
    if b"\t" in block or b"  " in block or b"\n " in block or b" \n" in block or block[:1] == b" ":
        block = _EDGE_SPACE.sub(b"", _SPACES.sub(b" ", block))
    return block


def _slow_problem(path: Path, block: bytes | memoryview, first: int, fmt: ScoreFormat) -> ScoreFileError | None:
    """Return the first malformed line of a block, found line by line (only when the fast parser refused it)."""
    want = len(_COLUMNS[fmt])
    for k, raw in enumerate(bytes(block).split(b"\n")[:-1]):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text or (fmt != "csv" and text.startswith("#")):
            continue
        fields = next(csv.reader([text])) if fmt == "csv" else text.split()
        if len(fields) != want:
            sep = "comma-separated" if fmt == "csv" else "whitespace-separated"
            return _fail(path, first + k, f"expected {want} {sep} fields ({' '.join(_COLUMNS[fmt])}), "
                                          f"found {len(fields)}: {text[:80]!r}")
        try:
            float(fields[-1])
        except ValueError:
            return _fail(path, first + k, f"score {fields[-1][:40]!r} is not a number")
    return None


def _parse_block(path: Path, block: bytes | memoryview, first: int, fmt: ScoreFormat) -> pa.Table:
    names = _COLUMNS[fmt]
    bad: list[str] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        bad.append(row.text or "")
        return "skip"

    parse = pacsv.ParseOptions(
        delimiter="," if fmt == "csv" else " ",
        quote_char='"' if fmt == "csv" else False,
        newlines_in_values=False,
        ignore_empty_lines=False,
        invalid_row_handler=invalid,
    )
    types = {n: pa.dictionary(pa.int32(), pa.string()) for n in names[:-1]} | {"score": pa.float64()}
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=list(names), use_threads=True, block_size=8 << 20),
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, null_values=[""]),
        )
    except pa.ArrowInvalid as err:
        found = _slow_problem(path, block, first, fmt)
        raise found or _fail(path, first, f"the block from this line does not parse: {err}") from err
    if bad:
        found = _slow_problem(path, block, first, fmt)
        raise found or _fail(path, first, f"a line from here on does not parse: {bad[0][:80]!r}")
    return table


def _codes(column: pa.ChunkedArray, index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a (dictionary) name column through ``index`` (-1 for a name it lacks), and which are empty."""
    codes: list[np.ndarray] = []
    empty: list[np.ndarray] = []
    for chunk in column.chunks:  # each chunk has its own dictionary
        names = chunk.dictionary.to_pylist()
        at = chunk.indices.to_numpy(zero_copy_only=False)
        codes.append(np.array([index.get(n, -1) for n in names] + [-1], dtype=np.int32)[at])
        empty.append(np.array([n == "" for n in names] + [True], dtype=bool)[at])
    if not codes:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool)
    return np.concatenate(codes), np.concatenate(empty)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def read_pair_scores(
    path: str | Path,
    images: Sequence[str],
    image_subjects: Sequence[str],
    *,
    format: ScoreFormat | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> PairScoreFile:
    """Read a pair score file against a manifest's images (see the module docstring).

    Parameters
    ----------
    path
        The score file.
    images
        The manifest's ``image`` names, in row order.
    image_subjects
        The subject of each image.
    format
        The format (default: detected from the first line).
    block_bytes
        Bytes per parsed block.

    Raises
    ------
    ScoreFileError
        For the first problem found (its line and what is wrong), or an unreadable file.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ScoreFileError(f"{path}: no such score file")
    fmt = format or detect_format(source)
    if fmt not in FORMATS:
        raise ScoreFileError(f"unknown score file format {fmt!r}; expected one of {list(FORMATS)}")
    image_index = {name: i for i, name in enumerate(images)}
    subjects = tuple(sorted(set(image_subjects)))
    subject_index = {s: k for k, s in enumerate(subjects)}
    subject_of = np.array([subject_index[s] for s in image_subjects] + [-1], dtype=np.int64)
    header_line = _first_line(source)[0] if fmt == "csv" else 0
    capacity, digest = _count_lines(source, block_bytes)  # one pair per line at most: fill arrays, no copies
    side_a, side_b = np.empty(capacity, dtype=np.int32), np.empty(capacity, dtype=np.int32)
    score_all, line_all = np.empty(capacity, dtype=np.float64), np.empty(capacity, dtype=np.int64)
    filled, first = 0, 1
    for block in _blocks(source, block_bytes):
        if fmt == "csv" and first <= header_line:  # the header (and blank lines before it) are not pairs
            data = bytes(block)
            count = data.count(b"\n")
            if header_line >= first + count:
                first += count
                continue
            cut = 0
            for _ in range(header_line - first + 1):
                cut = data.index(b"\n", cut) + 1
            block, first = data[cut:], header_line + 1
            if not block:
                continue
        elif fmt != "csv":
            block = _normalise_bob(block)
        table = _parse_block(source, block, first, fmt)
        a, b, score, line = _block_pairs(source, table, first, fmt, image_index, subject_index, subject_of,
                                         len(images))
        first += table.num_rows  # one row per line: blank lines are rows of empty fields
        end = filled + a.size
        if end > capacity:
            raise ScoreFileError(f"{source.name} changed while it was read: more lines than at the start")
        side_a[filled:end], side_b[filled:end], score_all[filled:end], line_all[filled:end] = a, b, score, line
        filled = end
    if not filled:
        raise ScoreFileError(f"{source.name}: no pairs (the file has no line with a score)")
    side_a, side_b, score_all, line_all = side_a[:filled], side_b[:filled], score_all[:filled], line_all[:filled]
    _check_duplicates(source, side_a, side_b, line_all, len(images) + len(subjects))
    return PairScoreFile(source, fmt, digest, capacity, side_a, side_b, score_all, line_all, subjects)


def _count_lines(path: Path, block_bytes: int) -> tuple[int, str]:
    """Return the number of lines (a last line without a newline counts) and the file's SHA-256."""
    count, last = 0, b"\n"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block_bytes):
            digest.update(chunk)
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n"), digest.hexdigest()


def _block_pairs(
    path: Path,
    table: pa.Table,
    first: int,
    fmt: ScoreFormat,
    image_index: Mapping[str, int],
    subject_index: Mapping[str, int],
    subject_of: np.ndarray,
    n_images: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check one parsed block; return its pairs (sides, score, line) without blank lines."""
    names = _COLUMNS[fmt]
    n = table.num_rows
    rows = np.arange(n, dtype=np.int64)
    score_col = table.column("score")
    index = {"image_a": image_index, "image_b": image_index, "test_label": image_index, "model_label": image_index,
             "claimed_id": subject_index, "real_id": subject_index}
    code: dict[str, np.ndarray] = {}
    blank = score_col.is_null().to_numpy(zero_copy_only=False)
    no_score = blank.copy()
    for c in names[:-1]:
        code[c], empty = _codes(table.column(c), index[c])
        blank &= empty
    keep = ~blank  # a blank line is a row of empty fields
    score = score_col.fill_null(math.nan).to_numpy()
    at = _first(keep & no_score)
    if at is not None:
        raise _fail(path, first + at, "no score")
    at = _first(keep & ~np.isfinite(score))
    if at is not None:
        raise _fail(path, first + at, f"score {float(score[at])} is not a finite number")
    if fmt == "csv":
        a, b = code["image_a"], code["image_b"]
        for side, col in ((a, "image_a"), (b, "image_b")):
            at = _first(keep & (side < 0))
            if at is not None:
                raise _fail(path, first + at, f"{col} {table.column(col)[at].as_py()!r} is not an image of the manifest")
    else:
        test, real, claimed = code["test_label"], code["real_id"], code["claimed_id"]
        at = _first(keep & (test < 0))
        if at is not None:
            raise _fail(path, first + at, f"test_label {table.column('test_label')[at].as_py()!r} is not an image of "
                                          "the manifest")
        for ids, col in ((claimed, "claimed_id"), (real, "real_id")):
            at = _first(keep & (ids < 0))
            if at is not None:
                raise _fail(path, first + at, f"{col} {table.column(col)[at].as_py()!r} is not a subject of the manifest")
        at = _first(keep & (real != subject_of[test]))
        if at is not None:
            raise _fail(path, first + at, f"real_id {table.column('real_id')[at].as_py()!r} is not the subject of "
                                          f"test_label {table.column('test_label')[at].as_py()!r} in the manifest")
        b = test
        if fmt == "5-column":
            a = code["model_label"]
            at = _first(keep & (a < 0))
            if at is not None:
                raise _fail(path, first + at, f"model_label {table.column('model_label')[at].as_py()!r} is not an "
                                              "image of the manifest")
            at = _first(keep & (claimed != subject_of[a]))
            if at is not None:
                raise _fail(path, first + at, f"claimed_id {table.column('claimed_id')[at].as_py()!r} is not the "
                                              f"subject of model_label {table.column('model_label')[at].as_py()!r}")
        else:
            a = n_images + claimed  # the enrolled identity, not an image
    at = _first(keep & (a == b))
    if at is not None:
        raise _fail(path, first + at, f"a pair of one image with itself ({table.column(names[-2])[at].as_py()!r})")
    return a[keep], b[keep], score[keep], first + rows[keep]


def _check_duplicates(path: Path, a: np.ndarray, b: np.ndarray, line: np.ndarray, n_sides: int) -> None:
    """Refuse a pair listed twice, in either order (the message names both lines)."""
    key = np.minimum(a, b).astype(np.int64) * np.int64(n_sides) + np.maximum(a, b)
    ordered = np.sort(key)
    if not np.any(ordered[1:] == ordered[:-1]):
        return
    del ordered
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        # the duplicate found earliest in the file
        second = order[dup + 1]
        k = int(np.argmin(line[second]))
        first_line, again = int(line[order[dup[k]]]), int(line[second[k]])
        raise _fail(path, again, f"duplicate pair: the same two sides as line {first_line}")


def describe_format(fmt: ScoreFormat) -> str:
    """Return the columns of a format, for messages and run metadata."""
    return " ".join(_COLUMNS[fmt]) if fmt != "csv" else ",".join(CSV_HEADER)
