"""Local accounts and roles, stored in the facetrail database.

Four roles, one per account:

* ``operator``: runs searches and verifications (always with a purpose and a case reference);
* ``reviewer``: confirms or rejects matches of other people's queries (two-person rule);
* ``auditor``: reads the audit log, evaluations and exports, runs integrity checks; cannot search;
* ``admin``: manages galleries and accounts.

Passwords are stored as argon2id hashes (``argon2-cffi``), never in clear. The
signed-in account's name is the operator or reviewer of every record made
through the dashboard. Nothing here imports streamlit: the CLI uses it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.storage.connection import Database
from core.errors import BadInput, NotFound

__all__ = ["ROLES", "PERMISSIONS", "Role", "User", "UserStore", "can"]

Role = Literal["operator", "reviewer", "auditor", "admin"]

#: Every role, in the order the dashboard lists them.
ROLES: tuple[Role, ...] = ("operator", "reviewer", "auditor", "admin")

#: What each role may do. Pages ask :func:`can` (or name roles directly) before rendering.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "search": frozenset({"operator"}),
    "verify": frozenset({"operator"}),
    "review": frozenset({"reviewer"}),
    "read_log": frozenset({"reviewer", "auditor"}),
    "read_evaluations": frozenset({"operator", "reviewer", "auditor", "admin"}),
    "export": frozenset({"auditor"}),
    "integrity": frozenset({"auditor", "admin"}),
    "manage_galleries": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
    "overview": frozenset({"operator", "reviewer", "auditor", "admin"}),
}

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
_MIN_PASSWORD = 8

def can(role: str, action: str) -> bool:
    """Return whether ``role`` may perform ``action`` (a key of :data:`PERMISSIONS`)."""
    return role in PERMISSIONS[action]


@dataclass(frozen=True)
class User:
    """A signed-in (or listed) account. Never carries the password hash."""

    name: str
    """Account name; recorded as operator or reviewer."""
    role: Role
    """One of :data:`ROLES`."""
    created_at: str = ""
    """UTC creation time (ISO 8601)."""

    def can(self, action: str) -> bool:
        """Return whether this account may perform ``action``."""
        return can(self.role, action)

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "role": self.role, "created_at": self.created_at}


class UserStore:
    """Accounts in the ``users`` table of a facetrail database.

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
        """Create an account.

        Raises
        ------
        BadInput
            Bad name, unknown role, too short a password, or the name is taken.
        """
        if not _NAME.match(name or ""):
            raise BadInput(
                f"user name {name!r} must be 2-40 characters: lowercase letters, digits, '_', '-', '.', "
                "starting with a letter"
            )
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if len(password or "") < _MIN_PASSWORD:
            raise BadInput(f"the password must have at least {_MIN_PASSWORD} characters")
        digest = self.hasher.hash(password)
        with self.db.connect(transaction=True) as con:
            if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
                raise BadInput(f"a user named {name!r} already exists")
            con.execute("INSERT INTO users (name, role, password_hash) VALUES (?, ?, ?)", [name, role, digest])
        return self.get(name)

    def get(self, name: str) -> User:
        """Return one account.

        Raises
        ------
        NotFound
            No account has that name.
        """
        with self.db.connect() as con:
            rows = con.execute("SELECT name, role, created_at FROM users WHERE name = ?", [name]).fetchall()
        if not rows:
            raise NotFound(f"no user named {name!r} (see `facetrail users list`)")
        return self._user(rows[0])

    def exists(self, name: str) -> bool:
        """Return whether an account of that name exists."""
        with self.db.connect() as con:
            return bool(con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall())

    def list(self) -> list[User]:
        """Every account, by name."""
        with self.db.connect() as con:
            rows = con.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()
        return [self._user(r) for r in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """Return the account if ``password`` is its password, else ``None``.

        An unknown name costs the same hash verification as a wrong password, so
        response time does not reveal which account names exist.
        """
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT name, role, created_at, password_hash FROM users WHERE name = ?", [name or ""]
            ).fetchall()
        if not rows:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash("facetrail-no-such-user")
            self._verify(self._dummy_hash, password or "")
            return None
        if not self._verify(rows[0][3], password or ""):
            return None
        return self._user(rows[0][:3])

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _user(row: Iterable[object]) -> User:
        name, role, created = tuple(row)
        created_text = created.isoformat() if hasattr(created, "isoformat") else str(created)
        return User(str(name), cast(Role, str(role)), created_text)
