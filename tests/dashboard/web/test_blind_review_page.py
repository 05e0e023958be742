"""AppTest of the Blind review page on the fake scene: what a reviewer is shown, and the auditor's side.

The fake scene has searches of operator1-3 with one candidate each (similarity 0.950000) and
non-blind reviews by reviewer1; auditor1 opens a blind batch over three of them with fillers
from a gallery of volunteers.
"""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from audit import REASON_CODES, AuditContext, AuditFilter, Runtime, blind_batches, open_batch
from audit.evidence import EvidenceStore
from core import EnrollItem
from tests.auth import actor_for
from tests.conftest import make_config
from tests.dashboard.conftest import APP, as_user
from tests.fakes import face_png

PAGE = APP.replace("streamlit_app.py", "app_pages/blind_review.py")
QUERIES = [1, 3, 4]  # searches with outcome ok and one candidate each (face00, face02, face03)


@pytest.fixture
def batch_db(app_env: str, fake_engine) -> str:
    """The fake scene with a volunteers gallery and an open blind batch (3 candidates, 3 fillers)."""
    rt = Runtime(app_env)
    try:
        rt.galleries.create("volunteers", make_config())
        rt.galleries.enroll("volunteers", [EnrollItem(f"vol{k}", fake_engine.embed(face_png(f"vol{k}")), f"v{k}.png")
                                           for k in range(6)])
        auditor = rt.session(AuditContext(), actor_for(rt.db, "auditor1", "auditor"))
        open_batch(auditor, rt.galleries, QUERIES, "volunteers", filler_share=0.5)
    finally:
        rt.close()
    return app_env


def page_as(name: str, role: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth_user"] = as_user(name, role)
    return at.run()


def shown(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.title, *at.subheader, *at.caption, *at.info, *at.warning,
                               *at.error, *at.success)]
    parts += [str(e.label) for e in (*at.radio, *at.text_input, *at.button)]
    return "\n".join(str(p) for p in parts)


def test_the_reviewer_sees_no_score_rank_or_earlier_verdict(batch_db: str) -> None:
    at = page_as("reviewer2", "reviewer")
    assert not at.exception, at.exception
    text = shown(at)
    assert "Item 1 of 6" in text
    assert not at.dataframe and not at.json  # no table of anything
    for hidden in ("0.950000", "0.050000", "0.95", "0.05", "#1", "face0", "Person_", "reviewer1", "confirmed",
                   "rejected", "pending", "operator1", "operator3", "CR-", "arrest_photos", "vol", "seq"):
        assert hidden not in text, hidden  # no score, rank, candidate, verdict, query or case
    assert not re.search(r"rank\W*\d|similarity\W*\d|distance\W*\d", text, re.IGNORECASE)
    assert "No probe photo: not kept" in text and "No reference photo: not kept at enrolment" in text
    radio = at.radio(key="blind_decision")
    assert radio.options == ["confirm", "reject"] and radio.value is None  # no pre-selected answer


def test_the_reviewer_decides_every_item_and_fillers_never_become_matches(batch_db: str) -> None:
    at = page_as("reviewer2", "reviewer")
    for n in range(1, 7):
        assert f"Item {n} of 6" in shown(at)
        at.radio(key="blind_decision").set_value("confirm")
        at.selectbox(key="blind_reason").set_value(REASON_CODES[0])
        at.button[0].click().run()
        assert not at.exception, at.exception
    assert "Nothing to review" in shown(at)
    rt = Runtime(batch_db)
    try:
        decisions = rt.log.list(AuditFilter(action="blind_review"))
        assert len(decisions) == 6
        assert {e.record.details["mode"] for e in decisions} == {"blind"}
        assert {e.record.reviewer for e in decisions} == {"reviewer2"}
        fillers = {i.face_id for i in blind_batches(rt.log)[0].items if i.filler}
        assert len(fillers) == 3
        for seq in QUERIES:
            assert not fillers & {c.face_id for c in rt.log.match_status(seq).candidates}
    finally:
        rt.close()


def test_the_auditor_reveals_and_measures(batch_db: str) -> None:
    at = page_as("reviewer2", "reviewer")
    for _ in range(6):
        at.radio(key="blind_decision").set_value("confirm")
        at.selectbox(key="blind_reason").set_value(REASON_CODES[0])
        at.button[0].click().run()
    audit = page_as("auditor1", "auditor")
    assert not audit.exception, audit.exception
    assert audit.dataframe[0].value["status"].tolist() == ["open"]
    audit.button(key="FormSubmitter:blind_reveal_form-Reveal (close the batch and publish its plan)").click().run()
    assert not audit.exception, audit.exception
    assert any("revealed as audit record" in s.value for s in audit.success)
    assert audit.dataframe[0].value["status"].tolist() == ["revealed"]
    audit.button(key="blind_measure").click().run()
    rates = audit.dataframe[-1].value
    assert rates["reviewer"].tolist() == ["reviewer2"]
    assert rates["false confirms"].tolist() == ["3/3"] and rates["false-confirm rate"].tolist() == [1.0]


def test_an_operator_cannot_open_the_page(batch_db: str) -> None:
    at = page_as("operator1", "operator")
    assert any("Access denied" in e.value for e in at.error)
    assert not at.radio and not at.button


def test_the_auditor_opens_a_batch_on_the_page(app_env: str, fake_engine) -> None:
    rt = Runtime(app_env)
    try:
        rt.galleries.create("volunteers", make_config())
        rt.galleries.enroll("volunteers", [EnrollItem(f"vol{k}", fake_engine.embed(face_png(f"vol{k}")), f"v{k}.png")
                                           for k in range(4)])
    finally:
        rt.close()
    at = page_as("auditor1", "auditor")
    assert "No blind batch yet." in shown(at)
    at.multiselect(key="blind_open_queries").set_value([1, 3])
    at.selectbox(key="blind_open_fillers").set_value("volunteers")
    at.number_input(key="blind_open_share").set_value(0.5)
    at.button(key="FormSubmitter:blind_open_form-Open batch").click().run()
    assert not at.exception, at.exception
    assert any("opened as audit record" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert table["items"].tolist() == [4] and table["status"].tolist() == ["open"]
    reviewer = page_as("reviewer2", "reviewer")
    assert "Item 1 of 4" in shown(reviewer)


def test_the_probe_photo_kept_for_review_is_shown(app_env: str, fake_engine) -> None:
    rt = Runtime(app_env)
    try:
        rt.galleries.create("volunteers", make_config())
        rt.galleries.enroll("volunteers", [EnrollItem(f"vol{k}", fake_engine.embed(face_png(f"vol{k}")), f"v{k}.png")
                                           for k in range(2)])
        evidence = EvidenceStore.beside(app_env, rt.galleries.keys)
        photo = face_png("someone")
        kept = evidence.keep(photo, "probe_image")
        search = {**rt.log.get(1).record.to_dict(), "details": {"retained": {"probe_image": kept.evidence_id}}}
        for key in ("v", "seq"):
            del search[key]
        seq = rt.log.append(search).seq
        evidence.link(kept.evidence_id, seq)
        auditor = rt.session(AuditContext(), actor_for(rt.db, "auditor1", "auditor"))
        open_batch(auditor, rt.galleries, [seq], "volunteers", filler_share=0.5)
    finally:
        rt.close()
    at = page_as("reviewer2", "reviewer")
    assert not at.exception, at.exception
    assert len(at.get("image")) == 1  # the probe, in the left column
    assert "No probe photo" not in shown(at) and "No reference photo: not kept at enrolment" in shown(at)
