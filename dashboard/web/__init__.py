"""The Streamlit dashboard: ``streamlit_app.py`` and its pages (they render; they do not compute)."""
