"""Who may act: sign-in, sessions, API tokens and account changes, each one a record in the trail.

:class:`AccountService` is the one way to sign in and to change accounts, for the
CLI, the dashboard and the Python API:

- :meth:`~AccountService.sign_in` checks a password (argon2) and opens a session (a
  secret for the holder; the database keeps its SHA-256) that expires after
  ``Settings.session_hours`` and after ``Settings.session_minutes`` without use. A
  failed sign-in is counted per name (known account or not, so the answer does not
  reveal which names exist); ``Settings.signin_max_failures`` in a row lock the name
  for ``Settings.signin_lockout_minutes``, even for the right password. Sign-ins,
  failed ones (``refused``, with the name tried) and lockouts are recorded.
- :meth:`~AccountService.authenticate` turns a session or API token back into an
  :class:`~audit.accounts.Actor`; :meth:`~AccountService.sign_out` revokes it (recorded).
- Account changes (create, role, password, disable/enable) and API tokens for scripts
  (issue, list, revoke) need an admin's session (``manage_users``), except the very
  first account, which must be an admin, and one's own password. Each change and its
  record commit in one transaction; each refusal is recorded. Disabling an account or
  changing its password revokes its sessions; the last enabled admin cannot be
  disabled or demoted, and no admin can disable their own account or change their own
  role (:func:`audit.accounts.check_account_change`).

The database can be marked as the demo's (:meth:`~AccountService.mark_demo`): only
then does the sign-in page show the demo accounts' password scheme.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher

from audit.accounts import (
    AccountDisabled,
    Actor,
    AuthMethod,
    Credential,
    CredentialStore,
    LockedOut,
    LockoutStore,
    SignInRefused,
    User,
    UserStore,
    check_account_change,
    normalize_name,
)
from audit.errors import AuditError
from audit.session import SIGN_IN_HINT, AuditContext, Audited, AuditSession
from audit.trail.log import AuditEntry, AuditLog
from core.errors import BadInput
from core.settings import Settings
from core.storage.connection import Database

__all__ = ["AccountService", "IssuedToken"]

_DEMO_MARK = "demo"
_ADMINISTRATION = "account administration"
_SIGN_IN = "sign-in"


@dataclass(frozen=True)
class IssuedToken:
    """An API token just issued: the secret (shown once) and the credential as listed."""

    token: str
    """The secret to give the script (``FACETRAIL_TOKEN``); never stored in clear."""
    credential: Credential
    """Its id, account, label and expiry."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, secret included (for the one time it is shown)."""
        return {"token": self.token, **self.credential.to_dict()}


class AccountService:
    """Sign-in, sessions, API tokens and account changes on one database, recorded in its trail.

    Parameters
    ----------
    db
        The database (accounts and credentials).
    log
        The audit trail every sign-in, change and refusal goes to.
    settings
        Session lifetimes, lockout and token defaults (default: from the environment).
    hasher
        The argon2 hasher (tests pass a fast one).
    clock
        Returns the current UTC time (tests pass a fake one).
    """

    def __init__(self, db: Database, log: AuditLog, settings: Settings | None = None, *,
                 hasher: PasswordHasher | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.log = log
        self.settings = settings or Settings.from_env()
        self.users = UserStore(db, hasher)
        self.credentials = CredentialStore(db, clock)
        self.lockouts = LockoutStore(db)
        self.hint = SIGN_IN_HINT
        """How to sign in on this interface (said when an action is refused for want of it)."""
        self.unauthenticated: str | None = None
        """Why this process has no actor, when it tried (the CLI's saved session expired, say)."""
        self._lock = threading.Lock()

    def session(self, actor: Actor | None, purpose: str = _ADMINISTRATION) -> AuditSession:
        """Return the gate for account actions of ``actor``."""
        return AuditSession(self.log, AuditContext(purpose=purpose), actor, credentials=self.credentials,
                            unauthenticated=self.unauthenticated if actor is None else None, hint=self.hint)

    def _forget(self, _: object = None) -> None:
        """After an account change: this process's recent credential checks no longer hold."""
        self.credentials.forget()

    # -- signing in and out -------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, *, method: AuthMethod = "password_session") -> Actor:
        """Check ``name``'s password and open a session; record the sign-in, or the refusal.

        Raises
        ------
        LockedOut
            Too many failed sign-ins in a row for this name (the right password too is refused until then).
        AccountDisabled
            The password is right but the account is disabled.
        SignInRefused
            Unknown account or wrong password (not said which).
        """
        if method == "api_token":
            raise ValueError("an API token is issued by an admin (issue_token), not by signing in")
        key = normalize_name(name or "")
        with self._lock, self.log.transaction():  # the check, the count and the records commit together
            outcome, details = self._try_sign_in(key, password, method)
            if isinstance(outcome, AuditError):
                self.session(None, _SIGN_IN).refuse("sign_in", outcome.code, str(outcome), details)
        if isinstance(outcome, AuditError):
            raise outcome
        return outcome

    def _try_sign_in(self, key: str, password: str, method: AuthMethod) -> tuple[Actor | AuditError, dict[str, Any]]:
        """Inside the sign-in transaction: the lockout, the password, the count; the session and its record."""
        s = self.settings
        now = self.credentials.clock()
        details: dict[str, Any] = {"account": key[:100], "method": method}
        locked = self.lockouts.locked_until(key, now)
        if locked is not None:
            return LockedOut(f"sign-in for {key!r} is locked after too many failed attempts, "
                             f"until {locked:%Y-%m-%d %H:%M:%S} UTC"), details
        user = self.users.authenticate(key, password)
        if user is None:
            failures, until = self.lockouts.fail(key, now, s.signin_max_failures,
                                                 timedelta(minutes=s.signin_lockout_minutes))
            details["failures_in_a_row"] = failures
            text = "unknown account or wrong password"
            if until is not None:
                details["locked_until"] = f"{until:%Y-%m-%dT%H:%M:%SZ}"
                text += (f"; sign-in for {key!r} is now locked for {s.signin_lockout_minutes:g} minutes "
                         f"({failures} failures in a row)")
            return SignInRefused(text), details
        if user.disabled:
            return AccountDisabled(f"account {key!r} is disabled; an admin can enable it"), details
        self.lockouts.clear(key)
        actor = self.credentials.issue(user, method, lifetime=timedelta(hours=s.session_hours),
                                       idle=timedelta(minutes=s.session_minutes), created_by=user.name)
        self.session(actor, _SIGN_IN).record("sign_in", {"details": {
            "method": method, "expires_at": actor.expires_at, "idle_minutes": s.session_minutes}})
        return actor, details

    def authenticate(self, token: str) -> Actor:
        """Return the actor a live session or API token stands for (its account's current role).

        Raises
        ------
        NotAuthenticated
            Unknown, expired, idle, revoked, or its account disabled (the message says which).
        """
        return self.credentials.resolve(token)

    def sign_out(self, actor: Actor) -> AuditEntry:
        """Revoke ``actor``'s session (or token) and record the sign-out.

        Raises
        ------
        NotAuthenticated
            The session is no longer live (nothing to sign out; the refusal is recorded).
        """
        gate = self.session(actor, _SIGN_IN)
        done = gate.check("sign_out")

        def call() -> Credential:
            return self.credentials.revoke(done.credential_id, done.name, "signed out")

        return gate.run("sign_out", call, lambda c: {"details": {"credential_id": c.id, "kind": c.kind}},
                        lambda _: {"details": {"credential_id": done.credential_id}}, atomic=self.log.transaction).entry

    # -- accounts ----------------------------------------------------------------------------------

    def add_user(self, actor: Actor | None, name: str, role: str, password: str) -> Audited[User]:
        """Create an account: an admin's act, except the very first account (which must be an admin).

        Raises
        ------
        NotAuthenticated, Forbidden
            Accounts exist and ``actor`` is not a live admin session (refused and recorded).
        BadInput
            Bad name, role or password, or the name is taken (recorded as a failed ``add_user``);
            a first account that is not an admin (refused and recorded).
        """
        key = normalize_name(name or "")
        asked = {"account": key[:100], "role": role}
        with self._lock:
            if actor is None and self.users.count() == 0:
                return self._first_account(key, role, password, asked)
            gate = self.session(actor)
            gate.check("add_user", asked)
            return gate.run("add_user", lambda: self.users.add(key, role, password),
                            lambda u: {"details": {"account": u.name, "role": u.role}},
                            lambda _: {"details": asked}, atomic=self.log.transaction)

    def _first_account(self, key: str, role: str, password: str, asked: dict[str, Any]) -> Audited[User]:
        """Bootstrap: with no account at all, whoever runs facetrail creates the first admin (recorded)."""
        gate = self.session(None)
        if role != "admin":
            reason = (f"there is no account yet: the first one must be an admin "
                      f"(facetrail users add NAME --role admin), not a {role}")
            gate.refuse("add_user", BadInput.code, reason, asked)
            raise BadInput(reason)

        def call() -> User:
            if self.users.count():  # counted inside the transaction: there is one first admin
                raise BadInput("another account was created meanwhile: sign in as an admin to add accounts")
            return self.users.add(key, role, password)

        return gate.run("add_user", call,
                        lambda u: {"details": {"account": u.name, "role": u.role, "first_account": True}},
                        lambda _: {"details": {**asked, "first_account": True}}, atomic=self.log.transaction)

    def list_users(self, actor: Actor | None) -> list[User]:
        """Every account (an admin's view; a refusal is recorded).

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session.
        """
        self.session(actor).check("list_users")
        return self.users.list()

    def set_role(self, actor: Actor | None, name: str, role: str) -> Audited[User]:
        """Change an account's role (admins; its sessions carry the new role from their next action).

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        BadInput, NotFound
            Unknown role or account; demoting the last enabled admin (recorded as a failed ``change_role``).
        """
        key = normalize_name(name or "")
        asked = {"account": key[:100], "role": role}
        gate = self.session(actor)
        done = gate.check("change_role", asked)
        previous: list[str] = []

        def call() -> User:
            target = self.users.get(key)
            check_account_change("change_role", done.name, target, self.users.enabled_admins(), role)
            previous.append(target.role)
            return self.users.set_role(key, role)

        with self._lock:
            return gate.run("change_role", call,
                            lambda u: {"details": {"account": u.name, "role": u.role, "previous_role": previous[0]}},
                            lambda _: {"details": asked}, atomic=self.log.transaction, after_commit=self._forget)

    def set_password(self, actor: Actor | None, name: str, password: str, *,
                     current_password: str | None = None) -> Audited[User]:
        """Change a password: one's own (with the current one), or any account's as an admin.

        The account's other sign-in sessions are revoked (API tokens stay; revoke them separately).

        Raises
        ------
        NotAuthenticated
            ``actor`` is not a live session (refused and recorded).
        Forbidden
            Another account's password, and ``actor`` is not an admin (refused and recorded).
        SignInRefused
            One's own password, and ``current_password`` is missing or wrong (refused and recorded).
        BadInput, NotFound
            Too short a password, or no such account (recorded as a failed ``change_password``).
        """
        key = normalize_name(name or "")
        asked = {"account": key[:100]}
        gate = self.session(actor)
        done = gate.check("change_password", asked)
        own = key == done.name
        if not own:
            done = gate.check("change_password", asked, permission="manage_users")
        elif current_password is None or self.users.authenticate(key, current_password) is None:
            reason = "change_password refused: the current password is missing or wrong"
            gate.refuse("change_password", SignInRefused.code, reason, asked)
            raise SignInRefused(reason)

        def call() -> tuple[User, list[str]]:
            user = self.users.set_password(key, password)
            return user, self.credentials.revoke_all(user.name, done.name, "password changed",
                                                     kinds=("password_session", "dashboard_session"),
                                                     keep=done.credential_id if own else None)

        out = gate.run("change_password", call,
                       lambda r: {"details": {"account": r[0].name, "own": own, "sessions_revoked": r[1]}},
                       lambda _: {"details": asked}, atomic=self.log.transaction, after_commit=self._forget)
        return Audited(out.result[0], out.entry)

    def set_disabled(self, actor: Actor | None, name: str, disabled: bool) -> Audited[User]:
        """Disable an account (revoking its sessions and tokens) or enable it again (clearing any lockout).

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        BadInput, NotFound
            No such account, or disabling the last enabled admin (recorded as a failed action).
        """
        action = "disable_user" if disabled else "enable_user"
        key = normalize_name(name or "")
        asked = {"account": key[:100]}
        gate = self.session(actor)
        done = gate.check(action, asked)

        def call() -> tuple[User, list[str]]:
            target = self.users.get(key)
            if disabled:
                check_account_change(action, done.name, target, self.users.enabled_admins())
                user = self.users.set_disabled(key, True)
                return user, self.credentials.revoke_all(user.name, done.name, "account disabled")
            self.lockouts.clear(target.name)
            return self.users.set_disabled(key, False), []

        with self._lock:
            out = gate.run(action, call, lambda r: {"details": {"account": r[0].name, "credentials_revoked": r[1]}},
                           lambda _: {"details": asked}, atomic=self.log.transaction, after_commit=self._forget)
        return Audited(out.result[0], out.entry)

    # -- API tokens --------------------------------------------------------------------------------

    def issue_token(self, actor: Actor | None, user: str, *, label: str | None = None,
                    days: float | None = None) -> Audited[IssuedToken]:
        """Issue an API token for ``user`` (admins): for scripts, revocable, expiring after ``days``.

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        BadInput, NotFound
            A lifetime that is not positive, or no such (enabled) account (refused and recorded).
        """
        key = normalize_name(user or "")
        lifetime = self.settings.token_days if days is None else days
        asked = {"account": key[:100], "label": label, "days": lifetime}
        gate = self.session(actor)
        done = gate.check("issue_token", asked)

        def call() -> IssuedToken:
            if not lifetime > 0:
                raise BadInput(f"a token's lifetime must be a positive number of days, got {lifetime!r}")
            target = self.users.get(key)
            if target.disabled:
                raise BadInput(f"account {key!r} is disabled: enable it before issuing it a token")
            issued = self.credentials.issue(target, "api_token", lifetime=timedelta(days=lifetime), idle=None,
                                            created_by=done.name, label=label)
            return IssuedToken(issued.token, self.credentials.get(issued.credential_id))

        return gate.run("issue_token", call,
                        lambda t: {"details": {"account": t.credential.user, "credential_id": t.credential.id,
                                               "label": label, "expires_at": t.credential.expires_at}},
                        lambda _: {"details": asked}, atomic=self.log.transaction)

    def list_tokens(self, actor: Actor | None, *, user: str | None = None,
                    include_sessions: bool = False) -> list[Credential]:
        """List API tokens (and with ``include_sessions`` sign-in sessions), newest first (admins).

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        """
        self.session(actor).check("list_tokens")
        kinds: tuple[AuthMethod, ...] = (
            ("api_token", "password_session", "dashboard_session") if include_sessions else ("api_token",))
        return self.credentials.list(user=None if user is None else normalize_name(user), kinds=kinds)

    def revoke_token(self, actor: Actor | None, credential_id: str) -> Audited[Credential]:
        """Revoke an API token or a session by its id (admins); it is refused from its next use.

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        NotFound
            No credential has that id (refused and recorded).
        """
        asked = {"credential_id": credential_id}
        gate = self.session(actor)
        done = gate.check("revoke_token", asked)

        def call() -> Credential:
            self.credentials.get(credential_id)  # NotFound for an unknown id
            return self.credentials.revoke(credential_id, done.name, "revoked by an admin")

        return gate.run("revoke_token", call,
                        lambda c: {"details": {"credential_id": c.id, "account": c.user, "kind": c.kind}},
                        lambda _: {"details": asked}, atomic=self.log.transaction)

    # -- the demo mark -----------------------------------------------------------------------------

    def mark_demo(self, actor: Actor | None) -> None:
        """Mark this database as the demo's (an admin's act): its sign-in page may show the demo passwords.

        Raises
        ------
        NotAuthenticated, Forbidden
            ``actor`` is not a live admin session (refused and recorded).
        """
        self.session(actor).check("mark_demo")
        with self.db.connect() as con:
            con.execute("INSERT INTO database_marks (name, value) VALUES (?, 'true') ON CONFLICT DO NOTHING",
                        [_DEMO_MARK])

    def is_demo(self) -> bool:
        """Whether ``facetrail demo`` built this database (only then may its demo passwords be shown)."""
        with self.db.connect() as con:
            return bool(con.execute("SELECT 1 FROM database_marks WHERE name = ?", [_DEMO_MARK]).fetchall())
