"""The engine, the audit trail and the CLI-side dashboard modules never import streamlit."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_audit_leave_streamlit_out() -> None:
    code = (
        "import sys, core, audit, audit.trail.log, audit.audited, audit.evaluation.evaluate, audit.trail.export, "
        "audit.accounts, dashboard.demo, audit.runtime, dashboard.cli.common, dashboard.cli.app, dashboard.web.views; "
        "bad = sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
