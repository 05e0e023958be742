"""Pages of the facetrail dashboard (each file is one ``st.Page``; shared helpers in ``common``)."""
