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


def _positive(env: Mapping[str, str], name: str, default: float, unit: str, *, integer: bool = False) -> float:
    """Read a positive number (an integer with ``integer``) from ``env[name]``; unset or empty: ``default``.

    Raises
    ------
    ValueError
        The value is not a positive number (of the right kind); the message names the variable.
    """
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError as err:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{name}={raw!r} is not {kind} of {unit}") from err
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name}={raw!r} must be a positive number of {unit}")
    return value


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
    """``FACETRAIL_OPERATOR``: a name the CLI checks against the signed-in account (an action is refused if they
    differ); never recorded as the operator, which is always the signed-in account."""
    purpose: str | None = None
    """``FACETRAIL_PURPOSE``: why (CLI default)."""
    case_ref: str | None = None
    """``FACETRAIL_CASE``: the case reference (CLI default)."""
    legal_basis: str | None = None
    """``FACETRAIL_LEGAL_BASIS``: the legal basis (CLI default)."""
    session_minutes: float = 30.0
    """``FACETRAIL_SESSION_MINUTES``: idle minutes before a session (CLI or dashboard) expires."""
    session_hours: float = 12.0
    """``FACETRAIL_SESSION_HOURS``: absolute lifetime of a session (CLI or dashboard), however active."""
    token_days: float = 90.0
    """``FACETRAIL_TOKEN_DAYS``: default lifetime of an API token an admin issues for scripts."""
    signin_max_failures: int = 5
    """``FACETRAIL_SIGNIN_MAX_FAILURES``: failed sign-ins in a row (per account name) before a lockout."""
    signin_lockout_minutes: float = 15.0
    """``FACETRAIL_SIGNIN_LOCKOUT_MINUTES``: how long a locked-out account name stays locked."""
    token: str | None = None
    """``FACETRAIL_TOKEN``: a session or API token to act with (overrides the CLI's saved session)."""
    config_dir: Path = Path("~/.config/facetrail").expanduser()
    """``FACETRAIL_CONFIG_DIR``: per-user settings and CLI sessions (default ``$XDG_CONFIG_HOME/facetrail``,
    else ``~/.config/facetrail``)."""
    keystore: Path | None = None
    """``FACETRAIL_KEYSTORE``: the key store of per-subject gallery keys (default ``<db file>.keys``; see
    :mod:`core.keystore`)."""
    evaluation_cache_days: float = 30.0
    """``FACETRAIL_EVALUATION_CACHE_DAYS``: days an evaluation embedding is kept in the evaluation cache."""
    log_personal_days: float | None = None
    """``FACETRAIL_LOG_PERSONAL_DAYS``: days the personal fields of an audit record are kept (unset: as long as
    the log); checked against ``log_personal_min_days`` by :mod:`audit.retention`, which refuses a shorter one."""
    log_personal_min_days: float = 183.0
    """``FACETRAIL_LOG_PERSONAL_MIN_DAYS``: the legal minimum the deployer sets for keeping personal fields of
    audit records (default 183 days, six months)."""
    audit_key_dir: Path | None = None
    """``FACETRAIL_AUDIT_KEY_DIR``: the folder of audit signing keys, one per log (``<log id>.key``), never beside
    the database (default ``<config dir>/audit-keys``); ``FACETRAIL_AUDIT_KEY`` names one key file instead."""
    witnesses: tuple[str, ...] = ()
    """``FACETRAIL_WITNESSES``: comma-separated ``URL=VKEY`` pairs of the witnesses the log pushes its
    checkpoints to (``VKEY``: the witness's verifier key, printed by ``facetrail witness serve``)."""
    witness_every: int = 100
    """``FACETRAIL_WITNESS_EVERY``: push the checkpoint to the witnesses every this many records."""
    witness_seconds: float = 60.0
    """``FACETRAIL_WITNESS_SECONDS``: push the checkpoint to the witnesses at least this often (seconds) while the
    log grows."""

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
        config = _path(text("FACETRAIL_CONFIG_DIR"))
        xdg = _path(text("XDG_CONFIG_HOME"))
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
            session_hours=_positive(env, "FACETRAIL_SESSION_HOURS", base.session_hours, "hours"),
            token_days=_positive(env, "FACETRAIL_TOKEN_DAYS", base.token_days, "days"),
            signin_max_failures=int(_positive(env, "FACETRAIL_SIGNIN_MAX_FAILURES", base.signin_max_failures,
                                              "failed sign-ins", integer=True)),
            signin_lockout_minutes=_positive(env, "FACETRAIL_SIGNIN_LOCKOUT_MINUTES", base.signin_lockout_minutes,
                                             "minutes"),
            token=text("FACETRAIL_TOKEN"),
            config_dir=config if config else (xdg / "facetrail" if xdg else base.config_dir),
            keystore=_path(text("FACETRAIL_KEYSTORE")),
            evaluation_cache_days=_positive(env, "FACETRAIL_EVALUATION_CACHE_DAYS", base.evaluation_cache_days,
                                            "days"),
            log_personal_days=(_positive(env, "FACETRAIL_LOG_PERSONAL_DAYS", 1.0, "days")
                               if text("FACETRAIL_LOG_PERSONAL_DAYS") else None),
            log_personal_min_days=_positive(env, "FACETRAIL_LOG_PERSONAL_MIN_DAYS", base.log_personal_min_days,
                                            "days"),
            audit_key_dir=_path(text("FACETRAIL_AUDIT_KEY_DIR")),
            witnesses=tuple(w.strip() for w in (text("FACETRAIL_WITNESSES") or "").split(",") if w.strip()),
            witness_every=int(_positive(env, "FACETRAIL_WITNESS_EVERY", base.witness_every, "records",
                                        integer=True)),
            witness_seconds=_positive(env, "FACETRAIL_WITNESS_SECONDS", base.witness_seconds, "seconds"),
        )

    def with_db(self, db: str | os.PathLike[str] | None) -> Settings:
        """Return a copy on another database (``None``: unchanged)."""
        return self if db is None else replace(self, db=str(db))
