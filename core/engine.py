"""The recognition engine: the one way in to detection, embedding, 1:1 and 1:N.

>>> engine = Engine()                       # default configuration (see default_config)
>>> result = engine.verify("a.jpg", "b.jpg")
>>> result.verified, result.similarity, result.config.threshold_source.kind

The engine knows nothing of storage or user interfaces: galleries reach it as
:class:`~core.gallery.LoadedGallery` objects, the cache as an
:class:`~core.cache.EmbeddingCache`, and every result is a frozen dataclass
that carries the :class:`~core.config.ModelConfig` that produced it.

Faces are found by the configuration's detector cascade: the first detector on
every image, each fallback only where those before it found none; every
:class:`~core.results.Face` names the detector that found it, and no detector
finding a face is :class:`~core.errors.NoFaceDetected`.

Several faces in a probe: the face policy decides (``"largest"`` by default,
``"central"`` for the face nearest the image centre, or ``"refuse"``), and
every result reports how many faces were found. The policy decides which face
an image's embedding is of, so the embedding cache keeps each policy's
outcomes apart (see :meth:`Engine.cache_key`); galleries do not depend on it.

Stored video: :meth:`Engine.search_video` decodes, samples, detects, tracks and
searches each face track (see :mod:`core.video_search`); every face is tracked,
so the face policy does not apply there, and frames are searched for faces by the
cascade's first detector only (a face missed in one frame is found in another).
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core._deepface import FacePipeline, library_versions
from core.cache import CACHEABLE_ERRORS, CachedOutcome, EmbeddingCache
from core.config import FACE_POLICIES, FacePolicy, ModelConfig, ThresholdSource, check_threshold
from core.errors import BadInput, ConfigMismatch, RecognitionError, UnreadableImage
from core.gallery import LoadedGallery
from core.image import DEFAULT_MAX_PIXELS, ImageSource, load_image, sha256_file
from core.models import check_available, weights_checksums
from core.results import BatchResult, Candidate, Embedding, Face, Failure, SearchResult, VerifyResult, VideoSearchResult
from core.video import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_PIXELS_PER_FRAME
from core.video_search import run_video_search

__all__ = [
    "Engine",
    "default_config",
    "default_fallbacks",
    "DEFAULT_DETECTOR",
    "DEFAULT_ALIGNMENT",
    "DEFAULT_FALLBACKS",
    "DEFAULT_MIRROR_AVERAGE",
    "BUILTIN_THRESHOLDS",
]

log = logging.getLogger(__name__)

#: Default detector, chosen by measured accuracy on congress_small (see README).
DEFAULT_DETECTOR = "dlib"
#: Default alignment: dlib's 5-point face chips (issue 5 measured +1.9 points on LFW over deepface's).
DEFAULT_ALIGNMENT = "dlib_5pt"
#: The default detector cascade after :data:`DEFAULT_DETECTOR` (alignment ``dlib_5pt``): dlib's CNN
#: detector where HOG finds no face. On lfw_small it finds the 7 faces HOG misses (FTA 0.4% -> 0);
#: congress_small never needs it (benchmarks/bench_variants.py, bench_cascade.py). mtcnn is not a
#: third stage: no image of either set reaches it, and every faceless image would load TensorFlow.
DEFAULT_FALLBACKS: tuple[str, ...] = ("dlib_cnn",)
#: Whether the default detector and alignment average each face's embedding with its mirror image's:
#: +0.29 points on the LFW-format proxy (98.57% -> 98.86% with the cascade), FNMR at FMR=1e-3 on
#: lfw_small 6.6% -> 5.3% and on congress_small 0.34% -> 0, for a second forward pass of the ResNet
#: (1.97x the recognition time per face; benchmarks/bench_variants.py). The other variants measured
#: there (jitter, 68 landmarks, padding, chip size) gain less per millisecond and are not kept.
DEFAULT_MIRROR_AVERAGE = True

#: deepface's hard-coded cosine thresholds. Never measured by facetrail: used only when no
#: calibration exists, and every result then says so (threshold_source.kind == "deepface_builtin").
BUILTIN_THRESHOLDS = {"Dlib": 0.07, "Facenet": 0.40}


def _is_default_pipeline(detector: str, alignment: str) -> bool:
    return detector == DEFAULT_DETECTOR and alignment == DEFAULT_ALIGNMENT


def default_fallbacks(detector: str, alignment: str) -> tuple[str, ...]:
    """Return the fallback detectors :func:`default_config` gives a detector and alignment.

    :data:`DEFAULT_FALLBACKS` after the default detector with the default
    alignment; none otherwise (a named non-default detector runs alone unless
    fallbacks are named too, and keeps the embeddings it always had).
    """
    return DEFAULT_FALLBACKS if _is_default_pipeline(detector, alignment) else ()


def default_config(
    model: str = "Dlib",
    detector: str = DEFAULT_DETECTOR,
    alignment: str = DEFAULT_ALIGNMENT,
    *,
    fallback_detectors: tuple[str, ...] | None = None,
    mirror_average: bool | None = None,
    threshold: float | None = None,
    threshold_source: ThresholdSource | None = None,
) -> ModelConfig:
    """Build the configuration for a model, detector cascade and alignment installed here.

    ``fallback_detectors=None`` gives the default cascade for the detector (see
    :func:`default_fallbacks`); ``()`` runs the detector alone.
    ``mirror_average=None`` is :data:`DEFAULT_MIRROR_AVERAGE` for the default
    detector and alignment and off for any other. Without a
    ``threshold`` the decision threshold is deepface's built-in value, labelled
    as such; callers with a calibration pass it (see ``core.thresholds``).

    Raises
    ------
    ModelUnavailable
        When the weights or packages are missing, or the cascade cannot run with
        the alignment (the message names the command to run or the problem).
    """
    fallbacks = default_fallbacks(detector, alignment) if fallback_detectors is None else tuple(fallback_detectors)
    if mirror_average is None:
        mirror_average = DEFAULT_MIRROR_AVERAGE and _is_default_pipeline(detector, alignment)
    check_available(model, detector, alignment, fallbacks)
    if threshold is None:
        threshold = BUILTIN_THRESHOLDS[model]
        threshold_source = ThresholdSource(
            kind="deepface_builtin",
            description=f"deepface's built-in {model} cosine threshold {threshold}; not calibrated by facetrail",
        )
    elif threshold_source is None:
        threshold_source = ThresholdSource(kind="user", description=f"threshold {threshold} named by the user")
    return ModelConfig(
        model=model,
        detector=detector,
        alignment=alignment,
        threshold=float(threshold),
        threshold_source=threshold_source,
        weights_sha256=weights_checksums(model, detector, alignment, fallbacks),
        versions=library_versions(model, detector, fallbacks),
        fallback_detectors=fallbacks,
        mirror_average=mirror_average,
    )


@dataclass(frozen=True)
class _WorkerSpec:
    model: str
    detector: str
    alignment: str
    fallback_detectors: tuple[str, ...]
    mirror_average: bool
    max_pixels: int
    policy: FacePolicy


_WORKER_PIPELINE: FacePipeline | None = None
_WORKER_SPEC: _WorkerSpec | None = None


def _worker_init(spec: _WorkerSpec) -> None:
    global _WORKER_PIPELINE, _WORKER_SPEC
    _WORKER_SPEC = spec
    _WORKER_PIPELINE = FacePipeline(
        spec.model, spec.detector, spec.alignment, spec.fallback_detectors, mirror_average=spec.mirror_average
    )


_Raw = tuple[str, str, bytes | None, dict[str, Any] | None, int, str | None, str | None]


def _embed_path(pipeline: FacePipeline, path: str, max_pixels: int, policy: FacePolicy) -> _Raw:
    """Embed one file; return plain data (picklable) with the failure, if any."""
    sha = ""
    try:
        image = load_image(path, max_pixels=max_pixels)
        sha = image.sha256
        vector, face, count = pipeline.embed(image.pixels, policy)
    except RecognitionError as err:
        return (path, sha, None, None, 0, err.code, str(err))
    return (path, sha, vector.tobytes(), face.to_dict(), count, None, None)


def _worker_embed(path: str) -> _Raw:
    assert _WORKER_PIPELINE is not None and _WORKER_SPEC is not None
    return _embed_path(_WORKER_PIPELINE, path, _WORKER_SPEC.max_pixels, _WORKER_SPEC.policy)


class Engine:
    """Detect, embed, verify and search under one :class:`ModelConfig`.

    Parameters
    ----------
    config
        The configuration; :func:`default_config` when omitted.
    face_policy
        ``"largest"`` (default): embed the largest face and report the count;
        ``"central"``: embed the face nearest the image centre (the subject of a
        photo cropped around its subject, as LFW's are);
        ``"refuse"``: raise :class:`MultipleFaces` when there are several.
    max_pixels
        Pixel limit for every image (decompression-bomb guard).
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        face_policy: FacePolicy = "largest",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if face_policy not in FACE_POLICIES:
            raise BadInput(f"unknown face policy {face_policy!r}; choose one of {list(FACE_POLICIES)}")
        self.config = config if config is not None else default_config()
        self.face_policy: FacePolicy = face_policy
        self.max_pixels = max_pixels
        self._pipeline: FacePipeline | None = None
        self._lock = threading.Lock()

    def with_config(self, config: ModelConfig) -> Engine:
        """Return an engine deciding with ``config``, sharing loaded models when embeddings are the same."""
        other = Engine(config, face_policy=self.face_policy, max_pixels=self.max_pixels)
        if config.embedding_key == self.config.embedding_key:
            other._pipeline = self._pipeline
        return other

    def with_face_policy(self, face_policy: FacePolicy) -> Engine:
        """Return an engine choosing faces by ``face_policy``, sharing this one's loaded models (``self`` if the same).

        Raises
        ------
        BadInput
            An unknown policy (the error names the known ones).
        """
        if face_policy == self.face_policy:
            return self
        other = Engine(self.config, face_policy=face_policy, max_pixels=self.max_pixels)
        other._pipeline = self._pipeline
        return other

    @property
    def cache_key(self) -> str:
        """Key of this engine's outcomes in the embedding cache.

        The configuration's embedding key under the ``largest`` policy (as before
        policies were part of it); with another policy, the key and the policy,
        since the policy decides which face of a several-face image is embedded,
        or whether it is refused.
        """
        key = self.config.embedding_key
        return key if self.face_policy == "largest" else f"{key}/{self.face_policy}"

    @property
    def pipeline(self) -> FacePipeline:
        """The loaded models (built on first use)."""
        with self._lock:
            if self._pipeline is None:
                c = self.config
                self._pipeline = FacePipeline(
                    c.model, c.detector, c.alignment, c.fallback_detectors, mirror_average=c.mirror_average
                )
            return self._pipeline

    # single images -------------------------------------------------------------------

    def detect(self, image: ImageSource) -> list[Face]:
        """Return the faces the first successful detector of the cascade finds, largest first (may be empty)."""
        loaded = load_image(image, max_pixels=self.max_pixels)
        return self.pipeline.detect(loaded.pixels)

    def embed(self, image: ImageSource) -> Embedding:
        """Embed the face chosen by the face policy.

        Raises
        ------
        UnreadableImage, ImageTooLarge
            The image cannot be used.
        NoFaceDetected
            No face was found (never a whole-frame embedding).
        MultipleFaces
            Several faces under the ``refuse`` policy.
        """
        loaded = load_image(image, max_pixels=self.max_pixels)
        vector, face, count = self.pipeline.embed(loaded.pixels, self.face_policy)
        return Embedding(vector=vector, image_sha256=loaded.sha256, face=face, faces_detected=count, config=self.config)

    def verify(self, a: ImageSource, b: ImageSource, *, threshold: float | None = None) -> VerifyResult:
        """Compare the faces of two images (1:1).

        ``threshold`` (a cosine distance) overrides the configuration's for this call;
        the result's config then records it as a user threshold.
        """
        config = self._config_for(threshold)
        ea, eb = self.embed(a), self.embed(b)
        similarity = float(np.clip(np.dot(ea.vector, eb.vector), -1.0, 1.0))
        distance = 1.0 - similarity
        return VerifyResult(
            distance=distance,
            similarity=similarity,
            threshold=config.threshold,
            verified=distance <= config.threshold,
            a=ea,
            b=eb,
            config=config,
        )

    def search(
        self,
        gallery: LoadedGallery,
        probe: ImageSource | Embedding,
        *,
        top_k: int = 10,
        threshold: float | None = None,
    ) -> SearchResult:
        """Search a gallery (1:N): the ``top_k`` nearest faces within the threshold, ranked.

        ``threshold`` (cosine distance) defaults to the configuration's; candidates
        farther than it are not returned.

        Raises
        ------
        ConfigMismatch
            The gallery holds embeddings of another configuration.
        """
        if top_k < 1:
            raise BadInput(f"top_k must be at least 1, not {top_k}")
        self._check_gallery(gallery)
        config = self._config_for(threshold)
        embedding = probe if isinstance(probe, Embedding) else self.embed(probe)
        if embedding.config.embedding_key != self.config.embedding_key:
            raise ConfigMismatch("the probe embedding was made under another configuration than this engine's")
        hits = gallery.index.search(embedding.vector, top_k)
        candidates: list[Candidate] = []
        for hit in hits:
            distance = 1.0 - hit.similarity
            if distance > config.threshold:
                break
            candidates.append(
                Candidate(hit.subject_id, hit.face_id, distance, hit.similarity, rank=len(candidates) + 1)
            )
        return SearchResult(
            image_sha256=embedding.image_sha256,
            faces_detected=embedding.faces_detected,
            detector=embedding.face.detector,
            candidates=tuple(candidates),
            gallery=gallery.ref,
            threshold=config.threshold,
            top_k=top_k,
            config=config,
            exact=gallery.exact,
        )

    def search_video(
        self,
        gallery: LoadedGallery,
        source: str | os.PathLike[str],
        *,
        fps: float = 2.0,
        top_k: int = 10,
        threshold: float | None = None,
        max_duration: float = DEFAULT_MAX_DURATION_S,
        max_pixels_per_frame: int = DEFAULT_MAX_PIXELS_PER_FRAME,
        min_face: int = 80,
        searches_per_track: int = 3,
        progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> VideoSearchResult:
        """Search a stored video against a gallery, one face track at a time (see :mod:`core.video_search`).

        The video is decoded as a stream and sampled at ``fps`` by presentation time;
        faces are detected in each sampled frame, tracked across frames (one track per
        appearance), and each track is searched with up to ``searches_per_track`` of its
        best faces; candidates are aggregated per track (best distance per subject).

        Parameters
        ----------
        gallery
            The gallery to search (its embeddings must be of this engine's configuration).
        source
            Path of a regular video file: MP4/MOV, AVI or Matroska/WebM.
        fps
            Frames sampled per second of video, in (0, 60].
        top_k
            Candidates kept per track.
        threshold
            Cosine-distance threshold for this query (default: the configuration's).
        max_duration
            Refuse videos longer than this many seconds.
        max_pixels_per_frame
            Refuse videos whose frames have more pixels than this.
        min_face
            Smallest face side, in frame pixels, to look for; detection runs on frames
            scaled so that this size is the detector's smallest (smaller is slower).
        searches_per_track
            Best faces searched per track.
        progress
            Show a progress bar on stderr.
        on_progress
            Called with ``(frames sampled, frames expected)`` after each sampled frame.

        Raises
        ------
        BadInput
            An option out of range (``top_k``, ``fps``, ...).
        ConfigMismatch
            The gallery holds embeddings of another configuration.
        UnreadableVideo
            Not a regular file, not a video read here, truncated, damaged, no frames, or
            changed while read.
        VideoTooLong, FrameTooLarge
            Beyond ``max_duration`` or ``max_pixels_per_frame``.
        """
        if top_k < 1:
            raise BadInput(f"top_k must be at least 1, not {top_k}")
        self._check_gallery(gallery)
        return run_video_search(
            self,
            gallery,
            source,
            query_config=self._config_for(threshold),
            threshold=threshold,
            top_k=top_k,
            fps=fps,
            max_duration=max_duration,
            max_pixels_per_frame=max_pixels_per_frame,
            min_face=min_face,
            searches_per_track=searches_per_track,
            progress=progress,
            on_progress=on_progress,
        )

    def _check_gallery(self, gallery: LoadedGallery) -> None:
        if gallery.embedding_key != self.config.embedding_key:
            raise ConfigMismatch(
                f"gallery {gallery.ref.name!r} holds embeddings of configuration {gallery.embedding_key}; "
                f"this engine runs {self.config.name} ({self.config.embedding_key})"
            )

    def _config_for(self, threshold: float | None) -> ModelConfig:
        if threshold is None:
            return self.config
        threshold = check_threshold(threshold)
        return self.config.with_threshold(
            threshold, ThresholdSource(kind="user", description=f"threshold {threshold} named for this query")
        )

    # batches -------------------------------------------------------------------------

    def embed_batch(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        cache: EmbeddingCache | None = None,
        workers: int | None = None,
        progress: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        known_hashes: Mapping[str, str] | None = None,
    ) -> BatchResult:
        """Embed many image files, in parallel, reusing cached embeddings.

        Per-image failures (unreadable, too large, no face ...) are collected in
        :attr:`BatchResult.failures` and never stop the batch.

        Parameters
        ----------
        paths
            Image files. Results are keyed by the path as given (``str(path)``).
        cache
            Embeddings of unchanged images under this configuration are read from it
            and new ones written to it.
        workers
            Processes to use (default: the number of CPU cores).
        progress
            Show a progress bar on stderr.
        on_progress
            Called with ``(done, total)`` as images complete.
        known_hashes
            SHA-256 of files' bytes the caller has just computed (``str(path)`` -> hex): those
            files are not hashed again, and not read at all when their embedding is cached.
        """
        names = [str(p) for p in paths]
        key = self.cache_key
        known = known_hashes or {}
        hashes: dict[str, str] = {}
        failures: dict[str, Failure] = {}
        for name in names:
            if name in known:
                hashes[name] = known[name]
                continue
            try:
                hashes[name] = sha256_file(name)
            except FileNotFoundError:
                failures[name] = Failure(name, UnreadableImage.code, f"{name}: no such file")
            except IsADirectoryError:
                failures[name] = Failure(name, UnreadableImage.code, f"{name}: is a folder, not an image file")
            except OSError as err:
                failures[name] = Failure(name, UnreadableImage.code, f"{name}: cannot read ({err.strerror or err})")
        cached = cache.get_many(list(hashes.values()), key) if cache is not None else {}
        embeddings: dict[str, Embedding] = {}
        todo: list[str] = []
        stale: list[str] = []
        for name, sha in hashes.items():
            hit = cached.get(sha)
            if hit is not None and hit.error_code == "multiple_faces" and self.face_policy != "refuse":
                hit = None  # written under the embedding key by a 'refuse' engine before policies had keys
                stale.append(sha)
            if hit is None:
                todo.append(name)
            elif hit.error_code is not None:
                failures[name] = Failure(name, hit.error_code, f"{name}: {hit.error_message}")
            else:
                assert hit.vector is not None and hit.face is not None
                embeddings[name] = Embedding(hit.vector, sha, hit.face, hit.faces_detected, self.config)
        from_cache = len(embeddings) + sum(1 for n in hashes if n in failures)
        raw = self._run_batch(todo, workers, progress, on_progress)
        fresh: list[CachedOutcome] = []
        for path, sha, vector_bytes, face_dict, count, code, message in raw:
            if code is not None:
                failures[path] = Failure(path, code, message if message and path in message else f"{path}: {message}")
                if code in CACHEABLE_ERRORS and sha:
                    fresh.append(CachedOutcome(sha, None, None, count, code, message))
                continue
            assert vector_bytes is not None and face_dict is not None
            vector = np.frombuffer(vector_bytes, dtype=np.float32).copy()
            face = Face.from_dict(face_dict)
            embeddings[path] = Embedding(vector, sha, face, count, self.config)
            fresh.append(CachedOutcome(sha, vector, face, count, None, None))
        if cache is not None and fresh:
            cache.put_many(key, fresh, replace=stale)
        ordered_failures = tuple(failures[n] for n in names if n in failures)
        return BatchResult(
            embeddings=embeddings,
            failures=ordered_failures,
            computed=len(raw),
            from_cache=from_cache,
            hashes=hashes,
        )

    def _run_batch(
        self,
        todo: list[str],
        workers: int | None,
        progress: bool,
        on_progress: Callable[[int, int], None] | None,
    ) -> list[_Raw]:
        if not todo:
            return []
        workers = workers or os.cpu_count() or 1
        bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            bar = tqdm(total=len(todo), desc="embedding", unit="img", file=sys.stderr)
        results: list[_Raw] = []

        def tick(item: _Raw) -> None:
            results.append(item)
            if bar is not None:
                bar.update(1)
            if on_progress is not None:
                on_progress(len(results), len(todo))

        try:
            if workers <= 1 or len(todo) < 4 * workers:
                pipeline = self.pipeline
                for path in todo:
                    tick(_embed_path(pipeline, path, self.max_pixels, self.face_policy))
            else:
                c = self.config
                spec = _WorkerSpec(
                    c.model,
                    c.detector,
                    c.alignment,
                    c.fallback_detectors,
                    c.mirror_average,
                    self.max_pixels,
                    self.face_policy,
                )
                context = multiprocessing.get_context("spawn")
                with futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(spec,)
                ) as pool:
                    chunk = max(1, min(16, len(todo) // (workers * 8)))
                    for item in pool.map(_worker_embed, todo, chunksize=chunk):
                        tick(item)
        finally:
            if bar is not None:
                bar.close()
        return results

