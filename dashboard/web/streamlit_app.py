"""facetrail's dashboard: ``streamlit run dashboard/web/streamlit_app.py -- --db PATH``.

Signed out, the only page is Sign in, at every page's address (so a link such as
``/match_log?record=12`` opens that record once the user has signed in). Signed in, the
navigation lists the pages the user's role may open; each page checks the role again on
the server (``common.require``) before it renders anything. A reload keeps the session
through its cookie (``common``: why a cookie, and why never the URL). A page's address
parameters (the Match log's record and filters) are its own: moving to another page and back
puts them back (``common.keep_address``), and a reload or a bookmark carries them.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.web.app_pages.common import current_user, db_path, restore_address, session_cookie, sign_out

st.set_page_config(page_title="facetrail", page_icon=":material/policy:", layout="wide")

#: (file, title, icon, permission)
PAGES = (
    ("app_pages/overview.py", "Overview", ":material/dashboard:", "overview"),
    ("app_pages/search.py", "Search", ":material/person_search:", "search"),
    ("app_pages/video.py", "Video search", ":material/videocam:", "search"),
    ("app_pages/verify.py", "Verify", ":material/compare:", "verify"),
    ("app_pages/match_log.py", "Match log", ":material/fact_check:", "read_log"),
    ("app_pages/blind_review.py", "Blind review", ":material/visibility_off:", "read_log"),
    ("app_pages/demographics.py", "Demographic performance", ":material/balance:", "read_evaluations"),
    ("app_pages/integrity.py", "Integrity", ":material/verified:", "integrity"),
    ("app_pages/retention.py", "Retention", ":material/auto_delete:", "integrity"),
    ("app_pages/exports.py", "Exports", ":material/download:", "export"),
    ("app_pages/reports.py", "Reports", ":material/summarize:", "report"),
    ("app_pages/admin.py", "Administration", ":material/admin_panel_settings:", "manage_users"),
)

user = current_user()
session_cookie(user)  # a sign-in's cookie set, a sign-out's cleared (common: why a cookie)
if user is None:  # every page's address shows Sign in, so a link (Match log ?record=12) opens after sign-in
    nav = st.navigation([st.Page("app_pages/signin.py", title="Sign in", icon=":material/login:", default=True)] + [
        st.Page("app_pages/signin.py", title="Sign in", url_path=Path(f).stem, visibility="hidden") for f, *_ in PAGES],
        position="hidden")
else:
    allowed = [st.Page(f, title=t, icon=i) for f, t, i, action in PAGES if user.can(action)]
    nav = st.navigation(allowed)
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.caption(f"Database: `{Path(db_path()).name}`", help=db_path())
        if st.button("Sign out", key="app_sign_out", icon=":material/logout:"):
            sign_out()
            st.rerun()
    restore_address(nav.url_path)  # back on a page: its record and filters as it last showed them
nav.run()
