"""The evaluate/calibrate commands on a real engine with the fake face pipeline (no model needed)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from audit.runtime import Runtime
from core.settings import Settings
from dashboard.cli import evaluate as cli_eval
from dashboard.cli.common import SIGN_IN_HINT
from tests.auth import token_for
from tests.fakes import blank_png, face_png


@pytest.fixture(autouse=True)
def runtime_engine(monkeypatch, fake_engine):
    """The runtime hands every command the real engine whose models are the fake pipeline."""
    monkeypatch.setattr(Runtime, "engine", lambda self, *names: fake_engine)
    return fake_engine


def make_manifest(tmp_path: Path, n_subjects: int = 30) -> Path:
    """Three photos per subject (faces the fake pipeline knows); subject s0's third photo has no face."""
    rows = ["image,person,sex,race,age"]
    for s in range(n_subjects):
        sex = "F" if s % 2 else "M"
        race = ["a", "b", "a; b", ""][s % 4]
        for k in range(3):
            name = "noface.png" if (s == 0 and k == 2) else f"{k}.png"
            p = tmp_path / "img" / f"s{s}" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(blank_png() if name == "noface.png" else face_png(f"s{s}", k))
            rows.append(f"img/s{s}/{name},s{s},{sex},{race},{20 + s}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.csv"


@pytest.fixture(autouse=True)
def audit_context(monkeypatch):
    """Every evaluation is an audited action: a purpose here, and a signed-in account per run (see run)."""
    monkeypatch.delenv("FACETRAIL_OPERATOR", raising=False)
    monkeypatch.delenv("FACETRAIL_TOKEN", raising=False)
    monkeypatch.setenv("FACETRAIL_PURPOSE", "testing")


def run(argv, capsys, as_: str | None = "eval-test"):
    """Run the command signed in as admin ``as_`` of the ``--db`` database (``None``: nobody signed in)."""
    parser = argparse.ArgumentParser()
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db")
    parent.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command")
    cli_eval.register(sub, [parent])
    args = parser.parse_args([*argv, "--workers", "1"])  # the fake pipeline lives in this process
    if args.db is not None:  # the runtime common.runtime(args) would build, signed in as the CLI would be
        runtime = Runtime(Settings.from_env().with_db(args.db))
        runtime.use_token(None if as_ is None else token_for(args.db, as_, "admin"), hint=SIGN_IN_HINT)
        args._runtime = runtime
    code = args.handler(args)
    out = capsys.readouterr().out
    return code, out


def test_evaluate_manifest_json(tmp_path, capsys):
    m = make_manifest(tmp_path)
    db = str(tmp_path / "f.duckdb")
    code, out = run(
        [
            "evaluate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--by",
            "sex,race,sex*race",
            "--band",
            "age=30,40",
            "--by",
            "age_band",
            "--threshold",
            "fmr=1e-2",
            "--threshold",
            "0.5",
            "--bootstrap",
            "50",
            "--json",
            "--db",
            db,
        ],
        capsys,
    )
    assert code == 0, out
    rows = json.loads(out)
    keys = {
        "group",
        "threshold",
        "genuine_pairs",
        "impostor_pairs",
        "fnmr",
        "fmr",
        "fnmr_lo",
        "fnmr_hi",
        "fmr_lo",
        "fmr_hi",
    }
    assert {r["kind"] for r in rows} == {"verification", "inequity"}
    assert all(keys <= set(r) for r in rows if r["kind"] == "verification")
    assert {r["threshold_name"] for r in rows} == {"fmr=0.01", "0.5"}
    inequity = {(r["grouping"], r["threshold_name"], r["measure"], r["metric"]) for r in rows if r["kind"] == "inequity"}
    assert ("sex", "fmr=0.01", "garbe", "combined") in inequity and ("race", "0.5", "fdr", "combined") in inequity
    assert any(r["group"] == {"sex": "M", "race": "a"} for r in rows)
    assert any(r["group"] == {"race": "unknown"} for r in rows)
    assert any(r["group"] == {"age_band": "<30"} for r in rows)
    overall = next(r for r in rows if r["pairing"] == "all" and r["threshold_name"] == "0.5")
    assert overall["genuine_pairs"] == 29 * 3 + 1  # one image had no face
    from audit.evaluation.store import EvaluationStore
    from core.storage.connection import Database

    store = EvaluationStore(Database(db))
    report = store.load(rows[0]["run_id"])
    fta = report.fta()
    assert int(fta[fta["group_name"] == "all"]["failures"].iloc[0]) == 1


def test_evaluate_identification(tmp_path, capsys):
    m = make_manifest(tmp_path)
    code, out = run(
        [
            "evaluate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--by",
            "sex",
            "--gallery-manifest",
            str(m),
            "--gallery-subject-col",
            "person",
            "--probe-glob",
            "*/0.png",
            "--threshold",
            "0.5",
            "--bootstrap",
            "0",
            "--json",
            "--db",
            str(tmp_path / "g.duckdb"),
        ],
        capsys,
    )
    assert code == 0, out
    ident = [r for r in json.loads(out) if r["kind"] == "identification"]
    overall = next(r for r in ident if not r["group"])
    assert overall["mated_searches"] == 30 and overall["nonmated_searches"] == 30


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--manifest", "MISSING.csv", "--subject-col", "person", "--json"],
        ["evaluate", "--manifest", "M", "--subject-col", "nobody", "--json"],
        ["evaluate", "--manifest", "M", "--subject-col", "person", "--by", "height", "--json"],
        ["evaluate", "--manifest", "M", "--subject-col", "person", "--threshold", "fmr=7", "--json"],
        ["calibrate", "--manifest", "M", "--subject-col", "person", "--target-fmr", "0", "--json"],
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, argv):
    m = make_manifest(tmp_path, 4)
    argv = [str(m) if a == "M" else a for a in argv] + ["--db", str(tmp_path / "x.duckdb")]
    code, out = run(argv, capsys)
    assert code == 2
    assert "error" in json.loads(out)


def test_calibrate_json(tmp_path, capsys):
    m = make_manifest(tmp_path)
    code, out = run(
        [
            "calibrate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--target-fmr",
            "0.01",
            "--by",
            "sex",
            "--no-save",
            "--json",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
        capsys,
    )
    assert code == 0, out
    payload = json.loads(out)
    assert payload["achieved_fmr"] <= 0.01
    assert payload["saved"] is False  # --no-save
    assert {r["group_name"] for r in payload["per_group"]} >= {"sex=F", "sex=M"}


def make_lfw(tmp_path: Path) -> list[str]:
    """An LFW-layout folder of 8 people, 3 photos each (PNG bytes under LFW's .jpg names)."""
    names = [f"P{i}" for i in range(8)]
    for name in names:
        for k in range(1, 4):
            p = tmp_path / "images" / name / f"{name}_{k:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(face_png(name, k))
    lines = ["2 4"]
    for fold in range(2):
        for i in range(4):
            lines.append(f"{names[(fold * 4 + i) % 8]} 1 2")
        for i in range(4):
            lines.append(f"{names[i]} 3 {names[i + 4]} {1 + fold}")
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "labels.csv").write_text(
        "image,sex\n"
        + "\n".join(
            f"images/{n}/{n}_{k:04d}.jpg,{'F' if i % 2 else 'M'}" for i, n in enumerate(names) for k in range(1, 4)
        )
    )
    return names


def test_lfw_mode(tmp_path, capsys):
    make_lfw(tmp_path)
    code, out = run(
        [
            "evaluate",
            "--lfw",
            str(tmp_path),
            "--bootstrap",
            "0",
            "--threshold",
            "0.5",
            "--json",
            "--db",
            str(tmp_path / "l.duckdb"),
        ],
        capsys,
    )
    assert code == 0, out
    rows = json.loads(out)
    acc = next(r for r in rows if r["kind"] == "lfw_10fold")
    assert 0.0 <= acc["accuracy"] <= 1.0 and len(acc["fold_accuracies"]) == 2
    pair_rows = [r for r in rows if r["kind"] == "lfw_pairs"]
    assert sum(r["genuine_pairs"] for r in pair_rows if not r["group"]) == 8
    assert any(r["group"] == {"sex": "F"} for r in pair_rows)


def test_parse_by():
    assert cli_eval.parse_by(["sex,race", "sex*race"]) == (("sex",), ("race",), ("sex", "race"))
    with pytest.raises(ValueError):
        cli_eval.parse_by(["sex*"])


def test_text_output(tmp_path, capsys):
    m = make_manifest(tmp_path)
    code, out = run(
        [
            "evaluate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--by",
            "sex",
            "--bootstrap",
            "0",
            "--no-store",
            "--db",
            str(tmp_path / "t.duckdb"),
        ],
        capsys,
    )
    assert code == 0
    assert "sex=F" in out and "FNMR" in out


def test_evaluation_is_recorded_in_the_audit_trail(tmp_path, capsys):
    m = make_manifest(tmp_path)
    db = str(tmp_path / "a.duckdb")
    code, out = run(
        [
            "evaluate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--by",
            "sex",
            "--bootstrap",
            "0",
            "--operator",
            "alice",
            "--purpose",
            "bias audit",
            "--json",
            "--db",
            db,
        ],
        capsys,
        as_="alice",
    )
    assert code == 0, out
    rows = json.loads(out)
    seq = rows[0]["audit_seq"]
    assert seq is not None
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    entry = AuditLog(Database(db)).get(seq)
    record = entry.to_dict()
    text = json.dumps(record)
    assert "evaluate" in text and rows[0]["run_id"] in text and "alice" in text
    code, out = run(
        [
            "calibrate",
            "--manifest",
            str(m),
            "--subject-col",
            "person",
            "--target-fmr",
            "0.01",
            "--operator",
            "alice",
            "--purpose",
            "bias audit",
            "--json",
            "--db",
            db,
        ],
        capsys,
        as_="alice",
    )
    assert code == 0, out
    assert json.loads(out)["audit_seq"] == seq + 1
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--bootstrap", "0",
                     "--operator", "alice", "--json", "--db", db], capsys, as_="bob")
    assert code == 2 and json.loads(out)["code"] == "operator_mismatch"  # --operator is not who signed in


def test_evaluation_without_sign_in_is_refused_and_recorded(tmp_path, capsys, monkeypatch):
    m = make_manifest(tmp_path)
    db = str(tmp_path / "r.duckdb")
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--json", "--db", db], capsys,
                    as_=None)
    assert code == 2 and json.loads(out)["code"] == "not_authenticated"
    assert json.loads(out)["error"] == f"not signed in: {SIGN_IN_HINT}"
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    entries = AuditLog(Database(db)).list()
    assert [e.record.action for e in entries] == ["refused"]
    assert entries[0].record.details["attempted"] == "evaluate"


@pytest.mark.parametrize(
    ("value", "problem"),
    [("nan", "not a finite number"), ("1e309", "not a finite number"), ("-0.5", r"cosine distance in \[0, 2\]"),
     ("2.5", r"cosine distance in \[0, 2\]"), ("fmr=nan", r"must be in \(0, 1\)"), ("close", "neither")],
)
def test_unusable_thresholds_are_refused_and_recorded(tmp_path, capsys, value, problem):
    m = make_manifest(tmp_path, 4)
    db = str(tmp_path / "t.duckdb")
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--threshold", value,
                     "--json", "--db", db], capsys)
    assert code == 2
    error = json.loads(out)
    assert error["code"] == "bad_input" and re.search(problem, error["error"])
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    (entry,) = AuditLog(Database(db)).list()
    assert (entry.record.action, entry.record.outcome) == ("refused", "bad_input")
    assert entry.record.details["attempted"] == "evaluate" and re.search(problem, entry.record.details["reason"])
    assert entry.record.operator == "eval-test"


def test_a_malformed_grouping_is_refused_and_recorded(tmp_path, capsys):
    m = make_manifest(tmp_path, 4)
    db = str(tmp_path / "g.duckdb")
    code, out = run(["calibrate", "--manifest", str(m), "--subject-col", "person", "--target-fmr", "0.01",
                     "--by", "sex*", "--json", "--db", db], capsys)
    assert code == 2 and "bad grouping 'sex*'" in json.loads(out)["error"]
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    assert [(e.record.action, e.record.details["attempted"]) for e in AuditLog(Database(db)).list()] == [
        ("refused", "calibrate")]


def test_named_thresholds_and_the_default_keyword(tmp_path, capsys, runtime_engine):
    m = make_manifest(tmp_path, 12)
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--threshold", "default",
                     "--threshold", "0.5", "--bootstrap", "0", "--no-store", "--json", "--db",
                     str(tmp_path / "d.duckdb")], capsys)
    assert code == 0, out
    overall = {r["threshold_name"]: r for r in json.loads(out) if r["pairing"] == "all"}
    assert set(overall) == {"default", "0.5"}
    assert overall["default"]["threshold"] == runtime_engine.config.threshold
    assert overall["default"]["threshold_source"] == runtime_engine.config.threshold_source.kind
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--bootstrap", "0",
                     "--no-store", "--json", "--db", str(tmp_path / "e.duckdb")], capsys)
    assert {r["threshold_name"] for r in json.loads(out)} == {"default", "fmr=0.001", "fmr=0.0001"}


def test_calibrate_saves_the_default_threshold_with_its_provenance(tmp_path, capsys, runtime_engine):
    m = make_manifest(tmp_path)
    db = str(tmp_path / "s.duckdb")
    code, out = run(["calibrate", "--manifest", str(m), "--subject-col", "person", "--target-fmr", "0.01",
                     "--by", "sex", "--json", "--db", db], capsys)
    assert code == 0, out
    payload = json.loads(out)
    assert payload["saved"] is True
    from core.storage.connection import Database
    from core.thresholds import ThresholdStore

    threshold, source = ThresholdStore(Database(db)).latest(runtime_engine.config)
    assert threshold == payload["threshold"]
    assert (source.kind, source.dataset, source.dataset_fingerprint) == (
        "calibrated", payload["dataset"], payload["dataset_fingerprint"])
    assert dict(source.per_group_fmr) == {r["group_name"]: r["fmr"] for r in payload["per_group"]
                                          if r["pairing"] == "within"}


def test_lfw_rows_are_stored_and_in_the_audit_record(tmp_path, capsys):
    make_lfw(tmp_path)
    db = str(tmp_path / "l.duckdb")
    code, out = run(["evaluate", "--lfw", str(tmp_path), "--bootstrap", "0", "--threshold", "0.5", "--json",
                     "--db", db], capsys)
    assert code == 0, out
    rows = json.loads(out)
    ten_fold = next(r for r in rows if r["kind"] == "lfw_10fold")
    pair_rows = [r for r in rows if r["kind"] == "lfw_pairs"]
    from audit.evaluation.store import EvaluationStore
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    stored = EvaluationStore(Database(db)).load(ten_fold["run_id"])
    assert stored.lfw_accuracy()["accuracy"] == ten_fold["accuracy"]
    assert [r["group"] for r in stored.lfw_pair_rows()] == [r["group"] for r in pair_rows]
    details = AuditLog(Database(db)).get(ten_fold["audit_seq"]).record.details
    assert details["lfw_accuracy"] == f"{ten_fold['accuracy']:.6f}" and details["run_id"] == ten_fold["run_id"]


def test_the_command_has_no_engine_hook():
    assert not hasattr(cli_eval, "set_engine_factory")


def test_lfw_says_it_embedded_the_central_face_and_takes_another_rule_only_when_named(tmp_path, capsys):
    make_lfw(tmp_path)
    db = str(tmp_path / "s.duckdb")
    base = ["evaluate", "--lfw", str(tmp_path), "--bootstrap", "0", "--threshold", "0.5", "--db", db]
    code, out = run(base, capsys)
    assert code == 0, out
    assert "subject face: central (LFW protocol: each image is a 250x250 crop centred on" in out
    code, out = run([*base, "--json"], capsys)
    assert next(r for r in json.loads(out) if r["kind"] == "lfw_10fold")["subject_face"] == "central"
    code, out = run([*base, "--subject-face", "largest", "--json"], capsys)
    ten_fold = next(r for r in json.loads(out) if r["kind"] == "lfw_10fold")
    assert code == 0 and ten_fold["subject_face"] == "largest"
    details = Runtime(db).log.get(ten_fold["audit_seq"]).record.details
    assert details["subject_face"] == "largest" and details["subject_face_reason"].startswith("asked for")
    with pytest.raises(SystemExit) as refused:
        run([*base, "--subject-face", "middle"], capsys)
    assert refused.value.code == 2 and "invalid choice: 'middle'" in capsys.readouterr().err
