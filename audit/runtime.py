"""The composition root: one database, its stores, the audit log, engines, audited sessions.

The CLI, the dashboard and the notebooks build one :class:`Runtime` from one
:class:`~core.settings.Settings` and take everything from it; nothing here decides
anything about faces or records. Engines are cached per configuration so models
load once per process.
"""

from __future__ import annotations

import threading

from audit.audited import AuditedEngine
from audit.session import AuditContext, AuditSession
from audit.trail.log import AuditLog
from core.config import ModelConfig
from core.engine import DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, Engine, default_config
from core.errors import ConfigMismatch
from core.gallery import GalleryStore
from core.settings import Settings
from core.storage import Database
from core.thresholds import ThresholdStore, apply_default_threshold

__all__ = ["Runtime"]


class Runtime:
    """The objects one process needs to work on one database.

    Parameters
    ----------
    settings
        The deployment's settings (default: read from the environment); a string is
        taken as the database path, with every other setting from the environment.
    """

    def __init__(self, settings: Settings | str | None = None) -> None:
        if settings is None or isinstance(settings, str):
            settings = Settings.from_env().with_db(settings)
        self.settings = settings
        self.db = Database(settings.db)
        self.galleries = GalleryStore(self.db)
        self.thresholds = ThresholdStore(self.db)
        self._engines: dict[tuple[str, str, str], Engine] = {}
        self._lock = threading.Lock()
        self._log: AuditLog | None = None

    @property
    def log(self) -> AuditLog:
        """The audit log of this database (signing key per :attr:`Settings.audit_key`)."""
        with self._lock:
            if self._log is None:
                self._log = AuditLog(self.db, key_path=self.settings.audit_key)
            return self._log

    def context(self, operator: str | None = None, purpose: str | None = None, case_ref: str | None = None,
                legal_basis: str | None = None) -> AuditContext:
        """An audit context: the values given, else the settings' (``FACETRAIL_OPERATOR`` ...)."""
        s = self.settings
        return AuditContext(operator or s.operator, purpose or s.purpose, case_ref or s.case_ref,
                            legal_basis or s.legal_basis)

    def session(self, context: AuditContext) -> AuditSession:
        """The gate for actions run for ``context``."""
        return AuditSession(self.log, context)

    def audited(self, engine: Engine, context: AuditContext) -> AuditedEngine:
        """``engine`` behind the audit trail, acting for ``context``."""
        return AuditedEngine(self.session(context), engine, self.galleries)

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
        GalleryNotFound
            No such gallery.
        ConfigMismatch
            The gallery was enrolled under other weights or library versions than installed here.
        """
        key, config = self.galleries.binding(name)
        engine = self.engine(config["model"], config["detector"], config["alignment"])
        if engine.config.embedding_key != key:
            raise ConfigMismatch(
                f"gallery {name!r} was enrolled under configuration {key} "
                f"({config.get('versions')}); the installed {engine.config.name} is "
                f"{engine.config.embedding_key} ({dict(engine.config.versions)}); re-enrol the gallery"
            )
        return engine

    def close(self) -> None:
        """Close the database connection (a file database reopens on next use)."""
        self.db.close()
