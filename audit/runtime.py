"""The composition root: one database, its stores, the audit log, accounts, engines, audited sessions.

The CLI, the dashboard and the notebooks build one :class:`Runtime` from one
:class:`~core.settings.Settings` and take everything from it; nothing here decides
anything about faces or records. Engines are cached per configuration so models
load once per process.

Who acts is always an authenticated :class:`~audit.accounts.Actor`. A single-user
process (the CLI, a notebook) signs its runtime in once: :meth:`Runtime.sign_in`
(a password read at run time), :meth:`Runtime.authenticate` (a token, e.g.
``FACETRAIL_TOKEN``) or :meth:`Runtime.use_token` (checked at the first action, so
that a refusal is recorded against that action); :meth:`Runtime.session` and
:meth:`Runtime.audited` then act for that actor. A server with many users (the
dashboard) never signs its runtime in and passes each request's actor explicitly.
"""

from __future__ import annotations

import threading

from audit.access import AccountService
from audit.accounts import Actor, AuthMethod, NotAuthenticated
from audit.audited import AuditedEngine
from audit.session import SIGN_IN_HINT, AuditContext, AuditSession
from audit.trail.log import AuditLog
from core.config import ModelConfig
from core.engine import DEFAULT_ALIGNMENT, DEFAULT_DETECTOR, Engine, default_config
from core.errors import ConfigMismatch
from core.gallery import GalleryStore
from core.settings import Settings
from core.storage import Database
from core.thresholds import ThresholdStore, apply_default_threshold, apply_search_threshold

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
        self._engines: dict[tuple[str, tuple[str, ...], str, bool], Engine] = {}
        self._lock = threading.Lock()
        self._log: AuditLog | None = None
        self._accounts: AccountService | None = None
        self._actor: Actor | None = None
        self._pending_token: str | None = None
        self._unauthenticated: str | None = None
        self.sign_in_hint = SIGN_IN_HINT

    @property
    def log(self) -> AuditLog:
        """The audit log of this database (signing key per :attr:`Settings.audit_key`)."""
        with self._lock:
            if self._log is None:
                self._log = AuditLog(self.db, key_path=self.settings.audit_key, settings=self.settings)
            return self._log

    @property
    def accounts(self) -> AccountService:
        """Sign-in, sessions, API tokens and account changes on this database (recorded in its log)."""
        log = self.log
        with self._lock:
            if self._accounts is None:
                self._accounts = AccountService(self.db, log, self.settings)
            return self._accounts

    # -- who acts -------------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, *, method: AuthMethod = "password_session") -> Actor:
        """Sign this runtime in as ``name`` (recorded); its sessions then act for that account.

        Raises
        ------
        SignInRefused, LockedOut, AccountDisabled
            As :meth:`audit.access.AccountService.sign_in` (the refusal is recorded).
        """
        actor = self.accounts.sign_in(name, password, method=method)
        self._actor, self._pending_token, self._unauthenticated = actor, None, None
        return actor

    def authenticate(self, token: str) -> Actor:
        """Act for the account of a session or API token (``FACETRAIL_TOKEN``, say), checked now.

        Raises
        ------
        NotAuthenticated
            The token is unknown, expired, revoked or its account disabled.
        """
        actor = self.accounts.authenticate(token)
        self._actor, self._pending_token, self._unauthenticated = actor, None, None
        return actor

    def use_token(self, token: str | None, *, hint: str | None = None, unauthenticated: str | None = None) -> None:
        """Act for ``token``'s account, checked at the first action (whose refusal is then recorded).

        Parameters
        ----------
        token
            A session or API token (``None``: nobody is signed in).
        hint
            How to sign in on this interface, said when an action is refused for want of it.
        unauthenticated
            Why there is no token, when known (a saved session file that cannot be used, say).
        """
        self._actor, self._pending_token, self._unauthenticated = None, token, unauthenticated
        self.accounts.unauthenticated = unauthenticated
        if hint is not None:
            self.sign_in_hint = hint
            self.accounts.hint = hint

    def actor(self) -> Actor | None:
        """Return the account this runtime acts for (``None``: not signed in, or its token is no longer live)."""
        if self._actor is None and self._pending_token is not None:
            token, self._pending_token = self._pending_token, None
            try:
                self._actor = self.accounts.authenticate(token)
            except NotAuthenticated as err:
                self._unauthenticated = self.accounts.unauthenticated = str(err)
        return self._actor

    def sign_out(self) -> None:
        """Sign this runtime's actor out (recorded) and forget it.

        Raises
        ------
        NotAuthenticated
            Not signed in, or the session is no longer live (refused and recorded).
        """
        actor = self.actor()
        if actor is None:  # refused (with the reason, and recorded) by the gate
            actor = self.session(AuditContext(purpose="sign-in")).check("sign_out")
        self._actor = None
        self.accounts.sign_out(actor)

    # -- audited work ---------------------------------------------------------------------------

    def context(self, operator: str | None = None, purpose: str | None = None, case_ref: str | None = None,
                legal_basis: str | None = None) -> AuditContext:
        """Return an audit context: the values given, else the settings' (``FACETRAIL_PURPOSE`` ...).

        ``operator`` (default ``$FACETRAIL_OPERATOR``) is only a claim: an action is refused
        unless it names the signed-in account; the recorded operator is always that account.
        """
        s = self.settings
        return AuditContext(purpose=purpose or s.purpose, case_ref=case_ref or s.case_ref,
                            legal_basis=legal_basis or s.legal_basis, claimed_operator=operator or s.operator)

    def session(self, context: AuditContext | None = None, actor: Actor | None = None, *,
                log: AuditLog | None = None) -> AuditSession:
        """Return the gate for actions of ``actor`` (default: this runtime's signed-in actor) for ``context``.

        ``log`` is where the records go (default: this runtime's log; another one on the same
        database, opened with another signing key file, say).
        """
        who = actor if actor is not None else self.actor()
        return AuditSession(log or self.log, context if context is not None else self.context(), who,
                            credentials=self.accounts.credentials,
                            unauthenticated=None if who is not None else self._unauthenticated,
                            hint=self.sign_in_hint)

    def audited(self, engine: Engine, context: AuditContext | None = None, actor: Actor | None = None
                ) -> AuditedEngine:
        """``engine`` behind the audit trail, acting for ``actor`` (default: this runtime's) and ``context``."""
        return AuditedEngine(self.session(context, actor), engine, self.galleries)

    def config(
        self,
        model: str = "Dlib",
        detector: str = DEFAULT_DETECTOR,
        alignment: str = DEFAULT_ALIGNMENT,
        *,
        fallback_detectors: tuple[str, ...] | None = None,
        mirror_average: bool | None = None,
    ) -> ModelConfig:
        """Return the configuration for these names, with its default (calibrated if possible) threshold.

        ``fallback_detectors`` and ``mirror_average`` as in :func:`core.default_config`
        (``None``: the defaults for this detector and alignment).
        """
        config = default_config(
            model, detector, alignment, fallback_detectors=fallback_detectors, mirror_average=mirror_average
        )
        return apply_default_threshold(config, self.thresholds)

    def engine(
        self,
        model: str = "Dlib",
        detector: str = DEFAULT_DETECTOR,
        alignment: str = DEFAULT_ALIGNMENT,
        fallback_detectors: tuple[str, ...] | None = None,
        mirror_average: bool | None = None,
    ) -> Engine:
        """Return a cached engine for these names (models load on first use); ``None``: the default cascade and mirror setting."""
        config = self.config(
            model, detector, alignment, fallback_detectors=fallback_detectors, mirror_average=mirror_average
        )
        key = (model, config.detectors, alignment, config.mirror_average)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = Engine(config)
                self._engines[key] = engine
            elif engine.config != config:  # a new calibration landed
                engine = engine.with_config(config)
                self._engines[key] = engine
            return engine

    def engine_for_gallery(self, name: str) -> Engine:
        """Return the engine whose embeddings are comparable with gallery ``name``.

        Its default threshold is the FPIR calibration for this gallery (or its size) when
        one exists (:func:`core.thresholds.apply_search_threshold`), else the 1:1 default.

        Raises
        ------
        GalleryNotFound
            No such gallery.
        ConfigMismatch
            The gallery was enrolled under other weights or library versions than installed here.
        """
        key, config = self.galleries.binding(name)
        engine = self.engine(  # a gallery made before cascades and mirror averaging existed has neither
            config["model"],
            config["detector"],
            config["alignment"],
            tuple(config.get("fallback_detectors") or ()),
            bool(config.get("mirror_average", False)),
        )
        if engine.config.embedding_key != key:
            raise ConfigMismatch(
                f"gallery {name!r} was enrolled under configuration {key} "
                f"({config.get('versions')}); the installed {engine.config.name} is "
                f"{engine.config.embedding_key} ({dict(engine.config.versions)}); re-enrol the gallery"
            )
        ref = self.galleries.ref(name)
        searching = apply_search_threshold(engine.config, self.thresholds, ref.size, ref.fingerprint)
        return engine if searching == engine.config else engine.with_config(searching)

    def close(self) -> None:
        """Close the database connection (a file database reopens on next use)."""
        self.db.close()
