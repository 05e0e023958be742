"""Enrolment: embed a list of :class:`~core.manifest.SourceImage` rows and add them to a gallery.

The rows come from :mod:`core.manifest` (a manifest CSV or a folder per subject);
:func:`enroll_images` embeds them through the engine (cached, in parallel) and adds
them to a gallery (in two halves, :func:`embed_images` then :func:`enroll_embedded`, for a
caller that commits the enrolment together with its audit record). Per-image failures are collected, never fatal, and summarised in
bounded memory (counts by error code and the first :data:`FAILURES_KEPT` in full), so
a manifest of a million bad paths costs no more than its rows. An enrolment in which
no image yields a face enrols nothing and raises :class:`~core.errors.EnrollmentFailed`
with that summary.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engine import Engine
from core.errors import EnrollmentFailed
from core.gallery import EnrollItem, GalleryStore
from core.image import DEFAULT_MAX_BYTES, open_regular
from core.manifest import SourceImage
from core.results import Embedding, Failure

__all__ = ["EmbeddedImages", "EnrollReport", "FailureSummary", "embed_images", "enroll_embedded",
           "enroll_images", "FAILURES_KEPT"]

#: Failures kept in full in a summary (the rest are only counted by error code).
FAILURES_KEPT = 20
#: Images embedded per batch (bounds what one batch holds in memory).
CHUNK = 5_000


@dataclass(frozen=True)
class FailureSummary:
    """Images that could not be used, summarised: counts by error code and the first few in full."""

    count: int = 0
    """How many images failed."""
    by_code: tuple[tuple[str, int], ...] = ()
    """``(error code, count)``, most frequent first."""
    first: tuple[Failure, ...] = ()
    """The first :data:`FAILURES_KEPT` failures, in input order."""

    @classmethod
    def of(cls, failures: Iterable[Failure], previous: FailureSummary | None = None) -> FailureSummary:
        """Add ``failures`` to ``previous`` (or to an empty summary)."""
        counts = Counter(dict(previous.by_code) if previous else {})
        first = list(previous.first) if previous else []
        count = previous.count if previous else 0
        for failure in failures:
            count += 1
            counts[failure.code] += 1
            if len(first) < FAILURES_KEPT:
                first.append(failure)
        return cls(count, tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), tuple(first))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (also the ``failures`` details of the enrolment's audit record)."""
        return {
            "count": self.count,
            "by_code": dict(self.by_code),
            "first": [f.to_dict() for f in self.first],
            "not_shown": max(0, self.count - len(self.first)),
        }

    def describe(self) -> str:
        """One line: ``3 images failed (no_face 2, unreadable_image 1)``."""
        if not self.count:
            return "no image failed"
        codes = ", ".join(f"{code} {n:,}" for code, n in self.by_code)
        return f"{self.count:,} image(s) failed ({codes})"


@dataclass(frozen=True)
class EnrollReport:
    """What an enrolment did: new face ids, already-enrolled ones, failures (summarised)."""

    gallery: str
    enrolled: tuple[str, ...]
    already_enrolled: tuple[str, ...]
    failures: FailureSummary
    computed: int
    from_cache: int
    fingerprint: str
    size: int

    @property
    def failed(self) -> tuple[Failure, ...]:
        """The failures kept in full (the first :data:`FAILURES_KEPT`)."""
        return self.failures.first

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``facetrail gallery enroll --json`` shape)."""
        return {
            "gallery": self.gallery,
            "enrolled": len(self.enrolled),
            "already_enrolled": len(self.already_enrolled),
            "failed": [f.to_dict() for f in self.failures.first],
            "failures": self.failures.to_dict(),
            "computed": self.computed,
            "from_cache": self.from_cache,
            "fingerprint": self.fingerprint,
            "size": self.size,
        }


@dataclass(frozen=True)
class EmbeddedImages:
    """Images embedded for an enrolment that has not happened yet (:func:`embed_images`)."""

    items: tuple[EnrollItem, ...]
    """One per image with a usable face."""
    failures: FailureSummary
    """The images without one."""
    computed: int
    """Embeddings computed."""
    from_cache: int
    """Embeddings read from the cache."""


def embed_images(
    engine: Engine,
    store: GalleryStore,
    gallery: str,
    images: Sequence[SourceImage],
    *,
    workers: int | None = None,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    keep_photos: bool = True,
) -> EmbeddedImages:
    """Embed ``images`` (cached, in parallel) for an enrolment into ``gallery``; nothing is enrolled yet.

    This is the slow half of :func:`enroll_images`; a caller that commits the enrolment
    together with something else (its audit record) embeds first, then calls
    :func:`enroll_embedded` inside its transaction.

    With ``keep_photos`` each face keeps its reference photo (the file's bytes, sealed under
    the subject's key by the gallery store, for reviewers to compare): the file is read again
    and must still be the one embedded (same SHA-256), else the image fails with code
    ``image_changed`` and is not enrolled.

    Raises
    ------
    GalleryNotFound
        Before any image is read.
    """
    store.info(gallery)  # fail early on an unknown gallery
    items: list[EnrollItem] = []
    summary = FailureSummary()
    computed = from_cache = 0
    total = len(images)
    for start in range(0, total, CHUNK):
        chunk = images[start : start + CHUNK]

        def tick(done: int, _: int, offset: int = start) -> None:
            if on_progress is not None:
                on_progress(offset + done, total)

        batch = engine.embed_batch(
            [i.path for i in chunk], cache=store.cache, workers=workers, progress=progress, on_progress=tick
        )
        changed: list[Failure] = []
        for i in chunk:
            embedding = batch.embeddings.get(i.path)
            if embedding is None:
                continue
            photo = _photo(i.path, embedding) if keep_photos else None
            if keep_photos and photo is None:
                changed.append(Failure(i.path, "image_changed", f"{i.path}: the file changed while it was enrolled "
                                       "(its bytes are no longer those embedded); enrol it again"))
                continue
            items.append(EnrollItem(i.subject_id, embedding, i.image or Path(i.path).name, i.metadata, photo))
        summary = FailureSummary.of([*batch.failures, *changed], summary)
        computed += batch.computed
        from_cache += batch.from_cache
    return EmbeddedImages(tuple(items), summary, computed, from_cache)


def _photo(path: str, embedding: Embedding) -> bytes | None:
    """Return the bytes of the file at ``path`` if they are still the ones embedded (same SHA-256), else ``None``."""
    try:
        with open_regular(path) as handle:
            data = handle.read(DEFAULT_MAX_BYTES + 1)
    except OSError:  # removed or replaced by something that is not a regular file since it was embedded
        return None
    return data if hashlib.sha256(data).hexdigest() == embedding.image_sha256 else None


def enroll_embedded(store: GalleryStore, gallery: str, embedded: EmbeddedImages) -> EnrollReport:
    """Enrol the faces :func:`embed_images` found (the quick half of :func:`enroll_images`).

    Raises
    ------
    EnrollmentFailed
        No image yielded a face (nothing is enrolled; the summary says why).
    ConfigMismatch
        The gallery holds embeddings of another configuration.
    """
    if not embedded.items:
        raise EnrollmentFailed(
            f"no face enrolled into {gallery!r}: {embedded.failures.describe()}", embedded.failures.to_dict()
        )
    new, existing = store.enroll(gallery, embedded.items)
    info = store.info(gallery)
    return EnrollReport(
        gallery=gallery,
        enrolled=tuple(new),
        already_enrolled=tuple(existing),
        failures=embedded.failures,
        computed=embedded.computed,
        from_cache=embedded.from_cache,
        fingerprint=info.fingerprint,
        size=info.size,
    )


def enroll_images(
    engine: Engine,
    store: GalleryStore,
    gallery: str,
    images: Sequence[SourceImage],
    *,
    workers: int | None = None,
    progress: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> EnrollReport:
    """Embed ``images`` (cached, in parallel) and enrol the faces found into ``gallery``.

    Raises
    ------
    GalleryNotFound
        Before any image is read.
    EnrollmentFailed
        No image yielded a face (nothing is enrolled; the summary says why).
    ConfigMismatch
        The gallery holds embeddings of another configuration.
    """
    embedded = embed_images(engine, store, gallery, images, workers=workers, progress=progress,
                            on_progress=on_progress)
    return enroll_embedded(store, gallery, embedded)
