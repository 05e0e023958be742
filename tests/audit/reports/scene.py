"""A log scene for report tests, and counts over it made without the report code.

The scene holds what a report counts: searches, verifications and video jobs over three
months (some outside the period, some at night, some without a case reference, some at a
threshold the operator named), reviews through the real gate (two-person rule: confirmed,
rejected, vetoed, pending; a video candidate reviewed by its track), a self-review attempt,
failed sign-ins up to a lockout, an export, and one stored evaluation.

The ``independent_*`` functions read the raw stored records (``SELECT seq, record FROM
audit_log``, decoded with :mod:`json`) and count with plain loops: they share no code with
``audit.reports``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit import (
    AuditContext,
    EvaluationConfig,
    EvaluationStore,
    ReportRequest,
    ReviewRefused,
    SignInRefused,
    audited_export,
    evaluate_embeddings,
    generate_report,
    load_report_config,
)
from audit.runtime import Runtime
from core.storage.connection import Database
from tests.auth import actor_for, password_of

OPERATORS = ("op_alice", "op_bob", "op_carol")
REVIEWERS = ("rev_dan", "rev_eve", "rev_fay")
AUDITOR = "aud_gus"
KEY = "scene-embedding-key"
MODEL = {"model": "Dlib", "detector": "dlib", "alignment": "dlib_5pt", "threshold": "0.070000",
         "embedding_key": KEY, "threshold_source": {"kind": "calibrated", "detail": "scene"}}
USER_MODEL = {**MODEL, "threshold": "0.120000", "threshold_source": {"kind": "user", "detail": "named"}}
GALLERIES = ({"name": "arrest_photos", "fingerprint": "200-" + "a" * 32, "size": 200},
             {"name": "visitors", "fingerprint": "50-" + "b" * 32, "size": 50})
PURPOSES = ("identify a suspect", "identify a suspect", "identify a suspect", "find a missing person")
PERSON = ("password_session", "dashboard_session")
QUERIES = ("search", "verify", "search_video")
EXAMPLE_TOML = Path(__file__).resolve().parents[3] / "docs" / "report.toml"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def period() -> tuple[dt.date, dt.date]:
    """The period the tests report on: 80 days back to today (UTC)."""
    today = dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=80), today


def _queries(rt: Runtime) -> dict[str, list[int]]:
    """Append the queries (explicit times: 100 days ago to 2 days ago; records keep the real shape)."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    seqs: dict[str, list[int]] = defaultdict(list)
    for i in range(40):
        t = now - dt.timedelta(days=100 - 2.4 * i, hours=(i * 7) % 24)
        operator = OPERATORS[i % 3] if i != 33 else REVIEWERS[2]  # one query run by a reviewer account
        gallery = GALLERIES[i % 5 == 0]
        outcome = ("ok", "ok", "no_match", "ok", "no_face")[i % 5]
        n = 2 if i % 4 == 0 else 1
        candidates = [{"subject_id": f"Subject_{(i * 3 + j) % 7}", "face_id": f"face{(i * 3 + j) % 7:02d}",
                       "distance": "0.050000", "similarity": "0.950000", "rank": j + 1}
                      for j in range(n)] if outcome == "ok" else []
        e = rt.log.append({
            "action": "search", "outcome": outcome, "operator": operator, "purpose": PURPOSES[i % 4],
            "case_ref": None if i % 9 == 4 else f"CR-{i % 6}", "gallery": gallery,
            "model_config": USER_MODEL if i % 8 == 3 else MODEL, "probe_sha256": [_sha(f"probe{i % 13}")],
            "faces_found": 0 if outcome == "no_face" else 1, "candidates": candidates,
            "details": {"top_k": 5, **({"threshold_policy": {"status": "looser", "reason": "poor image"}}
                                       if i % 8 == 3 else {})},
            "started_at": _iso(t), "ended_at": _iso(t + dt.timedelta(seconds=2)),
        })
        seqs["search" if outcome == "ok" else "other"].append(e.seq)
    for action in ("delete", "delete", "retention", "evidence"):
        rt.log.append({"action": action, "outcome": "ok", "operator": AUDITOR, "purpose": "retention schedule",
                       "details": {}, "started_at": _iso(now - dt.timedelta(days=4)),
                       "ended_at": _iso(now - dt.timedelta(days=4))})
    rt.log.append({"action": "refused", "outcome": "threshold_beyond_limit", "operator": OPERATORS[0],
                   "purpose": PURPOSES[0], "details": {"attempted": "search", "reason": "past the hard limit"},
                   "started_at": _iso(now - dt.timedelta(days=5)), "ended_at": _iso(now - dt.timedelta(days=5))})
    for i in range(6):
        t = now - dt.timedelta(days=70 - 10 * i, hours=3 * i)
        e = rt.log.append({
            "action": "verify", "outcome": "ok" if i % 2 == 0 else "no_match", "operator": OPERATORS[i % 2],
            "purpose": PURPOSES[0], "case_ref": f"CR-{i}", "model_config": MODEL,
            "probe_sha256": [_sha(f"a{i}"), _sha(f"b{i}")], "details": {},
            "started_at": _iso(t), "ended_at": _iso(t + dt.timedelta(seconds=1)),
        })
        seqs["verify"].append(e.seq)
    for i in range(2):
        t = now - dt.timedelta(days=20 + i, hours=5)
        faces = ["face01", "face02"]
        tracks = [{"track_id": 1, "start_ms": 0, "end_ms": 900, "faces": 4, "candidates": faces},
                  {"track_id": 2, "start_ms": 1000, "end_ms": 2000, "faces": 3, "candidates": ["face01"]}]
        candidates = [{"subject_id": f"Subject_{f[-1]}", "face_id": f, "distance": "0.040000",
                       "similarity": "0.960000", "rank": r + 1} for r, f in enumerate(faces)]
        candidates.append({**candidates[0], "rank": 1})
        e = rt.log.append({
            "action": "search_video", "outcome": "ok", "operator": OPERATORS[i], "purpose": PURPOSES[3],
            "case_ref": f"CR-V{i}", "gallery": GALLERIES[0], "model_config": MODEL,
            "probe_sha256": [_sha(f"video{i}")], "candidates": candidates, "details": {"tracks": tracks},
            "started_at": _iso(t), "ended_at": _iso(t + dt.timedelta(minutes=3)),
        })
        seqs["search_video"].append(e.seq)
    return seqs


def _reviews(rt: Runtime, seqs: dict[str, list[int]]) -> None:
    """Reviews through the real gate: confirmed, rejected, vetoed, pending; video by track; a self-review."""
    reviewer = {name: rt.session(AuditContext(), actor_for(rt.db, name, "reviewer")) for name in REVIEWERS}
    searches = seqs["search"]

    def first_face(seq: int) -> str:
        return str(rt.log.get(seq).record.candidates[0].face_id)

    for seq in searches[:6]:  # confirmed by two
        for name in REVIEWERS[:2]:
            reviewer[name].review(seq, "confirm", face_id=first_face(seq))
    for seq in searches[6:9]:  # rejected
        reviewer[REVIEWERS[0]].review(seq, "reject", face_id=first_face(seq))
    for seq in searches[9:11]:  # vetoed: confirmed, then rejected
        reviewer[REVIEWERS[0]].review(seq, "confirm", face_id=first_face(seq))
        reviewer[REVIEWERS[1]].review(seq, "reject", face_id=first_face(seq))
    reviewer[REVIEWERS[1]].review(searches[11], "confirm", face_id=first_face(searches[11]))  # pending
    for name in REVIEWERS[:2]:
        reviewer[name].review(seqs["search_video"][0], "confirm", face_id="2:face01")
        reviewer[name].review(seqs["verify"][0], "confirm")
    own = next(s for s in searches if rt.log.get(s).record.operator == REVIEWERS[2])
    try:
        reviewer[REVIEWERS[2]].review(own, "confirm", face_id=first_face(own))
    except ReviewRefused:
        pass
    else:  # pragma: no cover (the gate must refuse it)
        raise AssertionError("a self-review was accepted")
    auditor = rt.session(AuditContext(purpose="share with the prosecutor"), actor_for(rt.db, AUDITOR, "auditor"))
    audited_export(auditor, rt.log, str(Path(str(rt.db.path) + ".export.jsonl")), "jsonl")


def _sign_ins(rt: Runtime) -> None:
    """Failed sign-ins up to a lockout, then one more while locked (real AccountService records)."""
    for _ in range(rt.settings.signin_max_failures + 1):
        try:
            rt.accounts.sign_in(OPERATORS[1], "not-the-password")
        except SignInRefused:
            pass
    rt.accounts.sign_in(OPERATORS[2], password_of(OPERATORS[2]))


def _evaluation(rt: Runtime) -> None:
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(40), 3)
    centres = rng.normal(size=(40, 16))
    x = centres[subjects] + 0.6 * rng.normal(size=(120, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = pd.DataFrame({"sex": np.where(subjects % 2, "F", "M")})
    model = {k: v for k, v in MODEL.items() if k != "threshold_source"}
    report = evaluate_embeddings(x, subjects, labels, EvaluationConfig(by=(("sex",),), default_threshold=0.3,
                                                                      bootstrap=20),
                                 dataset_fingerprint="scene", model_config={**model, "threshold": 0.07})
    EvaluationStore(rt.db).save(report, dataset_name="scene_set")


def build_scene(path: Path) -> None:
    """Write the scene's database (and key files) at ``path``."""
    rt = Runtime(str(path))
    for name in OPERATORS:
        actor_for(rt.db, name, "operator")
    for name in REVIEWERS:
        actor_for(rt.db, name, "reviewer")
    actor_for(rt.db, AUDITOR, "auditor")
    seqs = _queries(rt)
    _reviews(rt, seqs)
    _sign_ins(rt)
    _evaluation(rt)
    rt.db.close()


# -- independent counts ----------------------------------------------------------------------------------------


def raw_records(db_path: str) -> list[tuple[int, dict[str, Any]]]:
    """Every stored record, decoded with json (no facetrail code)."""
    db = Database(db_path)
    try:
        with db.connect() as con:
            rows = con.execute("SELECT seq, record FROM audit_log ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(int(seq), json.loads(bytes(blob).decode("utf-8"))) for seq, blob in rows]


def _in(r: dict[str, Any], since: dt.date, until: dt.date) -> bool:
    return since.isoformat() <= r["started_at"] < (until + dt.timedelta(days=1)).isoformat()


def independent_usage(records: list[tuple[int, dict[str, Any]]], since: dt.date, until: dt.date,
                      upto: int) -> dict[str, Counter[Any]]:
    """Uses by action, (month, action), purpose, gallery, operator; search outcomes."""
    out: dict[str, Counter[Any]] = defaultdict(Counter)
    for seq, r in records:
        if seq > upto or r["action"] not in QUERIES or not _in(r, since, until):
            continue
        out["action"][r["action"]] += 1
        out["month"][(r["started_at"][:7], r["action"])] += 1
        out["purpose"][r.get("purpose")] += 1
        out["operator"][r.get("operator")] += 1
        if r["action"] != "verify":
            out["gallery"][(r.get("gallery") or {}).get("name")] += 1
        if r["action"] == "search":
            out["search_outcome"][r["outcome"]] += 1
        if not (r.get("case_ref") or "").strip():
            out["anomaly"]["queries_without_case"] += 1
        if ((r.get("model_config") or {}).get("threshold_source") or {}).get("kind") == "user":
            out["anomaly"]["user_thresholds"] += 1
        if ((r.get("details") or {}).get("threshold_policy") or {}).get("status") == "looser":
            out["anomaly"]["policy_looser"] += 1
    return out


def _names(r: dict[str, Any]) -> list[tuple[str | None, str | None, str | None]]:
    """(name a review uses, subject id, operator) of each reviewable item of a query."""
    if r["action"] == "verify":
        return [(None, None, r.get("operator"))]
    if r["action"] == "search_video":
        named = [f"{t['track_id']}:{f}" for t in r["details"]["tracks"] for f in t["candidates"]]
    else:
        named = [c["face_id"] for c in r.get("candidates") or []]
    return [(n, c["subject_id"], r.get("operator")) for n, c in zip(named, r["candidates"], strict=True)]


def independent_review(records: list[tuple[int, dict[str, Any]]], since: dt.date, until: dt.date,
                       upto: int) -> dict[tuple[int, str | None], str]:
    """Status of every reviewable item of the period's queries under the two-person rule (plain loops)."""
    reviews = [(seq, r) for seq, r in records if seq <= upto and r["action"] == "review"]
    out = {}
    for seq, q in records:
        if seq > upto or q["action"] not in QUERIES or q["outcome"] != "ok" or not _in(q, since, until):
            continue
        for named, _, operator in _names(q):
            confirms, rejects = set(), set()
            for rseq, r in reviews:
                method = ((r.get("details") or {}).get("auth") or {}).get("method")
                who = (r.get("reviewer") or "").strip().lower()
                if (r.get("target_seq") != seq or rseq <= seq or r.get("target_face_id") != named
                        or method not in PERSON or who != (r.get("operator") or "").strip().lower()
                        or who == (operator or "").strip().lower()):
                    continue
                (confirms if r["decision"] == "confirm" else rejects).add(who)
            out[(seq, named)] = ("vetoed" if rejects and confirms else "rejected" if rejects
                                 else "confirmed" if len(confirms) >= 2 else "pending")
    return out


def independent_refusals(records: list[tuple[int, dict[str, Any]]], since: dt.date, until: dt.date,
                         upto: int) -> Counter[str]:
    """Refusals by kind, self-review attempts, failed sign-ins, lockouts."""
    by_seq = dict(records)
    out: Counter[str] = Counter()
    for seq, r in records:
        if seq > upto or r["action"] != "refused" or not _in(r, since, until):
            continue
        d = r.get("details") or {}
        out["refusals"] += 1
        out[f"refused:{d.get('attempted')}:{r['outcome']}"] += 1
        if d.get("attempted") == "sign_in":
            out["failed_sign_ins"] += 1
            out["lockouts_begun"] += "locked_until" in d
        out["refused_while_locked"] += r["outcome"] == "locked_out"
        out["policy_refused"] += r["outcome"] in ("threshold_beyond_limit", "threshold_reason_required")
        target = by_seq.get(r.get("target_seq") or -1)
        if d.get("attempted") == "review" and target is not None and target.get("operator") == r.get("operator"):
            out["self_review_attempts"] += 1
    return out


def independent_actions(records: list[tuple[int, dict[str, Any]]], since: dt.date, until: dt.date,
                        upto: int) -> Counter[str]:
    """Records with outcome ok by action, in the period."""
    return Counter(r["action"] for seq, r in records if seq <= upto and r["outcome"] == "ok" and _in(r, since, until))


def independent_out_of_hours(records: list[tuple[int, dict[str, Any]]], since: dt.date, until: dt.date,
                             upto: int, tz: str, start: int, end: int) -> int:
    """Queries whose local start time is outside minutes ``start..end`` of the day or on a weekend."""
    zone = zoneinfo.ZoneInfo(tz)
    n = 0
    for seq, r in records:
        if seq > upto or r["action"] not in QUERIES or not _in(r, since, until):
            continue
        t = dt.datetime.strptime(r["started_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).astimezone(zone)
        n += t.weekday() >= 5 or not start <= t.hour * 60 + t.minute < end
    return n


# -- generating and reading reports ----------------------------------------------------------------------------


def make(db: str, template: str = "full", fmt: str = "json", *, toml: Path | None = None, who: str = AUDITOR,
         role: str = "auditor", **kw: Any) -> Any:
    rt = Runtime(db)
    try:
        since, until = period()
        session = rt.session(AuditContext(purpose="annual report"), actor_for(rt.db, who, role))
        return generate_report(session, EvaluationStore(rt.db), ReportRequest(since, until, template,
                                                                              load_report_config(toml)), fmt, **kw)
    finally:
        rt.db.close()


def as_json(done: Any) -> dict[str, Any]:
    return json.loads(done.result.data)


def block(report: dict[str, Any], section: str, block_id: str) -> dict[str, Any]:
    s = next(s for s in report["sections"] if s["id"] == section)
    return next(b for b in s["blocks"] if b.get("id") == block_id)


def facts(report: dict[str, Any], section: str, block_id: str) -> dict[str, Any]:
    return {f["id"]: f["value"] for f in block(report, section, block_id)["items"]}
