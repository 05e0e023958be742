"""Calibrated decision thresholds and where they come from.

A threshold means something only with its provenance: the false-match rate it
was calibrated to, on which data, when, and what it achieved there (overall and
per group). Calibrations are stored in the database (``facetrail calibrate``
writes one), keyed by the configuration's embedding key; the latest one is the
configuration's default threshold. Without one, facetrail falls back to the
calibration shipped with the package (``calibrations.json``, measured on the
shared benchmark sets, provenance included) and only then to deepface's
built-in value, labelled as uncalibrated in every result.

Those are 1:1 thresholds (a target FMR per comparison). A 1:N search compares a
probe with every face of a gallery, so its false-positive identification rate (FPIR:
the share of searches of someone not enrolled that return any candidate) grows with
the gallery. :class:`SearchCalibration` is a threshold calibrated to a target FPIR for
a gallery of a given size, keyed by embedding key and the gallery it was measured on
(name, fingerprint, size); it keeps the best non-mated distance of every calibration
search, so the FPIR at *any* threshold on that gallery is measured, not modelled
(``facetrail calibrate --target-fpir R --gallery G`` writes one). The search path asks:

- :meth:`ThresholdStore.search_calibration`: the FPIR calibration for this gallery (its
  fingerprint), else for its size, if one exists; :func:`apply_search_threshold` makes
  it the configuration's default threshold for searches of that gallery;
- :meth:`ThresholdStore.expected_fpir`: the expected FPIR at threshold ``t`` for a
  gallery of ``N`` faces (:class:`ExpectedFpir`): ``measured`` on that very gallery,
  ``extrapolated`` from a gallery of another size or content with
  ``1 - (1 - FPIR_0(t)) ** (N / N_0)`` (independent comparisons), or ``estimate`` from the
  1:1 calibration at its own threshold, ``1 - (1 - FMR) ** N``; each labelled as what it is.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.config import ModelConfig, ThresholdSource, config_id
from core.errors import BadInput
from core.storage.connection import Database

__all__ = [
    "ExpectedFpir",
    "SearchCalibration",
    "ThresholdStore",
    "apply_default_threshold",
    "apply_search_threshold",
    "extrapolate_fpir",
    "shipped_calibration",
]

FpirMethod = Literal["measured", "extrapolated", "estimate"]


def extrapolate_fpir(fpir: float, from_size: int, to_size: int) -> float:
    """``1 - (1 - fpir) ** (to_size / from_size)``: an FPIR measured on one gallery size, at another.

    It assumes a search's comparisons are independent, which understates the FPIR of
    look-alike-rich galleries; every value computed with it is labelled ``extrapolated``.
    """
    if from_size < 1 or to_size < 1:
        raise BadInput(f"gallery sizes must be at least 1, got {from_size} and {to_size}")
    if not 0.0 <= fpir <= 1.0:
        raise BadInput(f"an FPIR lies in [0, 1], got {fpir}")
    return float(1.0 - (1.0 - fpir) ** (to_size / from_size))


@dataclass(frozen=True)
class ExpectedFpir:
    """The FPIR a search at ``threshold`` of a gallery of ``gallery_size`` faces should expect, and how it is known."""

    value: float
    """The chance that a search of someone not enrolled returns at least one candidate."""
    method: FpirMethod
    """``measured`` (on this gallery), ``extrapolated`` (from another gallery's measurement) or ``estimate``
    (from the 1:1 FMR, assuming independent comparisons)."""
    threshold: float
    """The search's distance threshold."""
    gallery_size: int
    """The gallery's size."""
    basis: str
    """One line saying where the number comes from."""
    calibration_id: int | None = None
    """The search calibration it was computed from, if any."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the value as a decimal string, as audit records hold no floats)."""
        return {"fpir": f"{self.value:.6g}", "method": self.method, "threshold": f"{self.threshold:.12g}",
                "gallery_size": self.gallery_size, "basis": self.basis, "calibration_id": self.calibration_id}


@dataclass(frozen=True)
class SearchCalibration:
    """A 1:N threshold calibrated to a target FPIR for a gallery size, with what it was measured on."""

    id: int
    """The calibration's id."""
    embedding_key: str
    """The configuration's embedding key."""
    threshold: float
    """The distance threshold."""
    target_fpir: float
    """The FPIR aimed at for a gallery of :attr:`for_gallery_size` faces."""
    gallery: str
    """The gallery the searches ran against."""
    gallery_fingerprint: str
    """Its fingerprint then."""
    gallery_size: int
    """Its size then (faces)."""
    for_gallery_size: int
    """The gallery size the threshold is for (:attr:`gallery_size`, unless extrapolated)."""
    method: Literal["measured", "extrapolated"]
    """``measured``: calibrated on searches of a gallery of that size; ``extrapolated`` from another size."""
    nonmated_distances: tuple[float, ...]
    """Sorted: per non-mated calibration search, its nearest gallery face's distance."""
    source: ThresholdSource
    """The threshold's provenance, as a configuration's default for these searches."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Per-group FPIR, the probes, achieved FPIR ... (JSON)."""

    @property
    def searches(self) -> int:
        """Non-mated calibration searches."""
        return len(self.nonmated_distances)

    def measured_fpir(self, threshold: float) -> float:
        """Return the FPIR at ``threshold`` on the calibration gallery: searches whose nearest face is within it."""
        return bisect.bisect_right(self.nonmated_distances, threshold) / self.searches if self.searches else math.nan

    def expected_fpir(self, threshold: float, gallery_size: int, gallery_fingerprint: str | None = None) -> ExpectedFpir:
        """Return the FPIR at ``threshold`` for a gallery of ``gallery_size`` faces, measured or extrapolated."""
        measured = self.measured_fpir(threshold)
        on = f"{self.searches:,} non-mated searches of gallery {self.gallery!r} ({self.gallery_size:,} faces)"
        if gallery_fingerprint == self.gallery_fingerprint:
            return ExpectedFpir(measured, "measured", threshold, gallery_size, f"measured by {on}", self.id)
        value = extrapolate_fpir(measured, self.gallery_size, gallery_size)
        return ExpectedFpir(value, "extrapolated", threshold, gallery_size,
                            f"extrapolated to {gallery_size:,} faces from {on}: 1 - (1 - FPIR)^(N/N0)", self.id)

_SHIPPED = Path(__file__).with_name("calibrations.json")

def shipped_calibration(
    model: str,
    detector: str,
    alignment: str,
    fallback_detectors: tuple[str, ...] = (),
    mirror_average: bool = False,
) -> tuple[float, ThresholdSource] | None:
    """Return the calibration shipped with facetrail for this configuration, if any.

    Entries are named by :func:`core.config.config_id` (detector cascade and mirror averaging included).
    """
    if not _SHIPPED.is_file():
        return None
    entries: dict[str, Any] = json.loads(_SHIPPED.read_text(encoding="utf-8"))
    entry = entries.get(config_id(model, (detector, *fallback_detectors), alignment, mirror_average))
    if entry is None:
        return None
    return float(entry["threshold"]), ThresholdSource.from_dict(entry["source"])


_SEARCH_COLUMNS = ("id, embedding_key, threshold, target_fpir, gallery, gallery_fingerprint, gallery_size, "
                   "for_gallery_size, method, nonmated_distances, source")


class _CalibrationCache:
    """1:N calibration lookups of one database, valid while the table's ``(count, max id)`` is ``version``.

    ``stamp`` is ``(lease generation, this process's saves)`` when ``version`` was read: while
    both are unchanged, no process can have added a calibration since (see
    :meth:`core.storage.connection.Database.lease_generation`), and the version is not read again.
    """

    def __init__(self) -> None:
        self.version: tuple[int, int] | None = None
        self.stamp: tuple[int, int] | None = None
        self.found: dict[tuple[str, int, str], tuple[SearchCalibration | None, SearchCalibration | None]] = {}


class _Saves:
    """How many 1:N calibrations this process saved (any :class:`Database`, any file), counted after each commit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0

    def bump(self) -> None:
        with self.lock:
            self.count += 1


_SAVES = _Saves()


_CALIBRATIONS: weakref.WeakKeyDictionary[Database, _CalibrationCache] = weakref.WeakKeyDictionary()
_CACHE_ENTRIES = 256


class ThresholdStore:
    """Calibrations stored in the facetrail database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, config: ModelConfig, threshold: float, source: ThresholdSource) -> None:
        """Record a calibration; it becomes the default for configs with the same embedding key."""
        with self.db.connect(transaction=True) as con:
            next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM calibrations").fetchall()[0][0]
            con.execute(
                "INSERT INTO calibrations (id, embedding_key, model, detector, alignment, threshold, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    next_id,
                    config.embedding_key,
                    config.model,
                    config.detector,
                    config.alignment,
                    float(threshold),
                    json.dumps(source.to_dict()),
                ],
            )

    def latest(self, config: ModelConfig) -> tuple[float, ThresholdSource] | None:
        """Return the newest calibration for this configuration's embedding key, if any."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT threshold, source FROM calibrations WHERE embedding_key = ? ORDER BY id DESC LIMIT 1",
                [config.embedding_key],
            ).fetchall()
        if not rows:
            return None
        return float(rows[0][0]), ThresholdSource.from_dict(json.loads(rows[0][1]))

    def save_search(
        self,
        config: ModelConfig,
        *,
        threshold: float,
        target_fpir: float,
        gallery: str,
        gallery_fingerprint: str,
        gallery_size: int,
        for_gallery_size: int,
        method: Literal["measured", "extrapolated"],
        nonmated_distances: Sequence[float],
        source: ThresholdSource,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a 1:N calibration (see the module docstring); return its id."""
        with self.db.connect(transaction=True) as con:
            next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM search_calibrations").fetchall()[0][0]
            con.execute(
                "INSERT INTO search_calibrations (id, embedding_key, model, detector, alignment, gallery, "
                "gallery_fingerprint, gallery_size, for_gallery_size, method, target_fpir, threshold, searches, "
                "nonmated_distances, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [next_id, config.embedding_key, config.model, config.detector, config.alignment, gallery,
                 gallery_fingerprint, int(gallery_size), int(for_gallery_size), method, float(target_fpir),
                 float(threshold), len(nonmated_distances), sorted(float(d) for d in nonmated_distances),
                 json.dumps({"threshold_source": source.to_dict(), **dict(details or {})}, sort_keys=True)],
            )
        _SAVES.bump()  # after the commit: readers of this process drop what they kept
        return int(next_id)

    def _search_calibrations(
        self, config: ModelConfig, gallery_size: int, gallery_fingerprint: str | None
    ) -> tuple[SearchCalibration | None, SearchCalibration | None]:
        """Return this gallery's (else its size's) newest 1:N calibration and the nearest size's, each or ``None``.

        Both come from one query, kept per database for as long as the calibrations table
        is unchanged: a call reads its row count and largest id first (the table is only
        ever appended to, with ids counting up), so a calibration saved by another process
        or another :class:`Database` on the file is seen by the next search. That version is
        not read again while this process held the file all along and saved no calibration
        since (:class:`_CalibrationCache` ``stamp``): no one else can have written one. Nothing
        read inside a transaction is kept.
        """
        size, fp = int(gallery_size), gallery_fingerprint or ""
        key = (config.embedding_key, size, fp)
        cache = _CALIBRATIONS.setdefault(self.db, _CalibrationCache())
        with self.db.connect() as con:
            # the lease held for this block, and this process's saves, before the read: a save after it changes it
            stamp = (self.db.lease_generation(), _SAVES.count)
            if cache.stamp == stamp and key in cache.found:
                return cache.found[key]
            row = con.execute("SELECT count(*), coalesce(max(id), 0) FROM search_calibrations").fetchone()
            version = (int(row[0]), int(row[1])) if row else (0, 0)
            if cache.version != version:
                cache.version, cache.found = version, {}
            cache.stamp = None if self.db.in_transaction else stamp
            if key in cache.found:
                return cache.found[key]
            rows = con.execute(
                f"(SELECT 0 AS k, {_SEARCH_COLUMNS} FROM search_calibrations WHERE embedding_key = ? AND "
                "(gallery_fingerprint = ? OR for_gallery_size = ?) ORDER BY (gallery_fingerprint = ?) DESC, id DESC "
                f"LIMIT 1) UNION ALL (SELECT 1 AS k, {_SEARCH_COLUMNS} FROM search_calibrations "
                "WHERE embedding_key = ? ORDER BY abs(ln(gallery_size) - ln(?)), id DESC LIMIT 1)",
                [config.embedding_key, fp, size, fp, config.embedding_key, max(size, 1)],
            ).fetchall()
            found = {int(r[0]): _search_calibration(r[1:]) for r in rows}
            pair = (found.get(0), found.get(1))
            if len(cache.found) >= _CACHE_ENTRIES:
                cache.found.clear()
            if not self.db.in_transaction:  # an uncommitted calibration could be rolled back
                cache.found[key] = pair  # under the database's lock, with the version it was read at
        return pair

    def search_calibration(
        self, config: ModelConfig, gallery_size: int, gallery_fingerprint: str | None = None
    ) -> SearchCalibration | None:
        """Return the FPIR calibration for this gallery (its fingerprint), else for its size, newest first; or ``None``."""
        return self._search_calibrations(config, gallery_size, gallery_fingerprint)[0]

    def nearest_search_calibration(self, config: ModelConfig, gallery_size: int) -> SearchCalibration | None:
        """Return the newest FPIR calibration of this embedding key measured on the gallery size nearest ``gallery_size``."""
        return self._search_calibrations(config, gallery_size, None)[1]

    def expected_fpir(
        self, config: ModelConfig, gallery_size: int, threshold: float, gallery_fingerprint: str | None = None
    ) -> ExpectedFpir | None:
        """Return the expected FPIR at ``threshold`` for a gallery of ``gallery_size`` faces, labelled by how it is known.

        Measured when a calibration ran on this very gallery (same fingerprint);
        extrapolated from the calibration of the nearest gallery size otherwise; an
        estimate from the configuration's 1:1 calibration (``1 - (1 - FMR)^N``) when no
        1:N calibration exists and the threshold is the one that FMR was measured at;
        ``None`` when nothing covers it.
        """
        cal, nearest = self._search_calibrations(config, gallery_size, gallery_fingerprint)
        if cal is None or cal.gallery_fingerprint != gallery_fingerprint:
            cal = nearest or cal
        if cal is not None:
            return cal.expected_fpir(threshold, gallery_size, gallery_fingerprint)
        src = config.threshold_source
        if src.kind == "calibrated" and src.achieved_fmr is not None and math.isclose(
                threshold, config.threshold, rel_tol=0.0, abs_tol=1e-12):
            value = 1.0 - (1.0 - src.achieved_fmr) ** max(int(gallery_size), 0)
            return ExpectedFpir(value, "estimate", threshold, gallery_size,
                                f"estimate from the 1:1 calibration ({src.description}, FMR {src.achieved_fmr:.3g}): "
                                "1 - (1 - FMR)^N, assuming independent comparisons")
        return None

    def search_history(self) -> list[dict[str, Any]]:
        """Every 1:N calibration, newest first (without the distances)."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT id, embedding_key, model, detector, alignment, gallery, gallery_fingerprint, gallery_size, "
                "for_gallery_size, method, target_fpir, threshold, searches, source, created_at "
                "FROM search_calibrations ORDER BY id DESC"
            ).fetchall()
        keys = ("id", "embedding_key", "model", "detector", "alignment", "gallery", "gallery_fingerprint",
                "gallery_size", "for_gallery_size", "method", "target_fpir", "threshold", "searches")
        return [{**dict(zip(keys, r[:13], strict=True)), "source": json.loads(r[13]), "created_at": r[14].isoformat()}
                for r in rows]

    def history(self) -> list[dict[str, Any]]:
        """Every calibration, newest first."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT id, model, detector, alignment, embedding_key, threshold, source, created_at "
                "FROM calibrations ORDER BY id DESC"
            ).fetchall()
        return [
            {
                "id": r[0],
                "model": r[1],
                "detector": r[2],
                "alignment": r[3],
                "embedding_key": r[4],
                "threshold": r[5],
                "source": json.loads(r[6]),
                "created_at": r[7].isoformat(),
            }
            for r in rows
        ]


def _search_calibration(row: Sequence[Any]) -> SearchCalibration:
    source = json.loads(row[10])
    details = {k: v for k, v in source.items() if k != "threshold_source"}
    return SearchCalibration(
        id=int(row[0]), embedding_key=str(row[1]), threshold=float(row[2]), target_fpir=float(row[3]),
        gallery=str(row[4]), gallery_fingerprint=str(row[5]), gallery_size=int(row[6]), for_gallery_size=int(row[7]),
        method="extrapolated" if row[8] == "extrapolated" else "measured",
        nonmated_distances=tuple(float(d) for d in row[9]),
        source=ThresholdSource.from_dict(source["threshold_source"]), details=details,
    )


def apply_search_threshold(
    config: ModelConfig, store: ThresholdStore | None, gallery_size: int, gallery_fingerprint: str | None = None
) -> ModelConfig:
    """Give ``config`` the FPIR-calibrated threshold for searches of this gallery, if one exists.

    A configuration whose threshold was named by the user is returned unchanged, and
    so is one with no 1:N calibration for this gallery or its size (it keeps its 1:1
    default, and searches then state their expected FPIR as what it is).
    """
    if config.threshold_source.kind == "user" or store is None:
        return config
    found = store.search_calibration(config, gallery_size, gallery_fingerprint)
    return config if found is None else config.with_threshold(found.threshold, found.source)


def apply_default_threshold(config: ModelConfig, store: ThresholdStore | None) -> ModelConfig:
    """Give ``config`` its default threshold: stored calibration, else shipped one, else unchanged.

    A configuration whose threshold was named by the user is returned unchanged.
    """
    if config.threshold_source.kind == "user":
        return config
    found = store.latest(config) if store is not None else None
    if found is None:
        found = shipped_calibration(
            config.model, config.detector, config.alignment, config.fallback_detectors, config.mirror_average
        )
    if found is None:
        return config
    threshold, source = found
    return config.with_threshold(threshold, source)
