"""Calibrated decision thresholds and where they come from.

A threshold means something only with its provenance: the false-match rate it
was calibrated to, on which data, when, and what it achieved there (overall and
per group). Calibrations are stored in the database (``facetrail calibrate``
writes one), keyed by the configuration's embedding key; the latest one is the
configuration's default threshold. Without one, facetrail falls back to the
calibration shipped with the package (``calibrations.json``, measured on the
shared benchmark sets, provenance included) and only then to deepface's
built-in value, labelled as uncalibrated in every result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.config import ModelConfig, ThresholdSource, config_id
from core.db import Database

__all__ = ["ThresholdStore", "shipped_calibration", "apply_default_threshold"]

_SHIPPED = Path(__file__).with_name("calibrations.json")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS calibrations (
        id BIGINT PRIMARY KEY,
        embedding_key VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        detector VARCHAR NOT NULL,
        alignment VARCHAR NOT NULL,
        threshold DOUBLE NOT NULL,
        source JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
)


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


class ThresholdStore:
    """Calibrations stored in the facetrail database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure_schema("calibrations", _SCHEMA)

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
