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

**Surviving a reload.** Streamlit's session state lives in one websocket connection: a
reload or a bookmark opens a new one, which used to sign the user out. The session now
also lives in a cookie, ``facetrail_session_<database>``, holding the session token
:meth:`AccountService.sign_in` issued (a 256-bit random secret of which the database keeps
only the SHA-256; idle and absolute lifetimes and revocation are checked in the database
at every page run, so the cookie is worth nothing once the session ends, and signing out
revokes it there before the cookie is cleared). Why a cookie and how:

- Not the URL: a token in ``st.query_params`` would be in every address the user copies,
  bookmarks or shares, in the browser history and in proxies' logs. Links here carry only
  what they show (``?record=12``, filters) and never a secret; a link opened elsewhere asks
  to sign in first, then shows what it names.
- Not a server-side store keyed by something the browser sends anyway: there is none
  (Streamlit gives no per-browser id that survives a reload besides cookies).
- Streamlit can read cookies (``st.context.cookies``, sent with the websocket handshake)
  but cannot set them from Python, and an HttpOnly cookie needs an HTTP response the app
  does not control. So the cookie is written by a few lines of script
  (``st.html(..., unsafe_allow_javascript=True)``, once per sign-in) and is therefore not
  HttpOnly: a script injected into the page could read it. The dashboard renders nothing
  user-supplied as markup (which is what keeps such a script out), the cookie is
  ``SameSite=Strict`` (never sent by another site's request), ``Secure`` when the page is
  served over HTTPS, ``Path=/``, and lives at most until the session's absolute expiry.
- Only a dashboard session is taken from the cookie (``method == "dashboard_session"``):
  a long-lived API token planted there is refused, as is any unknown, expired, idle or
  revoked token (the page says which and clears the cookie).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

from audit import (
    AccountService,
    Actor,
    AuditContext,
    AuditedEngine,
    AuditError,
    EvaluationReport,
    EvaluationStore,
    NotAuthenticated,
    Runtime,
)
from core import Engine, RecognitionError, Settings, StorageError

__all__ = [
    "ERRORS",
    "PLOT_CONFIG",
    "USER_KEY",
    "accounts",
    "chart",
    "cookie_name",
    "current_user",
    "db_path",
    "designated_run",
    "evaluations",
    "keep_address",
    "local_time",
    "restore_address",
    "show_time",
    "time_column",
    "utc_time",
    "viewer_zone",
    "require",
    "runtime",
    "sign_in",
    "sign_out",
    "session_cookie",
]

#: The only errors pages catch and show (anything else is a bug and propagates).
ERRORS = (RecognitionError, AuditError, StorageError)

#: Plotly options for every chart: no mode bar, no logo.
PLOT_CONFIG = {"displayModeBar": False, "displaylogo": False}

#: Session key of the signed-in :class:`~audit.accounts.Actor` (server-side state; holds the session's secret).
USER_KEY = "auth_user"
#: Session key of the last activity time (monotonic seconds).
SEEN_KEY = "auth_last_seen"
#: Session key of the cookie change the next run writes: ``"set"`` after a sign-in, ``"clear"`` after a sign-out.
COOKIE_KEY = "auth_cookie_change"
#: Session key of the tokens this browser session already gave up (the handshake's cookies are not re-read).
SPENT_KEY = "auth_cookie_spent"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,200}")


def settings() -> Settings:
    """Return this server's settings (every ``FACETRAIL_*`` variable, read by :meth:`Settings.from_env`)."""
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


def readable(figure: Any) -> Any:
    """Return ``figure`` with its axis, title and legend text at AA contrast (:data:`CHART_TEXT`).

    Set property by property (every x and y axis), which plotly does in about half the time
    of its ``update_*`` calls' path parsing (the figure is the same).
    """
    layout = figure.layout
    axes = [getattr(layout, name) for name in layout if name.startswith(("xaxis", "yaxis"))] or [layout.xaxis,
                                                                                                layout.yaxis]
    for axis in axes:
        axis.tickfont.color = CHART_TEXT
        axis.title.font.color = CHART_TEXT
    layout.legend.font.color = CHART_TEXT
    layout.legend.title.font.color = CHART_TEXT
    layout.title.font.color = CHART_TEXT
    return figure


def chart(figure: Any, where: Any = None) -> None:
    """Draw a plotly figure (in ``where``, a column or container; default the page) without the mode bar."""
    (where or st).plotly_chart(readable(figure), config=PLOT_CONFIG)


def choose_gallery(key: str) -> tuple[Any, Engine]:
    """Return the gallery the user picks (widget ``key``) and the engine of its configuration.

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


@dataclass(frozen=True)
class DesignatedRun:
    """The evaluation the deployment designates (audit.policy), as the Search and Verify pages quote it."""

    run_id: str
    report: EvaluationReport
    label: str
    dataset: str


def designated_run(service: AuditedEngine, gallery_name: str | None) -> DesignatedRun | str | None:
    """Return the designated evaluation for ``gallery_name`` (None: every gallery, as Verify asks), or why not.

    That is the run, the error's text when the designated run cannot be used (not stored, or of
    another model configuration), or None when the deployment designates none. Operators never
    pick the evaluation whose rates they are shown.
    """
    try:
        found = service.designated_evaluation(gallery_name)
    except ERRORS as err:
        return str(err)
    if found is None:
        return None
    run_id, report = found
    stored = next(r for r in evaluations().list() if r.run_id == run_id)
    return DesignatedRun(run_id, report, stored.label, stored.dataset)


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


def cookie_name() -> str:
    """Return the session cookie's name for this database (two dashboards on one host keep their own)."""
    return "facetrail_session_" + hashlib.sha256(db_path().encode()).hexdigest()[:12]


def _cookie_token() -> str | None:
    """Return the session token the browser sent with this connection, if any (a reload sends the latest)."""
    value = st.context.cookies.get(cookie_name())
    return value if isinstance(value, str) and _TOKEN_SHAPE.fullmatch(value) else None


def _end(notice: str | None, token: str | None) -> None:
    """Forget this browser session's state, remember ``token`` as spent and have the cookie cleared."""
    spent = set(st.session_state.get(SPENT_KEY, ()))
    _forget()
    if token is not None:
        spent.add(token)
    st.session_state[SPENT_KEY] = spent
    st.session_state[COOKIE_KEY] = "clear"
    if notice:
        st.session_state["signin_notice"] = notice


def _from_cookie() -> Actor | None:
    """Return the account of the cookie's session token if it is a live dashboard session (module docstring)."""
    token = _cookie_token()
    if token is None or token in st.session_state.get(SPENT_KEY, ()):
        return None
    try:
        actor = accounts().authenticate(token)
    except NotAuthenticated as err:  # expired, idle, revoked, disabled, or not ours: said, and the cookie cleared
        _end(f"Signed out: {err}.", token)
        return None
    if actor.method != "dashboard_session":
        _end("Signed out: the cookie held an API token, not a dashboard session; sign in.", token)
        return None
    st.session_state[USER_KEY] = actor
    st.session_state[SEEN_KEY] = time.monotonic()
    return actor


def current_user() -> Actor | None:
    """Return this browser session's signed-in account, its session checked now (signing out one that ended).

    A new browser session (a reload, a bookmark, a link) takes its account from the session cookie.
    """
    actor = st.session_state.get(USER_KEY)
    if not isinstance(actor, Actor):
        return _from_cookie()
    now = time.monotonic()
    idle = settings().session_minutes
    if now - st.session_state.get(SEEN_KEY, now) > idle * 60:
        sign_out()
        st.session_state["signin_notice"] = f"Signed out after {idle:g} minutes without activity."
        return None
    try:
        fresh = accounts().authenticate(actor.token)
    except NotAuthenticated as err:  # expired, revoked or disabled: the session is over
        _end(f"Signed out: {err}.", actor.token)
        return None
    st.session_state[USER_KEY] = fresh
    st.session_state[SEEN_KEY] = now
    return fresh


def sign_in(name: str, password: str) -> Actor:
    """Sign in (recorded; a failure too), remember the account in this browser session and in its cookie.

    Raises
    ------
    SignInRefused, LockedOut, AccountDisabled
        As :meth:`audit.access.AccountService.sign_in` (the page shows the message).
    """
    actor = accounts().sign_in(name, password, method="dashboard_session")
    st.session_state[USER_KEY] = actor
    st.session_state[SEEN_KEY] = time.monotonic()
    st.session_state[COOKIE_KEY] = "set"
    return actor


def _forget() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def sign_out() -> None:
    """Sign the session out (recorded, and revoked in the database), forget every page's state, clear the cookie."""
    actor = st.session_state.get(USER_KEY)
    if isinstance(actor, Actor):
        try:
            accounts().sign_out(actor)
        except NotAuthenticated:  # it had ended already (expired, revoked): nothing left to revoke
            pass
    _end(None, actor.token if isinstance(actor, Actor) else _cookie_token())


def _cookie_script(value: str, max_age: int) -> str:
    secure = "(location.protocol === 'https:' ? '; Secure' : '')"
    return (f"<script>document.cookie = {json.dumps(cookie_name())} + '=' + {json.dumps(value)} + "
            f"'; Path=/; SameSite=Strict; Max-Age={int(max_age)}' + {secure};</script>")


def session_cookie(user: Actor | None) -> None:
    """Write the cookie change a sign-in or sign-out asked for (call once per run, after :func:`current_user`).

    After a sign-in the cookie gets the session token until the session's absolute expiry;
    after a sign-out (or a session found ended) it is cleared. The browser keeps it for the
    next connection; this one goes on with the state it has.
    """
    change = st.session_state.pop(COOKIE_KEY, None)
    if change == "set" and user is not None and _TOKEN_SHAPE.fullmatch(user.token):
        left = datetime.fromisoformat(user.expires_at) - datetime.now(UTC)
        script = _cookie_script(user.token, max(0, int(left.total_seconds())))
    elif change == "clear" or (user is None and _cookie_token() is not None):
        script = _cookie_script("", 0)
    else:
        return
    st.html(script, unsafe_allow_javascript=True)


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


# -- times: the viewer's local time, UTC on hover ------------------------------------------------------------------

#: Session key of the viewer's time zone: ``(IANA name, None)``, or ``("UTC", why)`` when it cannot be used.
ZONE_KEY = "viewer_zone"
#: How every time is written (the zone's abbreviation follows).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def viewer_zone() -> tuple[str, str | None]:
    """Return the viewer's time zone (an IANA name) and, when it cannot be used, why UTC is shown instead.

    Read once per browser session from the browser (``st.context.timezone``, sent with the
    websocket handshake) into the session state. A browser that sends none, or a zone this
    server's tz database does not know, gets UTC, and the pages say so (never silently).
    """
    kept = st.session_state.get(ZONE_KEY)
    if isinstance(kept, tuple) and len(kept) == 2:
        return kept
    name = st.context.timezone
    if not isinstance(name, str) or not name:
        found: tuple[str, str | None] = ("UTC", "your browser did not say its time zone")
    else:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            found = ("UTC", f"your browser's time zone {name!r} is unknown to this server")
        else:
            found = (name, None)
    st.session_state[ZONE_KEY] = found
    return found


def _stamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)  # records keep ISO 8601 UTC times; a naive one is UTC
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def local_time(value: object) -> str:
    """Return ``value`` (an ISO time, a timestamp) in the viewer's zone: ``2026-12-01 20:15:03 CET``."""
    return str(_stamp(value).tz_convert(viewer_zone()[0]).strftime(TIME_FORMAT + " %Z"))


def utc_time(value: object) -> str:
    """Return ``value`` in UTC: ``2026-12-01 19:15:03 UTC``."""
    return str(_stamp(value).tz_convert("UTC").strftime(TIME_FORMAT)) + " UTC"


def zone_text() -> str:
    """Say which zone the page's times are in: ``Europe/Paris``, or ``UTC (why)``."""
    zone, why = viewer_zone()
    return zone if why is None else f"{zone} ({why})"


def time_column(label: str = "Time") -> Any:
    """Return a table column of times in the viewer's zone (its heading's tooltip: the zone, and that UTC is kept)."""
    zone, _ = viewer_zone()
    return st.column_config.DatetimeColumn(
        f"{label} ({zone})", format="YYYY-MM-DD HH:mm:ss", timezone=zone,
        help=f"In your time zone, {zone_text()}. The audit log records every time in UTC; an opened record shows "
             "its UTC time when you hover its time.")


def show_time(label: str, value: object, where: Any = None) -> None:
    """Show one time as text in the viewer's zone, its UTC time in the tooltip (hover the question mark)."""
    (where or st).text(f"{label}: {local_time(value)}", help=f"{utc_time(value)} (as recorded)")


# -- addresses: a page's query parameters survive moving away and back ---------------------------------------------

#: Session key of each page's last address parameters (url path -> parameters), forgotten at sign-out.
ADDRESS_KEY = "page_addresses"


def keep_address(page: str, params: dict[str, str]) -> None:
    """Write ``params`` (a record, a filter state: never a secret) to the address and remember them for ``page``.

    Streamlit's navigation opens a page with an empty address; :func:`restore_address` then puts
    back what the page last showed, so moving away and back keeps its record and filters (a reload
    or a bookmark carries them in the address itself).
    """
    st.query_params.from_dict(params)
    kept = st.session_state.get(ADDRESS_KEY)
    st.session_state[ADDRESS_KEY] = {**(kept if isinstance(kept, dict) else {}), page: dict(params)}


def restore_address(page: str) -> None:
    """Before ``page`` runs: if it was opened with no address parameters, put back the ones it last kept."""
    kept = st.session_state.get(ADDRESS_KEY)
    if len(st.query_params) == 0 and isinstance(kept, dict) and kept.get(page):
        st.query_params.from_dict(kept[page])
