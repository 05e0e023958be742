"""AppTest of the review screen in the match log: a reviewer sees both photos and the score's error context,
cannot submit without choosing a decision and a reason, cannot review the same candidate twice, reverses only
explicitly; a queue of what is pending for them; what the record says is shown as text."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from audit import REASON_CODES, AuditFilter, Runtime
from tests.dashboard.conftest import APP, as_user
from tests.dashboard.web.review_scene import PURPOSE, ReviewScene, add_review_scene

PAGE = APP.replace("streamlit_app.py", "app_pages/match_log.py")
SUBMIT = "FormSubmitter:matchlog_form-Record review"


@pytest.fixture
def scene(app_env: str, fake_engine) -> ReviewScene:
    return add_review_scene(app_env, fake_engine)


def open_record(name: str, role: str, seq: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth_user"] = as_user(name, role)
    at.run()
    at.selectbox(key="matchlog_open").set_value(seq).run()
    assert not at.exception, at.exception
    return at


def text_of(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.subheader, *at.caption, *at.info, *at.warning, *at.error,
                               *at.success, *at.text)]
    return "\n".join(str(p) for p in parts)


def captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def reviews(app_env: str, seq: int) -> list:
    return [e.record for e in Runtime(app_env).log.list(AuditFilter(action="review", target_seq=seq))]


def test_the_reviewer_sees_both_photos_the_threshold_and_the_error_context(app_env: str, scene: ReviewScene) -> None:
    at = open_record("reviewer2", "reviewer", scene.seq)
    assert captions(at) == ["Probe: kept for this review", "the gallery's reference photo"]  # side by side
    text = text_of(at)
    assert "No probe photo" not in text and "No reference photo" not in text
    assert "Threshold used: 0.5000" in text and "looser than the deployment's policy" in text
    rates = next(t.value for t in at.text if t.value.startswith("overall: ")).splitlines()
    assert [line.split(":")[0] for line in rates] == ["overall", "sex F"]  # Ann is F: her group, not the M group
    assert all("impostor pairs" in line for line in rates)
    assert "fake_set" in text  # which evaluation: the designated one, named
    assert at.radio(key="matchlog_decision").value is None  # nothing preselected
    assert at.selectbox(key="matchlog_reason").value is None


def test_submit_without_a_decision_or_a_reason_is_refused(app_env: str, scene: ReviewScene) -> None:
    at = open_record("reviewer2", "reviewer", scene.seq)
    at.button(key=SUBMIT).click().run()
    assert any("choose a decision and a reason" in e.value for e in at.error)
    at.radio(key="matchlog_decision").set_value("confirm")
    at.button(key=SUBMIT).click().run()
    assert any("choose a reason" in e.value for e in at.error)
    assert reviews(app_env, scene.seq) == []
    refused = [e.record for e in Runtime(app_env).log.list(AuditFilter(action="refused", target_seq=scene.seq))]
    assert len(refused) == 2  # both refusals recorded


def test_a_second_review_is_not_offered_and_a_reversal_is_explicit(app_env: str, scene: ReviewScene) -> None:
    at = open_record("reviewer2", "reviewer", scene.seq)
    at.radio(key="matchlog_decision").set_value("reject")
    at.selectbox(key="matchlog_reason").set_value(REASON_CODES[2])
    at.button(key=SUBMIT).click().run()
    assert any("Review recorded" in s.value for s in at.success), text_of(at)
    again = open_record("reviewer2", "reviewer", scene.seq)
    assert any("already decided 'reject'" in i.value for i in again.info)
    assert SUBMIT not in [b.key for b in again.button]  # no second "Record review" for this candidate
    table = next(d.value for d in again.dataframe if "reason" in d.value.columns)
    assert table["candidate"].tolist() == ["#1 Ann_Example (similarity 0.620000)"]  # the reviews name the candidate
    reverse = "FormSubmitter:matchlog_reverse_form-Reverse my decision (to confirm)"
    again.button(key=reverse).click().run()
    assert any("choose a reason" in e.value for e in again.error)  # a reversal needs a reason too
    again.selectbox(key="matchlog_reverse_reason").set_value(REASON_CODES[0])
    again.button(key=reverse).click().run()
    assert any("Reversal recorded" in s.value for s in again.success), text_of(again)
    first, second = reviews(app_env, scene.seq)
    assert (first.decision, second.decision) == ("reject", "confirm")
    assert second.details["reversal"] == {"reverses_seq": first.seq, "from": "reject"}


def test_a_choice_never_carries_over_to_another_candidate(app_env: str, scene: ReviewScene) -> None:
    at = open_record("reviewer2", "reviewer", scene.seq)
    at.radio(key="matchlog_decision").set_value("confirm").run()
    other = next(o for o in at.selectbox(key="matchlog_candidate").options if "Bob_Example" in o)
    at.selectbox(key="matchlog_candidate").set_value(other).run()
    assert at.radio(key="matchlog_decision").value is None


def test_the_queue_lists_what_is_pending_for_me_oldest_first(app_env: str, scene: ReviewScene) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth_user"] = as_user("reviewer1", "reviewer")
    at.run()
    queue = next(d.value for d in at.dataframe if "waiting" in d.value.columns)
    assert queue["record"].tolist() == sorted(queue["record"].tolist())  # oldest first (seq order in this scene)
    assert 1 not in queue["record"].tolist()  # reviewer1 confirmed #1's only candidate already
    assert queue["record"].tolist()[-2:] == [scene.seq, scene.seq]  # both candidates of the new search
    option = next(o for o in at.selectbox(key="review_queue").options if o.startswith(f"#{scene.seq} · rank 2"))
    at.selectbox(key="review_queue").set_value(option).run()
    assert not at.exception
    assert at.selectbox(key="matchlog_candidate").value.startswith("#2 Bob_Example")


def test_the_auditor_sees_the_evidence_but_no_form_and_text_stays_text(app_env: str, scene: ReviewScene) -> None:
    at = open_record("auditor1", "auditor", scene.seq)
    assert len(at.get("image")) == 2 and not at.radio
    header = next(d.value for d in at.dataframe if "field" in d.value.columns)
    assert PURPOSE in header["value"].tolist()  # verbatim, in a table cell
    assert not any("example.invalid" in m.value for m in at.markdown)  # never as markup


def test_an_operator_is_refused_the_page(app_env: str, scene: ReviewScene) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["auth_user"] = as_user("operator2", "operator")
    at.run()
    assert not at.get("image") and any("Access denied" in e.value for e in at.error)


def test_blind_review_shows_both_photos_through_the_same_display_and_nothing_else(app_env: str, scene: ReviewScene,
                                                                                    fake_engine) -> None:
    from audit import AuditContext, open_batch
    from core import EnrollItem
    from tests.auth import actor_for
    from tests.conftest import make_config
    from tests.fakes import face_png

    rt = Runtime(app_env)
    try:
        rt.galleries.create("volunteers", make_config())
        rt.galleries.enroll("volunteers", [EnrollItem(f"vol{k}", fake_engine.embed(face_png(f"vol{k}")), f"v{k}.png",
                                                      photo=face_png(f"vol{k}")) for k in range(4)])
        open_batch(rt.session(AuditContext(), actor_for(rt.db, "auditor1", "auditor")), rt.galleries, [scene.seq],
                   "volunteers", filler_share=0.5)
    finally:
        rt.close()
    at = AppTest.from_file(APP.replace("streamlit_app.py", "app_pages/blind_review.py"), default_timeout=60)
    at.session_state["auth_user"] = as_user("reviewer2", "reviewer")
    at.run()
    assert not at.exception, at.exception
    assert captions(at) == ["Probe: kept for this review", "the gallery's reference photo"]
    text = text_of(at)
    for hidden in ("Threshold", "0.62", "0.55", "impostor", "Ann_Example", "Bob_Example", "looser"):
        assert hidden not in text, hidden  # blind: the photos only
