"""Integrity (auditors, admins): verify the hash chain and signed checkpoints; download the public key."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.web.app_pages.common import ERRORS, require, runtime

user = require("integrity")
log = runtime().log
st.title("Integrity of the audit log")
st.caption(
    "Every record is hash-chained to the previous one; signed checkpoints (Ed25519) commit to the Merkle root of "
    "all records so far. Verification recomputes every hash and checks every signature, like `facetrail audit "
    "verify`."
)

if st.button("Verify the audit log now", type="primary", key="integrity_verify"):
    st.session_state["integrity_report"] = log.verify().to_dict()

report = st.session_state.get("integrity_report")
if report is not None:
    if report["ok"]:
        st.success(f"Intact: {report['records']} records and {report['checkpoints']} checkpoints verified up to "
                   f"seq {report['head_seq']} (head `{str(report['head_hash'])[:16]}…`) in {report['seconds']:.3f} s.")
    else:
        st.error(f"Verification FAILED: {report['fault']}")
    with st.expander("Verification report"):
        st.json(report)

st.subheader("Checkpoints")
checkpoints = log.checkpoints()
if checkpoints:
    st.dataframe(pd.DataFrame([{**c.to_dict()} for c in checkpoints]), hide_index=True)
else:
    st.info("No checkpoint signed yet. The log signs them as it grows; you can sign one now.")
if st.button("Sign a checkpoint at the current head", key="integrity_checkpoint"):
    try:
        cp = log.checkpoint()
    except ERRORS as err:
        st.error(str(err))
    else:
        st.success(f"Checkpoint at seq {cp.seq} signed.")

st.subheader("Public key")
try:
    pem = log.public_key_pem()
    st.code(pem, language="text")
    st.caption(f"Fingerprint {log.key_fingerprint()}. Third parties verify excerpts with this key only.")
    st.download_button("Download public key (PEM)", pem, file_name="facetrail-audit-public-key.pem",
                       mime="application/x-pem-file", key="integrity_key_download")
except ERRORS as err:
    st.error(str(err))
