"""Every number of a report equals an independent count over the stored records (tests/audit/reports/scene.py).

The reports are generated the way the CLI and the page make them (:func:`audit.generate_report`,
an auditor's audited action) and read back from their JSON; the expected values come from plain
loops over the raw records, never from ``audit.reports``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from audit import (
    REPORT_TEMPLATES,
    EvaluationStore,
    Forbidden,
    OutputRefused,
    ReportConfigError,
    ReportRequest,
    load_report_config,
    parse_report_config,
)
from audit.runtime import Runtime
from audit.trail.sealed import FieldKeys
from core.keystore import KeyStore, default_keystore_path
from tests.audit.reports import scene
from tests.audit.reports.scene import EXAMPLE_TOML, as_json, block, facts, make


def test_usage_equals_independent_counts(scene_db: str) -> None:
    report = as_json(make(scene_db))
    records = scene.raw_records(scene_db)
    since, until = scene.period()
    want = scene.independent_usage(records, since, until, report["about"]["tree_size"])
    assert sum(want["action"].values()) > 30 and want["action"]["search_video"] == 2  # the scene is not empty
    assert facts(report, "usage", "usage_totals") == {a: want["action"][a] for a in scene.QUERIES}
    months = block(report, "usage", "usage_by_month")["rows"]
    assert {(r["month"], a): r[a] for r in months for a in scene.QUERIES if r[a]} == dict(want["month"])
    assert {r["purpose"]: r["uses"] for r in block(report, "usage", "usage_by_purpose")["rows"]} == want["purpose"]
    assert {r["operator"]: r["uses"] for r in block(report, "usage", "usage_by_operator")["rows"]} == want["operator"]
    assert {r["gallery"]: r["uses"] for r in block(report, "usage", "usage_by_gallery")["rows"]} == want["gallery"]
    outcomes = facts(report, "usage", "search_outcomes")
    s = want["search_outcome"]
    assert (outcomes["with_candidates"], outcomes["without_candidates"], outcomes["failed"]) == (
        s["ok"], s["no_match"], sum(s.values()) - s["ok"] - s["no_match"])
    assert outcomes["share_with_candidates"] == round(100 * s["ok"] / (s["ok"] + s["no_match"]), 1)
    # records outside the period are not counted
    assert report["about"]["records_in_period"] < report["about"]["tree_size"]


def test_review_outcomes_equal_the_two_person_rule_counted_independently(scene_db: str) -> None:
    report = as_json(make(scene_db))
    since, until = scene.period()
    records = scene.raw_records(scene_db)
    want = scene.independent_review(records, since, until, report["about"]["tree_size"])
    # candidates are named by sealed tokens in the stored records (audit.trail.sealed): counted as stored,
    # compared by their clear names
    keys = FieldKeys(KeyStore(default_keystore_path(scene_db)))
    want = {(seq, cid if cid is None else keys.open_value(cid)): status for (seq, cid), status in want.items()}
    counted = Counter(want.values())
    assert min(counted[s] for s in ("confirmed", "rejected", "vetoed", "pending")) >= 1
    got = facts(report, "review", "review_outcomes")
    assert {s: got[s] for s in counted} == dict(counted)
    assert got["candidates"] == len(want)
    assert got["share_completed"] == round(100 * (len(want) - counted["pending"]) / len(want), 1)
    assert facts(report, "review", "review_time")["decided"] == len(want) - counted["pending"]
    # the video candidate reviewed as "2:face01" is confirmed, its "1:face01" twin is not
    video = scene.raw_records(scene_db)
    first_video = next(seq for seq, r in video if r["action"] == "search_video")
    assert want[(first_video, "2:face01")] == "confirmed" and want[(first_video, "1:face01")] == "pending"
    # and the trail's own rule agrees (vetoed is a rejection there)
    rt = Runtime(scene_db)
    try:
        for seq in sorted({s for s, _ in want}):
            for c in rt.log.match_status(seq).candidates:
                mine = want[(seq, c.candidate_id)]
                assert c.status == ("rejected" if mine == "vetoed" else mine)
    finally:
        rt.db.close()


def test_refusals_and_anomalies_equal_independent_counts(scene_db: str) -> None:
    report = as_json(make(scene_db, toml=EXAMPLE_TOML))
    since, until = scene.period()
    records = scene.raw_records(scene_db)
    upto = report["about"]["tree_size"]
    want = scene.independent_refusals(records, since, until, upto)
    usage = scene.independent_usage(records, since, until, upto)
    got = facts(report, "anomalies", "anomalies")
    assert want["self_review_attempts"] == 1 and want["lockouts_begun"] == 1 and want["refused_while_locked"] == 1
    assert want["policy_refused"] == 1
    for name in ("refusals", "self_review_attempts", "failed_sign_ins", "lockouts_begun", "refused_while_locked",
                 "policy_refused"):
        assert got[name] == want[name], name
    assert got["queries_without_case"] == usage["anomaly"]["queries_without_case"] > 0
    assert got["user_thresholds"] == usage["anomaly"]["user_thresholds"] > 0
    assert got["policy_looser"] == usage["anomaly"]["policy_looser"] > 0
    by_kind = {f"refused:{r['attempted']}:{r['outcome']}": r["refusals"]
               for r in block(report, "anomalies", "refusals_by_kind")["rows"]}
    assert by_kind == {k: v for k, v in want.items() if k.startswith("refused:")}
    night = scene.independent_out_of_hours(records, since, until, upto, "America/Los_Angeles", 7 * 60, 19 * 60)
    assert 0 < got["out_of_hours"] == night
    uses = block(report, "uses", "uses_list")["rows"]
    with_candidates = {seq for seq, _ in scene.independent_review(records, since, until, upto)}
    assert [r["seq"] for r in uses] == sorted(with_candidates)


def test_accuracy_is_the_stored_evaluation_with_the_one_percent_flag(scene_db: str) -> None:
    report = as_json(make(scene_db))
    rt = Runtime(scene_db)
    try:
        store = EvaluationStore(rt.db)
        stored = store.load(store.latest(embedding_key=scene.KEY))
    finally:
        rt.db.close()
    rows = {r["group"]: r for r in block(report, "accuracy", "config1_groups")["rows"]}
    expected = {("all" if r["pairing"] == "all" else r["group_name"]): r for r in stored.rates
                if r["threshold_name"] == "default" and r["pairing"] in ("all", "within")}
    assert set(rows) == set(expected) and len(rows) >= 3
    for group, r in expected.items():
        assert rows[group]["fmr"] == pytest.approx(r["fmr"]) and rows[group]["fnmr"] == pytest.approx(r["fnmr"])
        assert rows[group]["genuine_pairs"] == r["genuine_pairs"]
        flagged = [m for m in ("fmr", "fnmr") if r[m] >= 0.01]
        assert (rows[group]["error_rate_1pct"] != "no") == bool(flagged)
    searched = {(r["gallery"], r["gallery_size"]) for r in block(report, "accuracy", "config1_one_to_n")["rows"]}
    assert searched == {(g["name"], g["size"]) for g in scene.GALLERIES}


@pytest.mark.parametrize("template", list(REPORT_TEMPLATES))
def test_every_section_of_the_template_is_present_and_nothing_is_blank(scene_db: str, template: str) -> None:
    report = as_json(make(scene_db, template))
    assert [s["id"] for s in report["sections"]] == [spec[0] for spec in REPORT_TEMPLATES[template]]

    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    for s in report["sections"]:
        assert s["blocks"], s["id"]
        for b in s["blocks"]:
            if b["kind"] == "missing":
                assert b["reason"].startswith(("missing from report.toml: ", "not yet available in this deployment: ",
                                               "not in the public version"))
    unit_or_note = {"unit", "note", "title", "caption"}

    def blanks(value: Any, key: str = "") -> list[str]:
        if isinstance(value, dict):
            return [b for k, v in value.items() for b in blanks(v, k)]
        if isinstance(value, list):
            return [b for v in value for b in blanks(v, key)]
        return [key] if value == "" and key not in unit_or_note else []

    assert blanks(report) == []
    assert strings(report)


def test_the_example_report_toml_leaves_nothing_missing_and_a_bad_key_is_named(scene_db: str) -> None:
    report = as_json(make(scene_db, toml=EXAMPLE_TOML))
    text = json.dumps(report)
    assert "missing from report.toml" not in text
    assert facts(report, "complaints", "toml_complaints_received_complaints_summary")["complaints.received"] == 0
    with pytest.raises(ReportConfigError, match=r"policy\.retention must be a string"):
        parse_report_config("[policy]\nretention = 7\n")
    with pytest.raises(ReportConfigError, match=r"unknown key system\.colour"):
        parse_report_config('[system]\ncolour = "blue"\n')


def test_public_version_leaks_no_operator_or_subject_and_suppresses_small_cells(scene_db: str, tmp_path: Path) -> None:
    records = scene.raw_records(scene_db)
    names = set(scene.OPERATORS) | set(scene.REVIEWERS) | {scene.AUDITOR}
    subjects = {c["subject_id"] for _, r in records for c in r.get("candidates") or []}
    assert len(subjects) >= 5
    for fmt in ("json", "html"):
        done = make(scene_db, fmt=fmt, public=True, out=tmp_path / f"public.{fmt}")
        text = (tmp_path / f"public.{fmt}").read_bytes().decode("utf-8").lower()
        leaked = sorted(n for n in names | subjects if n.lower() in text)
        assert leaked == [], leaked
        assert done.result.summary()["public"] is True
    report = json.loads((tmp_path / "public.json").read_bytes())
    since, until = scene.period()
    true = scene.independent_usage(records, since, until, report["about"]["tree_size"])["operator"]
    shown = sorted(str(r["uses"]) for r in block(report, "usage", "usage_by_operator")["rows"])
    small = [v for v in true.values() if v < 5]
    assert len(small) == 1  # the reviewer account's single search
    big = sorted(v for v in true.values() if v >= 5)
    expected = ["< 5", "suppressed", *map(str, big[1:])]  # the smallest other cell hidden with it
    assert shown == sorted(expected)

    def small_counts(value: Any, key: str = "") -> list[tuple[str, Any]]:
        if isinstance(value, dict):
            if "value" in value and "id" in value:  # a fact
                return small_counts(value["value"], value["id"])
            return [x for k, v in value.items() for x in small_counts(v, k)]
        if isinstance(value, list):
            return [x for v in value for x in small_counts(v, key)]
        counts = {"uses", "searches", "refusals", "unconfirmed", "self_review_attempts", "lockouts_begun",
                  "refused_while_locked", "vetoed", "rejected", "pending", "confirmed", "candidates"}
        if key in counts and isinstance(value, int) and not isinstance(value, bool) and 0 < value < 5:
            return [(key, value)]
        return []

    assert small_counts(report["sections"]) == []
    assert block(report, "uses", "uses_list")["kind"] == "missing"


def test_differential_privacy_states_its_budget(scene_db: str) -> None:
    report = as_json(make(scene_db, public=True, epsilon=1.0))
    privacy = report["about"]["privacy"]
    assert privacy["epsilon"] == 1.0 and privacy["noise_scale"] == privacy["sensitivity"] / 1.0
    totals = facts(report, "usage", "usage_totals")
    assert all(v == "< 5" or (isinstance(v, int) and v >= 0) for v in totals.values())


def test_one_changed_record_makes_the_integrity_section_say_so(scene_db: str) -> None:
    clean = as_json(make(scene_db))
    assert facts(clean, "integrity", "integrity_state")["verified"] == "yes" and clean["warnings"] == []
    rt = Runtime(scene_db)
    try:
        with rt.db.connect() as con:
            blob = bytes(con.execute("SELECT record FROM audit_log WHERE seq = 20").fetchone()[0])
            changed = blob.replace(b'"purpose":"find', b'"purpose":"fond')
            assert changed != blob
            con.execute("UPDATE audit_log SET record = ? WHERE seq = 20", [changed])
    finally:
        rt.db.close()
    report = as_json(make(scene_db))
    state = facts(report, "integrity", "integrity_state")
    assert state["verified"] == "NO"
    assert report["about"]["verified"] is False and "FAILS verification at record 20" in report["warnings"][0]
    texts = [b["text"] for b in next(s for s in report["sections"] if s["id"] == "integrity")["blocks"]
             if b["kind"] == "text"]
    assert any("FAILS verification at record 20" in t for t in texts)


def test_a_report_is_an_audited_action_for_auditors_only(scene_db: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = make(scene_db, out=out)
    rt = Runtime(scene_db)
    try:
        record = rt.log.get(done.entry.seq).record
        assert record.action == "report" and record.operator == scene.AUDITOR
        assert record.details["sha256"] == __import__("hashlib").sha256(out.read_bytes()).hexdigest()
        assert record.details["tree_size"] == done.entry.seq - 1 == json.loads(out.read_bytes())["about"]["tree_size"]
    finally:
        rt.db.close()
    with pytest.raises(Forbidden):
        make(scene_db, who=scene.OPERATORS[0], role="operator")
    rt = Runtime(scene_db)
    try:
        last = rt.log.get(rt.log.size()).record
        assert last.action == "refused" and last.details["attempted"] == "report" and last.outcome == "forbidden"
    finally:
        rt.db.close()


def test_out_never_overwrites_a_file_the_database_or_a_key(scene_db: str, tmp_path: Path) -> None:
    existing = tmp_path / "existing.json"
    existing.write_text("keep me")
    with pytest.raises(OutputRefused, match="existing file"):
        make(scene_db, out=existing)
    assert existing.read_text() == "keep me"
    make(scene_db, out=existing, force=True)
    assert json.loads(existing.read_bytes())["template"] == "full"
    rt = Runtime(scene_db)
    key = rt.log.key_path
    rt.db.close()
    before = key.read_bytes()
    link = tmp_path / "looks-harmless.json"
    link.symlink_to(key)
    for protected in (scene_db, str(key), str(link)):
        with pytest.raises(OutputRefused, match="must never overwrite"):
            make(scene_db, out=protected, force=True)
    assert key.read_bytes() == before
    rt = Runtime(scene_db)
    try:
        assert rt.log.verify().ok  # the database is still the database (its refusals recorded in it)
    finally:
        rt.db.close()


def test_period_bounds_and_formats_are_checked() -> None:
    config = load_report_config(None)
    with pytest.raises(ValueError, match="before it starts"):
        ReportRequest(dt.date(2026, 2, 1), dt.date(2026, 1, 1), "full", config)
    with pytest.raises(ValueError, match="unknown report template"):
        ReportRequest(dt.date(2026, 1, 1), dt.date(2026, 2, 1), "gdpr", config)


def test_reviewers_rates_wait_for_a_revealed_blind_batch_and_are_pseudonymised_in_public(
        scene_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    report = as_json(make(scene_db))
    waiting = block(report, "review", "reviewer_rates")
    assert waiting["kind"] == "missing" and waiting["reason"].startswith("not yet available in this deployment")
    from audit import ReviewerRate, ReviewerRates
    from audit.reports import build

    rate = ReviewerRate("rev_dan", 40, 10, 1, 0.1, (0.02, 0.4), 30, 20, 12, 11, 11 / 12, (0.6, 0.99), 9.5, 8.0,
                        (7.0, 12.0))
    monkeypatch.setattr(build, "reviewer_rates", lambda log: ReviewerRates(("b1",), 0.95, (rate,)))
    full = block(as_json(make(scene_db)), "review", "reviewer_rates")
    assert full["rows"][0]["reviewer"] == "rev_dan" and full["rows"][0]["false_confirm_rate"] == 0.1
    public = block(as_json(make(scene_db, public=True)), "review", "reviewer_rates")
    assert public["rows"][0]["reviewer"].startswith("reviewer-") and public["rows"][0]["false_confirms"] == "< 5"


def test_the_integrity_section_prints_the_signed_note_and_a_witness_cosignature(scene_db: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.trail.notes import cosign

    rt = Runtime(scene_db)
    try:
        cp = rt.log.checkpoint()
        rt.log.add_cosignatures(cp.size, [cosign(cp.body, "witness.example/w1", Ed25519PrivateKey.generate(),
                                                 1_700_000_000)])
        note = cp.note
    finally:
        rt.db.close()
    report = as_json(make(scene_db))
    integrity = next(s for s in report["sections"] if s["id"] == "integrity")
    state = facts(report, "integrity", "integrity_state")
    assert state["tree_size"] == cp.size and state["root"] == cp.root.hex()
    assert any(b["kind"] == "text" and note.strip() in b["text"] for b in integrity["blocks"])
    cosignatures = block(report, "integrity", "cosignatures")
    assert cosignatures["kind"] == "table" and cosignatures["rows"][0]["witness"] == "witness.example/w1"


def test_retention_and_erasure_counts_equal_independent_counts(scene_db: str) -> None:
    report = as_json(make(scene_db))
    since, until = scene.period()
    want = scene.independent_actions(scene.raw_records(scene_db), since, until, report["about"]["tree_size"])
    got = facts(report, "policy", "retention_counts")
    assert (got["retention_runs"], got["evidence_records"], got["deletions"], got["gallery_drops"]) == (
        want["retention"], want["evidence"], want["delete"], want["drop_gallery"])
    assert want["delete"] == 2
    assert block(report, "policy", "erasure_receipts")["reason"].startswith("not yet available in this deployment")


@pytest.mark.parametrize(("tz", "hours"), [("Asia/Kolkata", "09:30-17:45"), ("Australia/Eucla", "08:15-16:00")])
def test_out_of_hours_is_exact_in_time_zones_off_the_hour(scene_db: str, tmp_path: Path, tz: str, hours: str) -> None:
    toml = tmp_path / "report.toml"
    toml.write_text(f'[policy]\ntimezone = "{tz}"\nworking_hours = "{hours}"\n')
    report = as_json(make(scene_db, toml=toml))
    since, until = scene.period()
    start, end = ((int(t[:2]) * 60 + int(t[3:])) for t in hours.split("-"))
    want = scene.independent_out_of_hours(scene.raw_records(scene_db), since, until, report["about"]["tree_size"],
                                          tz, start, end)
    assert 0 < facts(report, "anomalies", "anomalies")["out_of_hours"] == want
    with pytest.raises(ReportConfigError, match="quarter hour"):
        parse_report_config('[policy]\ntimezone = "UTC"\nworking_hours = "07:10-19:00"\n')


def test_small_purposes_merge_into_one_row_that_counts_them_all() -> None:
    import pandas as pd

    from audit.reports.privacy import Privacy
    from audit.reports.usage import _by

    frame = pd.DataFrame({"purpose": ["a", "b", "c", "d"], "uses": [10, 4, 4, 7]})
    public = Privacy(public=True, k=5, key=b"k" * 32)
    rows = {r["purpose"]: r["uses"] for r in _by(frame, "purpose", public)}
    assert rows == {"a": 10, "d": 7, "other purposes, each with fewer than 5 uses (2)": 8}
    rows = {r["purpose"]: r["uses"] for r in _by(frame.iloc[[0, 2, 3]], "purpose", public)}
    assert rows == {"a": 10, "d": "suppressed", "other purposes, each with fewer than 5 uses (1)": "< 5"}
    assert {r["purpose"]: r["uses"] for r in _by(frame, "purpose", Privacy())} == {"a": 10, "b": 4, "c": 4, "d": 7}
