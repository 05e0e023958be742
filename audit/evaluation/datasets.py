"""Evaluation datasets: a manifest CSV, or the LFW folder layout with its ``pairs.txt``.

Manifest
    A CSV with an ``image`` column, a subject column named by the caller, and any
    demographic label columns, read by :func:`core.manifest.read_manifest` (the one
    manifest reader: the same path rules and subject-id checks as enrolment).
LFW
    ``images/<Name>/<Name>_NNNN.jpg`` (or the archive's own ``<Name>/<Name>_NNNN.jpg``
    beside it) and ``pairs.txt`` in the standard 10-fold format:
    a first line ``"10 300"`` (folds, pairs per kind), then per fold 300 matched lines
    ``"name i j"`` followed by 300 mismatched lines ``"name1 i name2 j"``. A
    ``labels.csv`` beside it (``image`` + label columns) adds demographic labels.

Every load produces a :class:`ValidationReport` (missing and unreadable files,
duplicate images by SHA-256 of their bytes, single-image subjects, unknown or empty
labels, multi-valued labels). A manifest that cannot be used at all (a missing
column, a path outside the folder) raises :class:`core.errors.ManifestError`.
Problems with individual files are reported, not raised: the dataset keeps only
usable images and the report lists the rest. Each file is read once: its SHA-256
and (with ``check_images``) whether its bytes decode come from the same read, and
only regular files are read (a device or a pipe named as an image is unreadable).

:func:`load_label_manifest` reads a manifest's names, subjects and labels only (no image
is opened), for evaluating a system from its own score files.

The loaders take ``subject_limit=N``: the images of the first N subjects in
sorted id order (:func:`first_subjects`, the one helper for it), chosen before
validation, so the report and the fingerprint are the subset's own.
:func:`with_bands` adds banded numeric columns (:class:`~audit.evaluation.config.Band`).

Every dataset declares its *subject-face rule* (:attr:`Dataset.subject_face`): which face of
an image showing several people is the labelled subject. It belongs to the dataset, not to
the engine under test, and every configuration evaluated on the dataset follows it (the
runner embeds with it as the engine's face policy, and records it with the run). A manifest
declares ``"largest"`` unless its loader is told otherwise; an LFW folder declares
``"central"``, LFW's own definition of the subject (:data:`LFW_SUBJECT_FACE`): each image is a
250x250 crop centred on the face the dataset is labelled for, so the face nearest the centre
is the subject, and a larger face elsewhere in the crop is a bystander.

The dataset *fingerprint* is the SHA-256 over the sorted lines
``(image sha256, subject, labels...)``: it changes when any image's bytes, subject
or labels change, and not when files are renamed or reordered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from PIL import Image, UnidentifiedImageError

from audit.evaluation.config import Band
from audit.evaluation.groups import UNKNOWN, add_bands, is_multi_valued, normalise_labels
from core.config import FACE_POLICIES, FacePolicy
from core.errors import BadInput, ManifestError
from core.image import DEFAULT_MAX_BYTES, open_regular
from core.manifest import SourceImage, check_subject_id, read_manifest

__all__ = [
    "LFW_SUBJECT_FACE",
    "MANIFEST_SUBJECT_FACE",
    "Dataset",
    "LfwPair",
    "ValidationReport",
    "first_subjects",
    "load_label_manifest",
    "load_lfw",
    "load_manifest",
    "check_subject_face",
    "parse_lfw_pairs",
    "with_bands",
]

IMAGE_COLUMN = "image"

#: An LFW folder's subject-face rule and why: the protocol's, not a choice made for the engine.
LFW_SUBJECT_FACE: tuple[FacePolicy, str] = (
    "central", "LFW protocol: each image is a 250x250 crop centred on the labelled person's face")
#: A manifest's subject-face rule unless its loader is told another.
MANIFEST_SUBJECT_FACE: tuple[FacePolicy, str] = ("largest", "manifest default: the largest face is the subject")

T = TypeVar("T")

_Status = Literal["ok", "missing", "unreadable"]


def _decodes(data: bytes) -> bool:
    """Whether the bytes open as an image and pass PIL's ``verify`` (no pixels are decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the engine enforces its own limit
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
        return True
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return False


def _read_once(path: Path, check_image: bool) -> tuple[_Status, str | None]:
    """Read a regular file once: its status and the SHA-256 of its bytes (``None`` unless usable)."""
    digest = hashlib.sha256()
    kept: list[bytes] = []
    size = 0
    try:
        with open_regular(path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
                if check_image and size <= DEFAULT_MAX_BYTES:
                    kept.append(block)
    except FileNotFoundError:
        return "missing", None
    except OSError:  # a folder, a device, a pipe, no permission: not an image file
        return "unreadable", None
    if check_image and (size > DEFAULT_MAX_BYTES or not _decodes(b"".join(kept))):
        return "unreadable", None
    return "ok", digest.hexdigest()


def first_subjects(items: Sequence[T], limit: int | None, subject: Callable[[T], str] | None = None) -> list[T]:
    """Return the items of the first ``limit`` subjects, subjects in sorted id order (all when ``limit`` is None).

    Parameters
    ----------
    items
        Images (by default :class:`core.manifest.SourceImage`, whose ``subject_id`` is used).
    limit
        How many subjects to keep.
    subject
        The subject of an item (default: its ``subject_id``).

    Raises
    ------
    BadInput
        If ``limit`` is below 1.
    """
    if limit is None:
        return list(items)
    if limit < 1:
        raise BadInput(f"the number of subjects to keep must be at least 1, got {limit}")
    key = subject or (lambda item: str(item.subject_id))  # type: ignore[attr-defined]
    keep = set(sorted({key(i) for i in items})[:limit])
    return [i for i in items if key(i) in keep]


@dataclass(frozen=True)
class ValidationReport:
    """What is wrong (or worth knowing) about a dataset."""

    n_rows: int
    """Rows in the manifest (or images referenced)."""
    n_images: int
    """Usable images (present and readable)."""
    n_subjects: int
    """Subjects among usable images."""
    missing_files: tuple[str, ...] = ()
    """Images listed but not found."""
    unreadable_files: tuple[str, ...] = ()
    """Images found but not decodable."""
    duplicate_images: tuple[tuple[str, ...], ...] = ()
    """Groups of images with identical bytes (SHA-256)."""
    single_image_subjects: tuple[str, ...] = ()
    """Subjects with one usable image (no genuine pair)."""
    unknown_labels: dict[str, int] = field(default_factory=dict)
    """Per label column, images whose label was missing or empty (kept as ``unknown``)."""
    multi_valued_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per label column, distinct multi-valued labels (e.g. ``"Black; Hispanic"``)."""

    @property
    def ok(self) -> bool:
        """No missing, unreadable or duplicate images."""
        return not (self.missing_files or self.unreadable_files or self.duplicate_images)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with counts)."""
        return {
            "n_rows": self.n_rows,
            "n_images": self.n_images,
            "n_subjects": self.n_subjects,
            "ok": self.ok,
            "missing_files": list(self.missing_files),
            "unreadable_files": list(self.unreadable_files),
            "duplicate_images": [list(d) for d in self.duplicate_images],
            "single_image_subjects": list(self.single_image_subjects),
            "unknown_labels": dict(self.unknown_labels),
            "multi_valued_labels": {k: list(v) for k, v in self.multi_valued_labels.items()},
            "counts": {
                "missing_files": len(self.missing_files),
                "unreadable_files": len(self.unreadable_files),
                "duplicate_groups": len(self.duplicate_images),
                "single_image_subjects": len(self.single_image_subjects),
            },
        }


@dataclass(frozen=True)
class LfwPair:
    """One pair of the LFW protocol."""

    fold: int
    """Fold number, 0-based."""
    image_a: str
    """First image, relative to the dataset root."""
    image_b: str
    """Second image, relative to the dataset root."""
    same: bool
    """Whether the pair is matched (same person)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image set ready for evaluation (usable images only)."""

    root: Path
    """Folder that image paths are relative to."""
    table: pd.DataFrame
    """One row per usable image: ``image``, the subject column, labels (normalised), ``sha256``."""
    subject_column: str
    """Name of the subject column."""
    label_columns: tuple[str, ...]
    """Demographic label columns."""
    fingerprint: str
    """SHA-256 over sorted ``(image sha256, subject, labels)``."""
    validation: ValidationReport
    """What was found wrong or notable."""
    pairs: tuple[LfwPair, ...] = ()
    """The LFW protocol pairs, if the dataset came with ``pairs.txt``."""
    name: str = ""
    """Short name (folder or CSV stem)."""
    selection: str = ""
    """Which part of the source this is (``"first 60 subjects"``; empty for all of it)."""
    subject_face: FacePolicy = "largest"
    """Which face of an image showing several is the labelled subject (an engine face policy)."""
    subject_face_reason: str = MANIFEST_SUBJECT_FACE[1]
    """Who declared :attr:`subject_face` and why (recorded with every run on the dataset)."""

    def __post_init__(self) -> None:
        check_subject_face(self.subject_face)

    def with_subject_face(self, rule: FacePolicy, reason: str) -> Dataset:
        """Return the dataset under another subject-face rule (the reason is recorded with its runs).

        Raises
        ------
        BadInput
            An unknown rule (the error names the known ones).
        """
        return dataclasses.replace(self, subject_face=check_subject_face(rule), subject_face_reason=reason)

    def paths(self) -> list[Path]:
        """Absolute image paths, in table order."""
        return [self.root / p for p in self.table[IMAGE_COLUMN]]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def subjects(self) -> list[str]:
        """Subject per image, in table order."""
        return [str(s) for s in self.table[self.subject_column]]


def check_subject_face(rule: str) -> FacePolicy:
    """Return ``rule`` if it is a face policy, else raise :class:`BadInput` naming the known ones."""
    if rule not in FACE_POLICIES:
        raise BadInput(f"unknown subject-face rule {rule!r}; choose one of {list(FACE_POLICIES)}")
    return rule  # type: ignore[return-value]


def _fingerprint(table: pd.DataFrame, subject_column: str, label_columns: Sequence[str]) -> str:
    lines = sorted(
        "\t".join([str(r["sha256"]), str(r[subject_column])] + [f"{c}={r[c]}" for c in label_columns])
        for r in table.to_dict("records")
    )
    h = hashlib.sha256()
    h.update(("facetrail-dataset-v1\n" + "\t".join(label_columns) + "\n").encode())
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def _build(
    root: Path,
    rows: pd.DataFrame,
    subject_column: str,
    label_columns: Sequence[str],
    *,
    check_images: bool,
    name: str,
    pairs: tuple[LfwPair, ...] = (),
    selection: str = "",
    subject_face: tuple[FacePolicy, str] = MANIFEST_SUBJECT_FACE,
) -> Dataset:
    labels_raw = rows[list(label_columns)]
    norm = normalise_labels(labels_raw, list(label_columns))
    unknown = {}
    multi = {}
    for c in label_columns:
        unknown[c] = int(
            sum(
                1
                for v in labels_raw[c].tolist()
                if v is None or (isinstance(v, float) and v != v) or str(v).strip() in ("", UNKNOWN)
            )
        )
        multi[c] = tuple(sorted({v for v in norm[c].tolist() if is_multi_valued(v)}))
    table = rows[[IMAGE_COLUMN, subject_column]].copy()
    table[subject_column] = [str(v).strip() for v in table[subject_column]]
    for c in label_columns:
        table[c] = norm[c].to_numpy()
    missing: list[str] = []
    unreadable: list[str] = []
    digests: list[str | None] = []
    for rel in table[IMAGE_COLUMN]:
        status, digest = _read_once(root / rel, check_images)
        if status == "missing":
            missing.append(rel)
        elif status == "unreadable":
            unreadable.append(rel)
        digests.append(digest)
    table["sha256"] = digests
    table = table[table["sha256"].notna()].reset_index(drop=True)
    dup_groups = tuple(
        tuple(sorted(g[IMAGE_COLUMN].tolist())) for _, g in table.groupby("sha256", sort=True) if len(g) > 1
    )
    counts = table[subject_column].value_counts()
    report = ValidationReport(
        n_rows=len(rows),
        n_images=len(table),
        n_subjects=int(table[subject_column].nunique()),
        missing_files=tuple(missing),
        unreadable_files=tuple(unreadable),
        duplicate_images=dup_groups,
        single_image_subjects=tuple(sorted(str(s) for s in counts[counts == 1].index)),
        unknown_labels=unknown,
        multi_valued_labels={k: v for k, v in multi.items() if v},
    )
    return Dataset(
        root=root,
        table=table,
        subject_column=subject_column,
        label_columns=tuple(label_columns),
        fingerprint=_fingerprint(table, subject_column, label_columns),
        validation=report,
        pairs=pairs,
        name=name,
        selection=selection,
        subject_face=subject_face[0],
        subject_face_reason=subject_face[1],
    )


def _selection(limit: int | None) -> str:
    return "" if limit is None else f"first {limit} subjects"


def _read_labelled(
    path: Path, subject_column: str, label_columns: Sequence[str] | None
) -> tuple[list[SourceImage], Sequence[str]]:
    """Read the manifest's images and the label columns to keep (default: all); refuse a column it lacks."""
    images = read_manifest(path, subject_column)
    header = list(images[0].metadata)
    if label_columns is None:
        label_columns = header
    absent = [c for c in label_columns if c not in header]
    if absent:
        raise ManifestError(
            f"manifest {str(path)!r} lacks label column(s) {', '.join(repr(c) for c in absent)}; "
            f"it has: {', '.join([IMAGE_COLUMN, subject_column, *header])}"
        )
    return images, label_columns


def load_manifest(
    csv_path: str | Path,
    subject_column: str,
    label_columns: Sequence[str] | None = None,
    *,
    check_images: bool = True,
    subject_limit: int | None = None,
) -> Dataset:
    """Load and validate a manifest CSV (read by :func:`core.manifest.read_manifest`).

    Parameters
    ----------
    csv_path
        The CSV; relative ``image`` paths are relative to its folder and may not leave it.
    subject_column
        The column identifying the person.
    label_columns
        Demographic columns to keep (default: every column except ``image`` and the subject).
    check_images
        Check that every image's bytes decode (PIL ``verify``, from the same read as the hash).
    subject_limit
        Keep only the images of the first N subjects (sorted ids, :func:`first_subjects`);
        validation and fingerprint are then the subset's.

    Returns
    -------
    Dataset
        Declaring the subject-face rule ``"largest"`` (:data:`MANIFEST_SUBJECT_FACE`;
        :meth:`Dataset.with_subject_face` for another).

    Raises
    ------
    ManifestError
        If the file is missing or not a CSV, a required column is absent, a cell is
        empty, or an image path leaves the folder.
    BadInput
        For a subject id :func:`core.manifest.check_subject_id` refuses, or ``subject_limit`` below 1.
    """
    path = Path(csv_path).expanduser()
    images, label_columns = _read_labelled(path, subject_column, label_columns)
    chosen = first_subjects(images, subject_limit)
    rows = pd.DataFrame(
        {
            IMAGE_COLUMN: [i.image for i in chosen],
            subject_column: [i.subject_id for i in chosen],
            **{c: [i.metadata[c] for i in chosen] for c in label_columns},
        }
    )
    root = path.resolve().parent
    name = root.name if path.name == "labels.csv" else f"{root.name}/{path.stem}"
    return _build(root, rows, subject_column, list(label_columns), check_images=check_images, name=name,
                  selection=_selection(subject_limit))


def _labels_fingerprint(table: pd.DataFrame, subject_column: str, label_columns: Sequence[str]) -> str:
    lines = sorted(
        "\t".join([str(r[IMAGE_COLUMN]), str(r[subject_column])] + [f"{c}={r[c]}" for c in label_columns])
        for r in table.to_dict("records")
    )
    h = hashlib.sha256()
    h.update(("facetrail-labels-v1\n" + "\t".join(label_columns) + "\n").encode())
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def load_label_manifest(
    csv_path: str | Path,
    subject_column: str,
    label_columns: Sequence[str] | None = None,
    *,
    subject_limit: int | None = None,
) -> Dataset:
    """Load a manifest as a table of names, subjects and labels only, for a system's own scores.

    An audit of a system facetrail does not run needs who is in each image and their
    labels, not the images: nothing is read but the CSV (the same reader and rules as
    :func:`load_manifest`). The ``sha256`` column is empty and the fingerprint covers
    ``(image name, subject, labels)`` (``facetrail-labels-v1``); the score file's own
    SHA-256 is recorded with the run.

    Raises
    ------
    ManifestError
        As :func:`load_manifest`, or an image named twice (its scores could not be told apart).
    BadInput
        For a subject id :func:`core.manifest.check_subject_id` refuses, or ``subject_limit`` below 1.
    """
    path = Path(csv_path).expanduser()
    images, label_columns = _read_labelled(path, subject_column, label_columns)
    seen: dict[str, int] = {}
    for line, image in enumerate(images, start=2):
        if image.image in seen:
            raise ManifestError(f"{path.name} line {line}: image {image.image!r} is listed twice "
                                f"(first on line {seen[image.image]}); a score names an image once")
        seen[image.image] = line
    chosen = first_subjects(images, subject_limit)
    norm = normalise_labels(pd.DataFrame({c: [i.metadata[c] for i in chosen] for c in label_columns}),
                            list(label_columns))
    table = pd.DataFrame({IMAGE_COLUMN: [i.image for i in chosen], subject_column: [i.subject_id for i in chosen]})
    for c in label_columns:
        table[c] = norm[c].to_numpy()
    table["sha256"] = None
    counts = table[subject_column].value_counts()
    report = ValidationReport(
        n_rows=len(chosen),
        n_images=len(table),
        n_subjects=int(table[subject_column].nunique()),
        single_image_subjects=tuple(sorted(str(x) for x in counts[counts == 1].index)),
        multi_valued_labels={c: v for c in label_columns
                             if (v := tuple(sorted({x for x in norm[c].tolist() if is_multi_valued(x)})))},
    )
    root = path.resolve().parent
    name = root.name if path.name == "labels.csv" else f"{root.name}/{path.stem}"
    return Dataset(root=root, table=table, subject_column=subject_column, label_columns=tuple(label_columns),
                   fingerprint=_labels_fingerprint(table, subject_column, list(label_columns)), validation=report,
                   name=name, selection=_selection(subject_limit))


def with_bands(dataset: Dataset, bands: Sequence[Band]) -> Dataset:
    """Return ``dataset`` with a banded label column per band (``<column>_band``).

    The fingerprint is unchanged: bands are a function of labels it covers.

    Raises
    ------
    ManifestError
        If a band's column is not a label column of the dataset.
    """
    table = dataset.table
    columns = list(dataset.label_columns)
    for band in bands:
        if band.column not in dataset.label_columns:
            raise ManifestError(
                f"band {band.column!r}: not a label column of the dataset (label columns: {list(dataset.label_columns)})"
            )
        table = add_bands(table, band.column, band.edges)
        if band.name not in columns:
            columns.append(band.name)
    return dataclasses.replace(dataset, table=table, label_columns=tuple(columns))


def parse_lfw_pairs(text: str, source: str = "pairs.txt", image_dir: str = "images") -> tuple[LfwPair, ...]:
    """Parse an LFW ``pairs.txt`` (10 folds x n matched + n mismatched lines).

    Image paths are ``<image_dir>/<Name>/<Name>_NNNN.jpg`` (``image_dir`` may be empty).

    Raises
    ------
    ManifestError
        If the header or a line does not follow the format.
    """
    prefix = f"{image_dir.strip('/')}/" if image_dir.strip("/") else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ManifestError(f"{source} is empty")
    head = lines[0].split()
    try:
        folds, per = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
    except (ValueError, IndexError) as err:
        raise ManifestError(f"{source}: first line must be '<folds> <pairs per kind>', got {lines[0]!r}") from err
    expected = 1 + folds * 2 * per
    if len(lines) != expected:
        raise ManifestError(
            f"{source}: expected {expected} lines for {folds} folds of {per}+{per} pairs, found {len(lines)}"
        )

    def img(name: str, num: str, lineno: int) -> str:
        try:
            k = int(num)
        except ValueError as err:
            raise ManifestError(f"{source} line {lineno}: image number {num!r} is not an integer") from err
        return f"{prefix}{name}/{name}_{k:04d}.jpg"

    out: list[LfwPair] = []
    pos = 1
    for f in range(folds):
        for same in (True, False):
            for _ in range(per):
                parts = lines[pos].split()
                lineno = pos + 1
                if same and len(parts) == 3:
                    out.append(LfwPair(f, img(parts[0], parts[1], lineno), img(parts[0], parts[2], lineno), True))
                elif not same and len(parts) == 4:
                    out.append(LfwPair(f, img(parts[0], parts[1], lineno), img(parts[2], parts[3], lineno), False))
                else:
                    kind = "matched 'name i j'" if same else "mismatched 'name1 i name2 j'"
                    raise ManifestError(f"{source} line {lineno}: expected a {kind} pair, got {lines[pos]!r}")
                pos += 1
    return tuple(out)


def load_lfw(
    folder: str | Path,
    *,
    label_columns: Sequence[str] | None = None,
    check_images: bool = True,
    pairs_only: bool = True,
    subject_limit: int | None = None,
) -> Dataset:
    """Load an LFW-layout folder: ``images/<Name>/<Name>_NNNN.jpg``, ``pairs.txt``, optional ``labels.csv``.

    Parameters
    ----------
    folder
        The dataset root.
    label_columns
        Label columns to take from ``labels.csv`` (default: all except ``image`` and identity columns).
    check_images
        Decode image headers to find unreadable files.
    pairs_only
        With a ``pairs.txt``, keep only the images its pairs use (LFW's protocol set);
        otherwise every image under ``images/``.
    subject_limit
        Keep only the first N people (sorted names) and the protocol pairs between them.

    Returns
    -------
    Dataset
        Declaring LFW's subject-face rule, ``"central"`` (:data:`LFW_SUBJECT_FACE`).

    Raises
    ------
    ManifestError
        If the folder or its ``images`` subfolder is missing, or ``pairs.txt``/``labels.csv`` is malformed.
    BadInput
        For a person's folder name that is not a usable subject id.
    """
    root = Path(folder).resolve()
    if (root / "images").is_dir():
        image_dir = "images"
    elif root.is_dir() and next(root.glob("*/*.jpg"), None) is not None:
        image_dir = ""  # the archive's own layout: <Name>/<Name>_NNNN.jpg beside pairs.txt
    else:
        raise ManifestError(
            f"{str(folder)!r} is not an LFW folder: no 'images' subfolder and no <Name>/<Name>_NNNN.jpg files"
        )
    pairs: tuple[LfwPair, ...] = ()
    pairs_file = root / "pairs.txt"
    if pairs_file.is_file():
        try:
            text = pairs_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ManifestError(f"{pairs_file} is not UTF-8 text ({err})") from err
        pairs = parse_lfw_pairs(text, str(pairs_file), image_dir)
    if pairs and pairs_only:
        images = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    else:
        images = sorted(str(p.relative_to(root)) for p in (root / image_dir).glob("*/*.jpg"))
    if not images:
        raise ManifestError(f"{str(folder)!r} has no <Name>/*.jpg images")
    people = {i: check_subject_id(Path(i).parent.name, f"LFW person folder {Path(i).parent.name!r}") for i in images}
    images = first_subjects(images, subject_limit, people.__getitem__)
    if subject_limit is not None:
        kept = set(images)
        pairs = tuple(p for p in pairs if p.image_a in kept and p.image_b in kept)
    rows = pd.DataFrame({IMAGE_COLUMN: images, "identity": [people[i] for i in images]})
    labels_file = root / "labels.csv"
    cols: list[str] = []
    if labels_file.is_file():
        try:
            lab = pd.read_csv(labels_file, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ManifestError(f"{labels_file} is not a readable CSV: {err}") from err
        if IMAGE_COLUMN not in lab.columns:
            raise ManifestError(f"{labels_file} lacks an 'image' column")
        skip = {IMAGE_COLUMN, "identity", "name", "n_images_identity"}
        cols = list(label_columns) if label_columns is not None else [c for c in lab.columns if c not in skip]
        absent = [c for c in cols if c not in lab.columns]
        if absent:
            raise ManifestError(f"{labels_file} lacks label column(s) {absent}")
        rows = rows.merge(lab[[IMAGE_COLUMN] + cols].drop_duplicates(IMAGE_COLUMN), on=IMAGE_COLUMN, how="left")
    elif label_columns:
        raise ManifestError(f"label columns {list(label_columns)} requested but {labels_file} does not exist")
    return _build(root, rows, "identity", cols, check_images=check_images, name=root.name, pairs=pairs,
                  selection=_selection(subject_limit), subject_face=LFW_SUBJECT_FACE)
