"""facetrail's settings: every ``FACETRAIL_*`` environment variable is read here, and only here.

:meth:`Settings.from_env` reads them once into a frozen :class:`Settings`; the
composition root (:class:`audit.runtime.Runtime`) is built from one and hands the
values down explicitly. Each field says its variable and its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["PROJECT_ROOT", "Settings"]

#: The project folder (``data/`` lives beside ``core/``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """One deployment's settings."""

    db: str = str(PROJECT_ROOT / "data" / "facetrail.duckdb")
    """``FACETRAIL_DB``: the database file (``:memory:`` for a throw-away one)."""
    models_dir: Path = PROJECT_ROOT / "data" / "models"
    """``FACETRAIL_MODELS``: the model folder (deepface's home: ``<it>/.deepface/weights``)."""
    audit_key: Path | None = None
    """``FACETRAIL_AUDIT_KEY``: the audit signing key file (default: derived from the database path)."""
    data_dir: Path | None = None
    """``FACETRAIL_DATA``: the folder with the demo's datasets (default: ``../shared/datasets``)."""
    operator: str | None = None
    """``FACETRAIL_OPERATOR``: who runs engine commands (CLI default)."""
    purpose: str | None = None
    """``FACETRAIL_PURPOSE``: why (CLI default)."""
    case_ref: str | None = None
    """``FACETRAIL_CASE``: the case reference (CLI default)."""
    legal_basis: str | None = None
    """``FACETRAIL_LEGAL_BASIS``: the legal basis (CLI default)."""
    session_minutes: float = 30.0
    """``FACETRAIL_SESSION_MINUTES``: idle minutes before a dashboard session signs out."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``FACETRAIL_*`` variables (unset or empty ones keep their defaults).

        Raises
        ------
        ValueError
            A variable holds a value of the wrong kind (the message names it).
        """
        env = os.environ if environ is None else environ
        base = cls()

        def text(name: str) -> str | None:
            value = env.get(name)
            return value if value else None

        minutes = text("FACETRAIL_SESSION_MINUTES")
        try:
            session_minutes = float(minutes) if minutes is not None else base.session_minutes
        except ValueError as err:
            raise ValueError(f"FACETRAIL_SESSION_MINUTES={minutes!r} is not a number of minutes") from err
        if not session_minutes > 0:
            raise ValueError(f"FACETRAIL_SESSION_MINUTES={minutes!r} must be a positive number of minutes")
        models = _path(text("FACETRAIL_MODELS"))
        return cls(
            db=text("FACETRAIL_DB") or base.db,
            models_dir=models.resolve() if models else base.models_dir,
            audit_key=_path(text("FACETRAIL_AUDIT_KEY")),
            data_dir=_path(text("FACETRAIL_DATA")),
            operator=text("FACETRAIL_OPERATOR"),
            purpose=text("FACETRAIL_PURPOSE"),
            case_ref=text("FACETRAIL_CASE"),
            legal_basis=text("FACETRAIL_LEGAL_BASIS"),
            session_minutes=session_minutes,
        )

    def with_db(self, db: str | os.PathLike[str] | None) -> Settings:
        """Return a copy on another database (``None``: unchanged)."""
        return self if db is None else replace(self, db=str(db))
