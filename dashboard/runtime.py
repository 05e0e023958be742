"""Wiring shared by the CLI and the Streamlit app: one database, its stores, engines.

Nothing here decides anything about faces or records; it only builds the
objects of ``core`` and ``audit`` once per process and hands them out. Engines
are cached per configuration so models load once.
"""

from __future__ import annotations

import threading

from audit.log import AuditLog
from audit.service import AuditContext, AuditedEngine
from core.config import ModelConfig
from core.db import Database
from core.engine import DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, Engine, default_config
from core.errors import ConfigMismatch
from core.gallery import GalleryStore
from core.thresholds import ThresholdStore, apply_default_threshold

__all__ = ["Runtime"]


class Runtime:
    """The objects one process needs to work on one database."""

    def __init__(self, db_path: str) -> None:
        self.db = Database(db_path)
        self.galleries = GalleryStore(self.db)
        self.thresholds = ThresholdStore(self.db)
        self._engines: dict[tuple[str, str, str], Engine] = {}
        self._lock = threading.Lock()
        self._log: AuditLog | None = None

    @property
    def log(self) -> AuditLog:
        """The audit log of this database (signing key beside the database file by default)."""
        with self._lock:
            if self._log is None:
                self._log = AuditLog(self.db)
            return self._log

    def audited(self, engine: Engine, context: AuditContext) -> AuditedEngine:
        """``engine`` behind the audit trail, acting for ``context``."""
        return AuditedEngine(engine, self.galleries, self.log, context)

    def config(
        self, model: str = "Dlib", detector: str = DEFAULT_DETECTOR, alignment: str = DEFAULT_ALIGNMENT
    ) -> ModelConfig:
        """Return the configuration for these names, with its default (calibrated if possible) threshold."""
        return apply_default_threshold(default_config(model, detector, alignment), self.thresholds)

    def engine(
        self, model: str = "Dlib", detector: str = DEFAULT_DETECTOR, alignment: str = DEFAULT_ALIGNMENT
    ) -> Engine:
        """Return a cached engine for these names (models load on first use)."""
        key = (model, detector, alignment)
        with self._lock:
            engine = self._engines.get(key)
            config = self.config(model, detector, alignment)
            if engine is None:
                engine = Engine(config)
                self._engines[key] = engine
            elif engine.config != config:  # a new calibration landed
                engine = engine.with_config(config)
                self._engines[key] = engine
            return engine

    def engine_for_gallery(self, name: str) -> Engine:
        """Return the engine whose embeddings are comparable with gallery ``name``.

        Raises
        ------
        ConfigMismatch
            The gallery was enrolled under other weights or library versions than installed here.
        """
        info = self.galleries.info(name)
        engine = self.engine(info.config["model"], info.config["detector"], info.config["alignment"])
        if engine.config.embedding_key != info.embedding_key:
            raise ConfigMismatch(
                f"gallery {name!r} was enrolled under configuration {info.embedding_key} "
                f"({info.config.get('versions')}); the installed {engine.config.name} is "
                f"{engine.config.embedding_key} ({dict(engine.config.versions)}); re-enrol the gallery"
            )
        return engine
