"""What every page shares: the cached runtime, the signed-in account, role checks.

Resources (the :class:`~audit.runtime.Runtime` with its database, stores, engines
and account service) are built once per server process with ``st.cache_resource``
and never mutated by pages. The runtime is never signed in itself: each browser
session signs in (:func:`sign_in`, recorded in the trail) and keeps its own
:class:`~audit.accounts.Actor`, which pages pass to every audited call; the audited
service checks that actor's session and role again at every action.

A session ends when its user signs out, after ``Settings.session_minutes`` without
activity, or ``Settings.session_hours`` after sign-in (both checked against the
database at every page run, so a session an admin revoked, or of an account since
disabled, ends at the next click).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import streamlit as st

from audit import AccountService, Actor, AuditContext, AuditError, EvaluationStore, NotAuthenticated, Runtime
from core import Engine, RecognitionError, Settings, StorageError

__all__ = [
    "ERRORS",
    "PLOT_CONFIG",
    "USER_KEY",
    "accounts",
    "chart",
    "current_user",
    "db_path",
    "evaluations",
    "require",
    "runtime",
    "sign_in",
    "sign_out",
]

#: The only errors pages catch and show (anything else is a bug and propagates).
ERRORS = (RecognitionError, AuditError, StorageError)

#: Plotly options for every chart: no mode bar, no logo.
PLOT_CONFIG = {"displayModeBar": False, "displaylogo": False}

#: Session key of the signed-in :class:`~audit.accounts.Actor` (server-side state; holds the session's secret).
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
    rt = Runtime(settings().with_db(path))
    rt.use_token(None, hint="sign in again on the Sign in page")  # a server's runtime acts for nobody itself
    return rt


@st.cache_resource(show_spinner=False)
def _evaluations(path: str) -> EvaluationStore:
    return EvaluationStore(_runtime(path).db)


def runtime() -> Runtime:
    """Return the process-wide runtime for this server's database."""
    return _runtime(db_path())


def accounts() -> AccountService:
    """Return the account service (sign-in, sessions, account changes; each recorded)."""
    return runtime().accounts


def evaluations() -> EvaluationStore:
    """Return the one evaluation store (runs with dataset, model and date; reports cached per run)."""
    return _evaluations(db_path())


#: Axis, tick and legend text of every chart: 12.6:1 on white (the theme's faded grey was 3.7:1; WCAG AA wants 4.5).
CHART_TEXT = "#333333"


def chart(figure: Any, where: Any = None) -> None:
    """Draw a plotly figure (in ``where``, a column or container; default the page) without the mode bar."""
    figure.update_xaxes(tickfont_color=CHART_TEXT, title_font_color=CHART_TEXT)
    figure.update_yaxes(tickfont_color=CHART_TEXT, title_font_color=CHART_TEXT)
    figure.update_layout(legend_font_color=CHART_TEXT, legend_title_font_color=CHART_TEXT)
    (where or st).plotly_chart(figure, config=PLOT_CONFIG)


def choose_gallery(key: str) -> tuple[Any, Engine]:
    """The gallery the user picks (widget ``key``) and the engine of its configuration.

    Stops the page with a notice when there is no gallery yet, or with the error when the
    gallery's engine cannot be built (a missing model, say).
    """
    rt = runtime()
    galleries = rt.galleries.list()
    if not galleries:
        st.info("No gallery yet. An administrator creates and fills one with `facetrail gallery create` and "
                "`facetrail gallery enroll` (or run `facetrail demo --no-serve`).")
        st.stop()
    name = st.selectbox("Gallery", [g.name for g in galleries], key=key)
    info = next(g for g in galleries if g.name == name)
    try:
        engine = rt.engine_for_gallery(name)
    except ERRORS as err:
        st.error(str(err))
        st.stop()
    config = engine.config
    st.caption(f"{info.size} faces of {info.subjects} subjects · {config.model}/{config.detector}/{config.alignment} · "
               f"fingerprint `{info.fingerprint}`")
    return info, engine


def search_context_inputs(prefix: str) -> AuditContext:
    """Purpose, case and legal-basis fields (inside the caller's form) as the context a search records.

    Empty fields stay empty: the audited service refuses a search without purpose or case
    and records the refusal.
    """
    purpose = st.text_input("Purpose (required)", key=f"{prefix}_purpose",
                            placeholder="e.g. identify a suspect in a burglary investigation")
    case_ref = st.text_input("Case reference (required)", key=f"{prefix}_case", placeholder="e.g. CR-2024-0117")
    legal_basis = st.text_input("Legal basis (optional)", key=f"{prefix}_legal_basis")
    return AuditContext(purpose=purpose.strip() or None, case_ref=case_ref.strip() or None,
                        legal_basis=legal_basis.strip() or None, case_required=True)


def current_user() -> Actor | None:
    """Return this browser session's signed-in account, its session checked now (signing out one that ended)."""
    actor = st.session_state.get(USER_KEY)
    if not isinstance(actor, Actor):
        return None
    now = time.monotonic()
    idle = settings().session_minutes
    if now - st.session_state.get(SEEN_KEY, now) > idle * 60:
        sign_out()
        st.session_state["signin_notice"] = f"Signed out after {idle:g} minutes without activity."
        return None
    try:
        fresh = accounts().authenticate(actor.token)
    except NotAuthenticated as err:  # expired, revoked or disabled: the session is over
        _forget()
        st.session_state["signin_notice"] = f"Signed out: {err}."
        return None
    st.session_state[USER_KEY] = fresh
    st.session_state[SEEN_KEY] = now
    return fresh


def sign_in(name: str, password: str) -> Actor:
    """Sign in (recorded; a failure too) and remember the account in this browser session.

    Raises
    ------
    SignInRefused, LockedOut, AccountDisabled
        As :meth:`audit.access.AccountService.sign_in` (the page shows the message).
    """
    actor = accounts().sign_in(name, password, method="dashboard_session")
    st.session_state[USER_KEY] = actor
    st.session_state[SEEN_KEY] = time.monotonic()
    return actor


def _forget() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def sign_out() -> None:
    """Sign the session out (recorded, and revoked in the database) and forget every page's state."""
    actor = st.session_state.get(USER_KEY)
    if isinstance(actor, Actor):
        try:
            accounts().sign_out(actor)
        except NotAuthenticated:  # it had ended already (expired, revoked): nothing left to revoke
            pass
    _forget()


def require(action: str) -> Actor:
    """Return the signed-in account if its role may do ``action``; otherwise explain and stop the page.

    This runs on the server at the top of every page, whatever the navigation shows; the
    audited service checks the account and its role again for every action a page runs.
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
