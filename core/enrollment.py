"""Enrolment sources: a folder per subject, or a manifest CSV.

Both produce :class:`SourceImage` rows (path, subject, metadata) that
:func:`enroll_images` embeds through the engine (cached, in parallel) and adds
to a gallery. Per-image failures are collected, never fatal.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.engine import Engine
from core.errors import ManifestError
from core.gallery import EnrollItem, GalleryStore
from core.results import Failure

__all__ = ["SourceImage", "EnrollReport", "read_folder", "read_manifest", "enroll_images", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class SourceImage:
    """An image to enrol or evaluate, with its subject and any other columns."""

    path: str
    subject_id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnrollReport:
    """What an enrolment did: new face ids, already-enrolled ones, failures."""

    gallery: str
    enrolled: tuple[str, ...]
    already_enrolled: tuple[str, ...]
    failed: tuple[Failure, ...]
    computed: int
    from_cache: int
    fingerprint: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``facetrail gallery enroll --json`` shape)."""
        return {
            "gallery": self.gallery,
            "enrolled": len(self.enrolled),
            "already_enrolled": len(self.already_enrolled),
            "failed": [{"image": f.image, "error": f.message, "code": f.code} for f in self.failed],
            "computed": self.computed,
            "from_cache": self.from_cache,
            "fingerprint": self.fingerprint,
            "size": self.size,
        }


def read_folder(folder: str | os.PathLike[str]) -> list[SourceImage]:
    """List ``<folder>/<subject>/<image>`` files (image suffixes only, sorted).

    Raises
    ------
    ManifestError
        The folder does not exist or holds no subject folders with images.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    rows = [
        SourceImage(str(image), subject.name)
        for subject in sorted(p for p in root.iterdir() if p.is_dir())
        for image in sorted(subject.iterdir())
        if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not rows:
        raise ManifestError(f"{folder}: no images found in subject folders (expected {folder}/<subject>/<image>)")
    return rows


def read_manifest(path: str | os.PathLike[str], subject_col: str, image_col: str = "image") -> list[SourceImage]:
    """Read a manifest CSV: ``image`` (relative to the CSV), a subject column, other columns as metadata.

    Raises
    ------
    ManifestError
        Missing file, missing columns, or empty subject or image cells (with line numbers).
    """
    csv_path = Path(path).expanduser()
    if not csv_path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in (image_col, subject_col) if c not in columns]
            if missing:
                raise ManifestError(
                    f"{path}: missing column(s) {', '.join(missing)}; the manifest has {', '.join(columns) or 'no header'}"
                )
            rows = []
            problems = []
            for line, record in enumerate(reader, start=2):
                image = (record.get(image_col) or "").strip()
                subject = (record.get(subject_col) or "").strip()
                if not image or not subject:
                    problems.append(line)
                    continue
                metadata = {k: (v or "") for k, v in record.items() if k not in (image_col, subject_col) and k}
                rows.append(SourceImage(str(base / image), subject, metadata))
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not a UTF-8 CSV file ({err})") from err
    except csv.Error as err:
        raise ManifestError(f"{path}: not a valid CSV file ({err})") from err
    if problems:
        shown = ", ".join(map(str, problems[:10]))
        raise ManifestError(f"{path}: empty {image_col!r} or {subject_col!r} on line(s) {shown}")
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    return rows


def enroll_images(
    engine: Engine,
    store: GalleryStore,
    gallery: str,
    images: Sequence[SourceImage],
    *,
    workers: int | None = None,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    enroll: Callable[[str, list[EnrollItem]], tuple[list[str], list[str]]] | None = None,
) -> EnrollReport:
    """Embed ``images`` (cached, in parallel) and enrol them into ``gallery``.

    ``enroll`` replaces ``store.enroll`` for the final step (the audited service
    passes its own, so the enrolment is recorded).
    """
    store.info(gallery)  # fail early on an unknown gallery
    batch = engine.embed_batch(
        [i.path for i in images], cache=store.cache, workers=workers, progress=progress, on_progress=on_progress
    )
    items = [
        EnrollItem(i.subject_id, batch.embeddings[i.path], Path(i.path).name, i.metadata)
        for i in images
        if i.path in batch.embeddings
    ]
    new, existing = (enroll or store.enroll)(gallery, items)
    info = store.info(gallery)
    return EnrollReport(
        gallery=gallery,
        enrolled=tuple(new),
        already_enrolled=tuple(existing),
        failed=batch.failures,
        computed=batch.computed,
        from_cache=batch.from_cache,
        fingerprint=info.fingerprint,
        size=info.size,
    )
