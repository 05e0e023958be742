"""The one reader of image lists: a manifest CSV, or a folder per subject.

Enrolment (``facetrail gallery enroll``) and evaluation (``audit.evaluation.datasets``)
both read their images through this module, so both apply the same rules:

- a manifest's ``image`` cell is an absolute path, or a path **relative to the CSV's
  folder** that stays inside it: a relative path with ``..`` or one that resolves
  outside the folder (through a link, say) is refused (:class:`ManifestError` naming
  the line);
- subject ids are validated by :func:`check_subject_id` (no control characters, no
  bidirectional overrides, at most :data:`MAX_ID_LENGTH` characters, not blank);
- empty image or subject cells are refused with their line numbers (the first few listed);
- the CSV is parsed with :mod:`csv` (quoted fields with commas work), UTF-8 with or without BOM.

Whether each listed file exists and is a regular file is checked when it is read
(:func:`core.image.load_image`), where the failure is reported per image.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInput, ManifestError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_ID_LENGTH",
    "SourceImage",
    "check_subject_id",
    "read_folder",
    "read_manifest",
]

#: File name endings read as images from a folder.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

#: Longest subject id accepted (characters).
MAX_ID_LENGTH = 200

#: Problems listed in full in one error message (the rest are counted).
_SHOWN = 10

# Unicode bidirectional controls: embeddings, overrides and isolates (a reader would see text reordered).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass(frozen=True)
class SourceImage:
    """An image to enrol or evaluate, with its subject and any other columns."""

    path: str
    """The file, as a path the process can open (the manifest's folder joined with the cell)."""
    subject_id: str
    """Who the image shows (validated by :func:`check_subject_id`)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """The manifest's other columns (empty for a folder)."""
    image: str = ""
    """The image as the manifest names it (relative to its folder), or the file name in a folder."""


def check_subject_id(value: str, where: str = "subject id") -> str:
    """Return ``value`` stripped of surrounding spaces if it is a usable subject id.

    Raises
    ------
    BadInput
        Blank, longer than :data:`MAX_ID_LENGTH`, or holding a control character or a
        bidirectional control (which make ids read differently from what is stored).
    """
    text = value.strip()
    if not text:
        raise BadInput(f"{where} is empty")
    if len(text) > MAX_ID_LENGTH:
        raise BadInput(f"{where} {text[:40]!r}... has {len(text):,} characters; the limit is {MAX_ID_LENGTH}")
    for ch in text:
        if ch in _BIDI:
            raise BadInput(f"{where} {text!r} holds a bidirectional control character (U+{ord(ch):04X})")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise BadInput(f"{where} {text!r} holds a control or format character (U+{ord(ch):04X})")
    return text


def _relative(cell: str, root: Path, where: str) -> Path:
    rel = Path(cell)
    if rel.is_absolute():
        return rel
    if ".." in rel.parts:
        raise ManifestError(f"{where}: image path {cell!r} must stay in the manifest's folder (no '..')")
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise ManifestError(f"{where}: image path {cell!r} leaves the manifest's folder")
    return path


def _listing(lines: Sequence[int]) -> str:
    shown = ", ".join(map(str, lines[:_SHOWN]))
    return shown + (f" and {len(lines) - _SHOWN:,} more" if len(lines) > _SHOWN else "")


def read_manifest(
    path: str | os.PathLike[str], subject_col: str, image_col: str = "image"
) -> list[SourceImage]:
    """Read a manifest CSV: an image column (relative to the CSV), a subject column, other columns as metadata.

    Raises
    ------
    ManifestError
        Missing or non-regular file, not UTF-8 CSV, missing columns, empty cells, image
        paths outside the folder, or no rows (the message names the lines).
    BadInput
        A subject id that :func:`check_subject_id` refuses (with its line).
    """
    csv_path = Path(path).expanduser()
    if not csv_path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    root = csv_path.resolve().parent
    rows: list[SourceImage] = []
    empty: list[int] = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in (image_col, subject_col) if c not in columns]
            if missing:
                raise ManifestError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"the manifest has {', '.join(columns) or 'no header'}"
                )
            for line, record in enumerate(reader, start=2):
                image = (record.get(image_col) or "").strip()
                subject = record.get(subject_col) or ""
                if not image or not subject.strip():
                    empty.append(line)
                    continue
                where = f"{csv_path.name} line {line}"
                file = _relative(image, root, where)
                subject_id = check_subject_id(subject, f"{where}: subject id")
                metadata = {k: (v or "") for k, v in record.items() if k and k not in (image_col, subject_col)}
                rows.append(SourceImage(str(file), subject_id, metadata, image))
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not a UTF-8 CSV file ({err})") from err
    except csv.Error as err:
        raise ManifestError(f"{path}: not a valid CSV file ({err})") from err
    if empty:
        raise ManifestError(f"{path}: empty {image_col!r} or {subject_col!r} on line(s) {_listing(empty)}")
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    return rows


def read_folder(folder: str | os.PathLike[str]) -> list[SourceImage]:
    """List ``<folder>/<subject>/<image>`` files (image suffixes only, sorted).

    Raises
    ------
    ManifestError
        The folder does not exist or holds no subject folders with images.
    BadInput
        A subject folder's name is not a usable subject id.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    rows = []
    for subject in sorted(p for p in root.iterdir() if p.is_dir()):
        images = [i for i in sorted(subject.iterdir()) if i.is_file() and i.suffix.lower() in IMAGE_SUFFIXES]
        if images:
            subject_id = check_subject_id(subject.name, f"subject folder {subject.name!r}")
            rows += [SourceImage(str(i), subject_id, {}, i.name) for i in images]
    if not rows:
        raise ManifestError(f"{folder}: no images found in subject folders (expected {folder}/<subject>/<image>)")
    return rows
