"""Signed-in accounts for tests: the setup a test needs before it can act, without the slow password hash.

Accounts are created in the store directly (a fixture's setup, not the behaviour under
test) with a fast argon2 hasher, and given a live credential the gate accepts. Tests of
signing in itself go through :class:`audit.access.AccountService` or the real CLI
(``tests/audit/test_accounts.py``, ``tests/dashboard/cli/test_auth_commands.py``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher

from audit.accounts import Actor, AuthMethod, CredentialStore, UserStore
from core.storage.connection import Database

#: argon2id with the smallest cost: hashes in about a millisecond (tests only).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def password_of(name: str) -> str:
    """The password :func:`actor_for` gives an account it creates."""
    return f"{name}-password"


def actor_for(db: Database, name: str, role: str, *, method: AuthMethod = "password_session",
              hours: float = 12.0) -> Actor:
    """A live credential for account ``name`` (created with ``role`` if absent; its role set to ``role``)."""
    users = UserStore(db, hasher=FAST_HASHER)
    user = users.set_role(name, role) if users.exists(name) else users.add(name, role, password_of(name))
    return CredentialStore(db).issue(user, method, lifetime=timedelta(hours=hours),
                                     idle=None if method == "api_token" else timedelta(minutes=30),
                                     created_by=user.name)


def token_for(db_path: str | Path, name: str, role: str) -> str:
    """An API token for account ``name`` of the database file (for ``FACETRAIL_TOKEN`` in CLI subprocesses)."""
    db = Database(str(db_path))
    try:
        return actor_for(db, name, role, method="api_token").token
    finally:
        db.close()


def session_token_for(db_path: str | Path, name: str, role: str) -> str:
    """A sign-in session's token for account ``name`` (what ``facetrail login`` gives; reviews need one)."""
    db = Database(str(db_path))
    try:
        return actor_for(db, name, role).token
    finally:
        db.close()
