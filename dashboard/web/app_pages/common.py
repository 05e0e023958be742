"""What every page shares: the cached runtime, the signed-in user, role checks.

Resources (the :class:`~audit.runtime.Runtime` with its database, stores and
engines, the account store) are built once per server process with
``st.cache_resource`` and never mutated by pages.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import streamlit as st

from audit import AuditError, EvaluationStore, Runtime, User, UserStore
from core import RecognitionError, Settings, StorageError

__all__ = [
    "ERRORS",
    "PLOT_CONFIG",
    "USER_KEY",
    "chart",
    "current_user",
    "db_path",
    "evaluations",
    "require",
    "runtime",
    "sign_in",
    "sign_out",
    "users",
]

#: The only errors pages catch and show (anything else is a bug and propagates).
ERRORS = (RecognitionError, AuditError, StorageError)

#: Plotly options for every chart: no mode bar, no logo.
PLOT_CONFIG = {"displayModeBar": False, "displaylogo": False}

#: Session key of the signed-in :class:`~audit.accounts.User`.
USER_KEY = "auth_user"
#: Session key of the last activity time (monotonic seconds).
SEEN_KEY = "auth_last_seen"


def settings() -> Settings:
    """This server's settings (every ``FACETRAIL_*`` variable, read by :meth:`Settings.from_env`)."""
    return Settings.from_env()

_ACTION_TEXT = {
    "search": "run searches (operators only)",
    "verify": "run verifications (operators only)",
    "review": "review matches (reviewers only)",
    "read_log": "read the match log (reviewers and auditors)",
    "read_evaluations": "read evaluations",
    "export": "export the audit log (auditors only)",
    "integrity": "run integrity checks (auditors and admins)",
    "manage_users": "manage accounts and galleries (admins only)",
    "overview": "see the overview",
}


def db_path() -> str:
    """Return the database this server works on: ``-- --db PATH``, else ``$FACETRAIL_DB``, else the default."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    return settings().db


@st.cache_resource(show_spinner=False)
def _runtime(path: str) -> Runtime:
    return Runtime(settings().with_db(path))


@st.cache_resource(show_spinner=False)
def _users(path: str) -> UserStore:
    return UserStore(_runtime(path).db)


@st.cache_resource(show_spinner=False)
def _evaluations(path: str) -> EvaluationStore:
    return EvaluationStore(_runtime(path).db)


def runtime() -> Runtime:
    """Return the process-wide runtime for this server's database."""
    return _runtime(db_path())


def users() -> UserStore:
    """Return the account store."""
    return _users(db_path())


def evaluations() -> EvaluationStore:
    """Return the one evaluation store (runs with dataset, model and date; reports cached per run)."""
    return _evaluations(db_path())


def chart(figure: Any, where: Any = None) -> None:
    """Draw a plotly figure (in ``where``, a column or container; default the page) without the mode bar."""
    (where or st).plotly_chart(figure, config=PLOT_CONFIG)


def current_user() -> User | None:
    """Return the signed-in user of this session, if any (signing out a session idle too long)."""
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, User):
        return None
    now = time.monotonic()
    last = st.session_state.get(SEEN_KEY, now)
    idle = settings().session_minutes
    if now - last > idle * 60:
        sign_out()
        st.session_state["signin_notice"] = f"Signed out after {idle:g} minutes without activity."
        return None
    st.session_state[SEEN_KEY] = now
    return user


def sign_in(name: str, password: str) -> User | None:
    """Check the credentials; on success remember the user in this session."""
    user = users().authenticate(name.strip(), password)
    if user is not None:
        st.session_state[USER_KEY] = user
        st.session_state[SEEN_KEY] = time.monotonic()
    return user


def sign_out() -> None:
    """Forget the session's user and every page's state."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def require(action: str) -> User:
    """Return the signed-in user if their role may do ``action``; otherwise explain and stop the page.

    This runs on the server at the top of every page, whatever the navigation shows.
    """
    user = current_user()
    if user is None:
        st.warning("Sign in to use facetrail.")
        st.stop()
    if not user.can(action):
        st.error(f"Access denied: your role ({user.role}) may not {_ACTION_TEXT.get(action, action)}.")
        st.stop()
    return user


@st.cache_data(ttl=10, show_spinner=False)
def _match_statuses(path: str, size: int, seqs: tuple[int, ...]) -> list[dict[str, object]]:
    log = _runtime(path).log
    return [log.match_status(seq).to_dict() for seq in seqs]


def match_statuses(seqs: list[int]) -> list[dict[str, object]]:
    """Two-person-rule status of these queries (``MatchStatus.to_dict()``), cached while the log is unchanged."""
    return _match_statuses(db_path(), runtime().log.size(), tuple(seqs))


@st.cache_data(ttl=30, show_spinner=False)
def _verify(path: str, size: int) -> dict[str, object]:
    return _runtime(path).log.verify().to_dict()


def chain_status() -> dict[str, object]:
    """``VerifyReport.to_dict()`` of the log as it is now (cached briefly per log size)."""
    return _verify(db_path(), runtime().log.size())
