"""The dashboard side of the side-by-side test, run as its own process.

``python -m tests.dashboard.web.side_reader DB ROUNDS``: renders the Overview, Match log and
Integrity pages as an auditor ROUNDS times (AppTest) and records one review (or a recorded refusal) per round
from the dashboard side, while another process writes. Prints a JSON summary; exits 1
on any page exception or error shown.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    db, rounds = sys.argv[1], int(sys.argv[2])
    os.environ["FACETRAIL_DB"] = db
    from streamlit.testing.v1 import AppTest

    from audit import AuditContext, AuditFilter, ReviewRefused
    from audit.runtime import Runtime
    from tests.auth import actor_for

    app = str(Path(__file__).resolve().parents[3] / "dashboard" / "web" / "streamlit_app.py")
    runtime = Runtime(db)
    auditor = actor_for(runtime.db, "auditor1", "auditor", method="dashboard_session")
    reviewers = {name: runtime.session(AuditContext(), actor_for(runtime.db, name, "reviewer"))
                 for name in ("reviewer1", "reviewer2")}
    problems: list[str] = []
    reviews = 0
    sizes = []
    for i in range(rounds):
        for page in ("app_pages/overview.py", "app_pages/match_log.py", "app_pages/integrity.py"):
            at = AppTest.from_file(app, default_timeout=120)
            at.session_state["auth_user"] = auditor
            at.run()
            at.switch_page(page).run()
            problems += [f"{page}: exception {e.value}" for e in at.exception]
            problems += [f"{page}: error {e.value}" for e in at.error]
        reviewer = reviewers["reviewer2" if i % 2 else "reviewer1"]
        target = next((e for e in runtime.log.list(AuditFilter(action="search"))
                       if e.record.outcome == "ok" and e.record.candidates), None)
        try:  # from the third round on, a second review by the same reviewer: refused, and recorded all the same
            if target is not None:
                reviewer.review(target.seq, "confirm", note=f"round {i}", face_id=target.record.candidates[0].face_id)
            else:  # nothing reviewable: the refusal is recorded all the same
                reviewer.review(1, "confirm", note=f"round {i}")
        except ReviewRefused:
            pass
        reviews += 1
        sizes.append(runtime.log.size())
    print(json.dumps({"problems": problems, "reviews": reviews, "sizes": sizes}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
