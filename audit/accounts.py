"""Accounts, roles and credentials, stored in the facetrail database; the authenticated :class:`Actor`.

Four roles, one per account:

* ``operator``: runs searches and verifications (always with a purpose and a case reference);
* ``reviewer``: confirms or rejects matches of other people's queries (two-person rule);
* ``auditor``: reads the audit log, evaluations and exports, runs integrity checks and evaluations;
  cannot search;
* ``admin``: manages galleries, accounts and API tokens, calibrates thresholds.

What each role may do is :data:`PERMISSIONS`; :data:`ACTION_PERMISSIONS` says which
permission each audited action needs, and the gate (:class:`audit.session.AuditSession`)
checks it for every interface.

An :class:`Actor` is an authenticated account: its name, its role, and how it
authenticated (:data:`AUTH_METHODS`: a ``password_session`` from ``facetrail login``
or :meth:`audit.runtime.Runtime.sign_in`, a ``dashboard_session`` from the sign-in
page, an ``api_token`` an admin issued for a script). It carries the credential's
secret so that the gate can check, at every action, that the credential is still
live (not expired, idle, revoked, or its account disabled): an Actor made by hand,
without a secret the database knows, is refused.

Names are compared and stored normalised (:func:`normalize_name`: NFKC, case folded,
runs of whitespace made one space, trimmed), so ``"Operator3 "`` is ``operator3`` and
two accounts cannot differ only in case or spacing. Passwords are argon2id hashes
(``argon2-cffi``); a credential's secret is stored only as its SHA-256.

This module is the storage layer (:class:`UserStore`, :class:`CredentialStore`,
:class:`LockoutStore`) and the types; :mod:`audit.access` is the service that signs
people in and changes accounts, each step recorded in the trail. Nothing here
imports streamlit: the CLI uses it too.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from audit.errors import AuditError
from core.errors import BadInput, NotFound
from core.storage.connection import Database

__all__ = [
    "ACTION_PERMISSIONS",
    "AUTH_METHODS",
    "PERMISSIONS",
    "ROLES",
    "AccountDisabled",
    "Actor",
    "AuthMethod",
    "Credential",
    "CredentialStore",
    "Forbidden",
    "LockedOut",
    "LockoutStore",
    "NotAuthenticated",
    "OperatorMismatch",
    "Role",
    "SignInRefused",
    "User",
    "UserStore",
    "can",
    "check_account_change",
    "normalize_name",
    "permission_for",
]

Role = Literal["operator", "reviewer", "auditor", "admin"]

#: Every role, in the order the dashboard lists them.
ROLES: tuple[Role, ...] = ("operator", "reviewer", "auditor", "admin")

#: What each role may do. The gate checks the permission of every audited action
#: (:data:`ACTION_PERMISSIONS`); dashboard pages ask :func:`can` before rendering.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "search": frozenset({"operator"}),
    "verify": frozenset({"operator"}),
    "review": frozenset({"reviewer"}),
    "read_log": frozenset({"reviewer", "auditor"}),
    "read_evaluations": frozenset({"operator", "reviewer", "auditor", "admin"}),
    "evaluate": frozenset({"auditor", "admin"}),
    "calibrate": frozenset({"admin"}),
    "export": frozenset({"auditor"}),
    "report": frozenset({"auditor"}),
    "integrity": frozenset({"auditor", "admin"}),
    "manage_galleries": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
    "overview": frozenset({"operator", "reviewer", "auditor", "admin"}),
    "audit_reviewers": frozenset({"auditor"}),  # blind batches with fillers, reviewers' own error rates
}

#: The permission each audited action needs (``None``: any authenticated account, e.g. to sign
#: out). An action missing here is refused: a new action must say who may run it.
ACTION_PERMISSIONS: dict[str, str | None] = {
    "search": "search",
    "search_video": "search",
    "threshold_policy": "manage_galleries",  # admins set how loose operators may search (audit.policy)
    "verify": "verify",
    "review": "review",
    "blind_review": "review",
    "blind_serve": "review",
    "blind_batch": "audit_reviewers",
    "blind_reveal": "audit_reviewers",
    "review_rates": "audit_reviewers",
    "enroll": "manage_galleries",
    "delete": "manage_galleries",
    "create_gallery": "manage_galleries",
    "drop_gallery": "manage_galleries",
    "export": "export",
    "report": "report",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
    "add_user": "manage_users",
    "list_users": "manage_users",
    "change_role": "manage_users",
    "disable_user": "manage_users",
    "enable_user": "manage_users",
    "issue_token": "manage_users",
    "list_tokens": "manage_users",
    "revoke_token": "manage_users",
    "mark_demo": "manage_users",
    "change_password": None,  # one's own; another account's needs manage_users (audit.access)
    "sign_out": None,
    "evidence": "integrity",  # destroying review evidence that is due (audit.evidence)
    "read_evidence": "read_log",  # the photos of a review: probe and reference (audit.reviewing)
    "retention": "integrity",  # facetrail retention run (audit.privacy)
    "retention_schedule": "manage_galleries",  # admins set a gallery's retention schedule (audit.retention)
}

AuthMethod = Literal["password_session", "dashboard_session", "api_token"]

#: How an actor authenticated: ``facetrail login`` / ``Runtime.sign_in``, the dashboard, an API token.
AUTH_METHODS: tuple[AuthMethod, ...] = ("password_session", "dashboard_session", "api_token")

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
_MIN_PASSWORD = 8
_TOKEN_PREFIX = "ft_"


def normalize_name(name: str) -> str:
    """Return ``name`` as accounts are compared and stored: NFKC, case folded, single spaces, trimmed.

    ``"Operator3 "``, ``"operator3"`` and ``"ＯＰＥＲＡＴＯＲ３"`` are all ``"operator3"``.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def can(role: str, action: str) -> bool:
    """Return whether ``role`` has permission ``action`` (a key of :data:`PERMISSIONS`)."""
    return role in PERMISSIONS[action]


def permission_for(action: str) -> str | None:
    """Return the permission audited ``action`` needs (see :data:`ACTION_PERMISSIONS`).

    Raises
    ------
    KeyError
        The action has no entry: nobody may run it until one is added.
    """
    try:
        return ACTION_PERMISSIONS[action]
    except KeyError:
        raise KeyError(f"audited action {action!r} has no entry in audit.accounts.ACTION_PERMISSIONS") from None


# -- errors ---------------------------------------------------------------------------------------------


class NotAuthenticated(AuditError):
    """No authenticated account: not signed in, or the session or token expired or was revoked."""

    code = "not_authenticated"


class SignInRefused(NotAuthenticated):
    """A sign-in failed: unknown account or wrong password (which of the two is not said)."""

    code = "bad_credentials"


class LockedOut(SignInRefused):
    """Too many failed sign-ins in a row for this account name: sign-in is locked for a while."""

    code = "locked_out"


class AccountDisabled(SignInRefused):
    """The account is disabled."""

    code = "account_disabled"


class Forbidden(AuditError):
    """The authenticated account's role may not do this."""

    code = "forbidden"


class OperatorMismatch(AuditError):
    """An ``--operator``/``--reviewer`` given with an action names another account than the signed-in one."""

    code = "operator_mismatch"


# -- types ----------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(float(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Actor:
    """An authenticated account: who is accountable for what is done through it."""

    name: str
    """Normalised account name; recorded as the operator (or reviewer) of every action."""
    role: Role
    """The account's role when the credential was last checked."""
    method: AuthMethod
    """How it authenticated (one of :data:`AUTH_METHODS`)."""
    credential_id: str
    """Public id of the session or token (recorded; never the secret)."""
    expires_at: str
    """When the credential expires at the latest (UTC, ISO 8601)."""
    token: str = field(repr=False, compare=False)
    """The credential's secret (given once to its holder; the database keeps only its SHA-256)."""

    def can(self, action: str) -> bool:
        """Return whether this actor's role has permission ``action``."""
        return can(self.role, action)

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready dict (without the secret)."""
        return {"name": self.name, "role": self.role, "method": self.method, "credential_id": self.credential_id,
                "expires_at": self.expires_at}

    def auth_fields(self) -> dict[str, str]:
        """Return what a record says about how its actor authenticated (``details.auth``)."""
        return {"method": self.method, "credential": self.credential_id}


@dataclass(frozen=True)
class User:
    """A listed account. Never carries the password hash."""

    name: str
    """Account name (normalised); recorded as operator or reviewer."""
    role: Role
    """One of :data:`ROLES`."""
    created_at: str = ""
    """UTC creation time (ISO 8601)."""
    disabled: bool = False
    """Whether the account is disabled (it cannot sign in; its sessions and tokens are refused)."""
    last_sign_in: str | None = None
    """When it last signed in (UTC, ISO 8601; None: never, or not asked: :meth:`UserStore.list`)."""

    def can(self, action: str) -> bool:
        """Return whether this account may perform ``action``."""
        return can(self.role, action)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "role": self.role, "created_at": self.created_at, "disabled": self.disabled,
                "last_sign_in": self.last_sign_in}


@dataclass(frozen=True)
class Credential:
    """A session or API token as listed (never its secret)."""

    id: str
    """Public id (``ses_...`` for a session, ``tok_...`` for an API token)."""
    user: str
    """The account it authenticates."""
    kind: AuthMethod
    """``password_session``, ``dashboard_session`` or ``api_token``."""
    label: str | None
    """What it is for (API tokens)."""
    created_by: str
    """Who issued it (the account itself for a sign-in, the admin for an API token)."""
    created_at: str
    """UTC, ISO 8601."""
    expires_at: str
    """Absolute expiry, UTC."""
    last_used_at: str
    """Last use, UTC."""
    idle_seconds: float | None
    """Idle time after which it expires (None: no idle limit, API tokens)."""
    revoked_at: str | None
    """When it was signed out or revoked (None: never)."""
    revoked_by: str | None
    """Who revoked it."""
    status: str
    """``active``, ``expired``, ``idle`` or ``revoked`` (when listed)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


# -- storage --------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    key = normalize_name(name or "")
    if not _NAME.match(key):
        raise BadInput(
            f"user name {name!r} must be 2-40 characters: letters, digits, '_', '-', '.', starting with a letter "
            "(names are compared without regard to case)"
        )
    return key


def _check_password(password: str) -> None:
    if len(password or "") < _MIN_PASSWORD:
        raise BadInput(f"the password must have at least {_MIN_PASSWORD} characters")


def check_account_change(action: str, by: str, target: User, enabled_admins: Iterable[str],
                         role: str | None = None) -> None:
    """Refuse an account change that would leave nobody, or only its author, in charge.

    ``by`` (an admin) changes ``target`` with ``action`` (``change_role`` to ``role``,
    ``disable_user``, ...). Refused:

    - disabling one's own account, or changing one's own role: another admin must do it,
      so no admin can quietly step out of the trail's accountability or give themselves
      a role (a reviewer's, say) to act under;
    - disabling or demoting the last enabled admin: nobody could manage accounts again.

    The two-person rule of reviews (:mod:`audit.trail.review`) goes by account name, so a
    role change cannot let anyone review their own query.

    Raises
    ------
    BadInput
        With the rule that refuses the change.
    """
    removes_admin = action == "disable_user" or (action == "change_role" and role != "admin")
    if removes_admin and target.role == "admin" and not target.disabled and list(enabled_admins) == [target.name]:
        raise BadInput(f"{action} refused: {target.name!r} is the last enabled admin; make another admin first")
    if target.name == by and action in ("disable_user", "change_role"):
        what = "disable their own account" if action == "disable_user" else "change their own role"
        raise BadInput(f"{action} refused: an admin cannot {what}; another admin must do it")


def _check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise BadInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


class UserStore:
    """Accounts in the ``users`` table (storage only: :class:`audit.access.AccountService` records changes).

    Parameters
    ----------
    db
        The database.
    hasher
        The argon2 hasher (defaults to argon2-cffi's recommended argon2id parameters).
    """

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def add(self, name: str, role: str, password: str) -> User:
        """Create an account (the name is stored normalised).

        Raises
        ------
        BadInput
            Bad name, unknown role, too short a password, or the name (normalised) is taken.
        """
        key = _check_name(name)
        _check_role(role)
        _check_password(password)
        digest = self.hasher.hash(password)
        with self.db.connect(transaction=True) as con:
            if con.execute("SELECT 1 FROM users WHERE name = ?", [key]).fetchall():
                raise BadInput(f"a user named {key!r} already exists")
            con.execute("INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?)", [key, role, digest])
        return self.get(key)

    def get(self, name: str) -> User:
        """Return one account.

        Raises
        ------
        NotFound
            No account has that (normalised) name.
        """
        key = normalize_name(name or "")
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT name, role, created_at, disabled_at FROM users WHERE name = ?", [key]
            ).fetchall()
        if not rows:
            raise NotFound(f"no user named {key!r} (see `facetrail users list`)")
        return self._user(rows[0])

    def exists(self, name: str) -> bool:
        """Return whether an account of that (normalised) name exists."""
        with self.db.connect() as con:
            return bool(con.execute("SELECT 1 FROM users WHERE name = ?", [normalize_name(name or "")]).fetchall())

    def count(self) -> int:
        """Return the number of accounts."""
        with self.db.connect() as con:
            row = con.execute("SELECT count(*) FROM users").fetchone()
        return int(row[0]) if row else 0

    def enabled_admins(self) -> builtins.list[str]:
        """Names of the enabled admin accounts."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT name FROM users WHERE role = 'admin' AND disabled_at IS NULL ORDER BY name"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def list(self) -> builtins.list[User]:
        """Every account, by name, with its last sign-in (its newest sign-in session; API tokens do not count)."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT u.name, u.role, u.created_at, u.disabled_at, max(c.created_at) FROM users u "
                "LEFT JOIN auth_credentials c ON c.user_name = u.name AND c.kind <> 'api_token' "
                "GROUP BY ALL ORDER BY u.name").fetchall()
        return [replace(self._user(r[:4]), last_sign_in=_iso(r[4])) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """Return the account (disabled or not) if ``password`` is its password, else ``None``.

        An unknown name costs the same hash verification as a wrong password, so
        response time does not reveal which account names exist.
        """
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT name, role, created_at, disabled_at, password_hash FROM users WHERE name = ?",
                [normalize_name(name or "")],
            ).fetchall()
        if not rows:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash("facetrail-no-such-user")
            self._verify(self._dummy_hash, password or "")
            return None
        if not self._verify(rows[0][4], password or ""):
            return None
        return self._user(rows[0][:4])

    def set_role(self, name: str, role: str) -> User:
        """Change an account's role.

        Raises
        ------
        BadInput
            Unknown role.
        NotFound
            No such account.
        """
        _check_role(role)
        user = self.get(name)
        with self.db.connect() as con:
            con.execute("UPDATE users SET role = ? WHERE name = ?", [role, user.name])
        return self.get(user.name)

    def set_password(self, name: str, password: str) -> User:
        """Replace an account's password.

        Raises
        ------
        BadInput
            Too short a password.
        NotFound
            No such account.
        """
        _check_password(password)
        user = self.get(name)
        digest = self.hasher.hash(password)
        with self.db.connect() as con:
            con.execute("UPDATE users SET password_hash = ?, password_changed_at = now() WHERE name = ?",
                        [digest, user.name])
        return self.get(user.name)

    def set_disabled(self, name: str, disabled: bool) -> User:
        """Disable or enable an account.

        Raises
        ------
        NotFound
            No such account.
        """
        user = self.get(name)
        with self.db.connect() as con:
            con.execute("UPDATE users SET disabled_at = CASE WHEN ? THEN now() END WHERE name = ?",
                        [disabled, user.name])
        return self.get(user.name)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _user(row: Iterable[object]) -> User:
        name, role, created, disabled = tuple(row)
        created_text = created.isoformat() if isinstance(created, datetime) else str(created)
        return User(str(name), cast(Role, str(role)), created_text, disabled is not None)


_CREDENTIAL_COLUMNS = (
    "c.id, c.user_name, c.kind, c.label, c.created_by, c.created_at, c.expires_at, c.last_used_at, "
    "c.idle_seconds, c.revoked_at, c.revoked_by"
)


class CredentialStore:
    """Sessions and API tokens in ``auth_credentials``: issued, resolved to an :class:`Actor`, revoked.

    A credential's secret (``ft_`` + 43 URL-safe characters, 256 random bits) is returned
    once, in the :class:`Actor`; the table keeps its SHA-256. It expires at ``expires_at``
    whatever happens, and, with an idle limit (sessions), once unused for that long.

    Parameters
    ----------
    db
        The database.
    clock
        Returns the current time (UTC, aware); tests pass a fake one.
    """

    def __init__(self, db: Database, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.clock = clock or _utc_now
        self._recent: dict[str, tuple[Actor, float, float]] = {}

    def issue(self, user: User, kind: AuthMethod, *, lifetime: timedelta, idle: timedelta | None,
              created_by: str, label: str | None = None) -> Actor:
        """Create a credential for ``user`` and return it as an :class:`Actor` holding the secret."""
        if kind not in AUTH_METHODS:
            raise ValueError(f"unknown credential kind {kind!r}")
        now = self.clock()
        secret = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        credential_id = ("tok_" if kind == "api_token" else "ses_") + secrets.token_hex(8)
        expires = now + lifetime
        with self.db.connect() as con:
            con.execute(
                "INSERT INTO auth_credentials (id, secret_sha256, user_name, kind, label, created_by, created_at, "
                "expires_at, idle_seconds, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [credential_id, _digest(secret), user.name, kind, label, created_by, now, expires,
                 None if idle is None else idle.total_seconds(), now],
            )
        return Actor(user.name, user.role, kind, credential_id, _iso(expires) or "", secret)

    def resolve(self, token: str, *, max_age: float = 0.0) -> Actor:
        """Return the live credential's actor (with the account's current role); note its use.

        Parameters
        ----------
        token
            The credential's secret.
        max_age
            Accept this process's own check of the same credential made at most this many
            seconds ago (the gate checks before every action; a burst of actions costs one
            read). Revocations and account changes made through this process take effect at
            once; those made by another process within ``max_age``.

        Raises
        ------
        NotAuthenticated
            Not a facetrail token, unknown here, signed out or revoked, expired (absolute or
            idle), or its account disabled; the message says which.
        """
        if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX):
            raise NotAuthenticated("that is not a facetrail session or API token")
        digest = _digest(token)
        recent = self._recent.get(digest)
        checked = time.monotonic()
        now = self.clock()
        if recent is not None and checked - recent[1] <= max_age and now.timestamp() < recent[2]:
            return recent[0]
        with self.db.connect() as con:
            row = con.execute(
                "SELECT c.id, c.user_name, c.kind, epoch(c.expires_at), epoch(c.last_used_at), c.idle_seconds, "
                "epoch(c.revoked_at), u.role, u.disabled_at IS NOT NULL FROM auth_credentials c "
                "LEFT JOIN users u ON u.name = c.user_name WHERE c.secret_sha256 = ?",
                [digest],
            ).fetchone()
            if row is None:
                raise NotAuthenticated("unknown session or token (signed out and forgotten, or for another database)")
            cid, user, kind, expires, last_used, idle, revoked, role, disabled = row
            what, at = f"{_kind_text(kind)} {cid}", now.timestamp()
            if revoked is not None:
                raise NotAuthenticated(f"the {what} was signed out or revoked at {_iso_epoch(revoked)}")
            if at >= expires:
                raise NotAuthenticated(f"the {what} expired at {_iso_epoch(expires)}")
            if idle is not None and at - last_used > idle:
                raise NotAuthenticated(f"the {what} expired after {idle / 60:g} minutes without activity")
            if role is None or disabled:
                raise NotAuthenticated(f"account {user!r} is disabled")
            if at - last_used > min(60.0, (idle or 600.0) / 10):
                con.execute("UPDATE auth_credentials SET last_used_at = ? WHERE id = ?", [now, cid])
        actor = Actor(str(user), cast(Role, str(role)), cast(AuthMethod, str(kind)), str(cid), _iso_epoch(expires),
                      token)
        self._recent[digest] = (actor, checked, float(expires))
        return actor

    def forget(self) -> None:
        """Forget this process's recent checks (after a revocation or an account change)."""
        self._recent.clear()

    def revoke(self, credential_id: str, by: str, reason: str) -> Credential:
        """Revoke one credential (signing out is revoking one's own session).

        Raises
        ------
        NotFound
            No credential has that id.
        """
        with self.db.connect() as con:
            con.execute(
                "UPDATE auth_credentials SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                [self.clock(), by, reason, credential_id],
            )
        self.forget()
        return self.get(credential_id)

    def revoke_all(self, user: str, by: str, reason: str, *, kinds: tuple[AuthMethod, ...] = AUTH_METHODS,
                   keep: str | None = None) -> builtins.list[str]:
        """Revoke every live credential of ``user`` of these kinds (but ``keep``); return their ids."""
        live = [c.id for c in self.list(user=user) if c.revoked_at is None and c.kind in kinds and c.id != keep]
        for credential_id in live:
            self.revoke(credential_id, by, reason)
        return live

    def get(self, credential_id: str) -> Credential:
        """Return one credential.

        Raises
        ------
        NotFound
            No credential has that id.
        """
        with self.db.connect() as con:
            rows = con.execute(f"SELECT {_CREDENTIAL_COLUMNS} FROM auth_credentials c WHERE c.id = ?",
                               [credential_id]).fetchall()
        if not rows:
            raise NotFound(f"no session or token with id {credential_id!r} (see `facetrail tokens list`)")
        return self._credential(rows[0], self.clock())

    def list(self, *, user: str | None = None, kinds: tuple[AuthMethod, ...] = AUTH_METHODS) -> builtins.list[Credential]:
        """Credentials (all states), newest first; only ``user``'s and of ``kinds`` if given."""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT {_CREDENTIAL_COLUMNS} FROM auth_credentials c WHERE (? IS NULL OR c.user_name = ?) "
                "AND list_contains(?, c.kind) ORDER BY c.created_at DESC, c.id",
                [user, user, list(kinds)],
            ).fetchall()
        now = self.clock()
        return [self._credential(r, now) for r in rows]

    @staticmethod
    def _credential(row: Iterable[Any], now: datetime) -> Credential:
        cid, user, kind, label, by, created, expires, last_used, idle, revoked, revoked_by = tuple(row)
        if revoked is not None:
            status = "revoked"
        elif now >= expires:
            status = "expired"
        elif idle is not None and (now - last_used).total_seconds() > float(idle):
            status = "idle"
        else:
            status = "active"
        return Credential(
            id=str(cid), user=str(user), kind=cast(AuthMethod, str(kind)), label=label, created_by=str(by),
            created_at=_iso(created) or "", expires_at=_iso(expires) or "", last_used_at=_iso(last_used) or "",
            idle_seconds=None if idle is None else float(idle), revoked_at=_iso(revoked), revoked_by=revoked_by,
            status=status,
        )


def _kind_text(kind: str) -> str:
    return "API token" if kind == "api_token" else "session"


class LockoutStore:
    """Failed sign-ins in a row per (normalised) name, known account or not, and the lockouts they cause.

    Parameters
    ----------
    db
        The database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def locked_until(self, name: str, now: datetime) -> datetime | None:
        """When the lockout of ``name`` ends, if it is locked at ``now``."""
        with self.db.connect() as con:
            rows = con.execute("SELECT locked_until FROM signin_failures WHERE name = ?", [name]).fetchall()
        until = rows[0][0] if rows else None
        return until if until is not None and until > now else None

    def fail(self, name: str, now: datetime, max_failures: int, lockout: timedelta) -> tuple[int, datetime | None]:
        """Count a failed sign-in of ``name``; return the failures in a row and the lockout's end, if one began.

        A run of failures is forgotten once ``lockout`` has passed since the last one (or
        since a lockout ended), so a lockout lasts ``lockout`` and then allows
        ``max_failures`` more tries.
        """
        with self.db.connect() as con:
            rows = con.execute("SELECT failures, last_failed_at, locked_until FROM signin_failures WHERE name = ?",
                               [name]).fetchall()
            failures = 0
            if rows:
                count, last, until = rows[0]
                stale = now - last > lockout or (until is not None and until <= now)
                failures = 0 if stale else int(count)
            failures += 1
            locked = now + lockout if failures >= max_failures else None
            if rows:
                con.execute("UPDATE signin_failures SET failures = ?, last_failed_at = ?, locked_until = ? "
                            "WHERE name = ?", [failures, now, locked, name])
            else:
                con.execute("INSERT INTO signin_failures (name, failures, last_failed_at, locked_until) "
                            "VALUES (?, ?, ?, ?)", [name, failures, now, locked])
        return failures, locked

    def clear(self, name: str) -> None:
        """Forget the failures (and any lockout) of ``name``."""
        with self.db.connect() as con:
            con.execute("DELETE FROM signin_failures WHERE name = ?", [name])
