"""facetrail's front ends: the ``facetrail`` command line and the Streamlit dashboard (no business logic)."""
