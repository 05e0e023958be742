"""The evaluate/calibrate commands with a fake engine (no model needed)."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dashboard.cli import evaluate as cli_eval


@dataclass
class _Emb:
    vector: np.ndarray


@dataclass
class _Failure:
    image: str
    code: str
    message: str


@dataclass
class _Batch:
    embeddings: dict
    failures: list


class FakeEngine:
    """Vectors near a per-subject centre (subject = parent folder); files named *noface* fail."""

    def embed_batch(self, paths, **_):
        out, failures = {}, []
        for p in paths:
            if "noface" in p:
                failures.append(_Failure(p, "no_face", "no face"))
                continue
            subj = Path(p).parent.name
            c = np.random.default_rng(int(hashlib.sha256(subj.encode()).hexdigest()[:8], 16)).standard_normal(16)
            e = np.random.default_rng(int(hashlib.sha256(p.encode()).hexdigest()[:8], 16)).standard_normal(16)
            v = c + 0.6 * e
            out[p] = _Emb((v / np.linalg.norm(v)).astype(np.float32))
        return _Batch(out, failures)


@pytest.fixture(autouse=True)
def fake_engine():
    cli_eval.set_engine_factory(lambda args: FakeEngine())
    yield
    cli_eval.set_engine_factory(None)


def make_manifest(tmp_path: Path, n_subjects: int = 30) -> Path:
    rows = ["image,person,sex,race,age"]
    rng = np.random.default_rng(0)
    for s in range(n_subjects):
        sex = "F" if s % 2 else "M"
        race = ["a", "b", "a; b", ""][s % 4]
        for k in range(3):
            name = "noface.png" if (s == 0 and k == 2) else f"{k}.png"
            p = tmp_path / "img" / f"s{s}" / name
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(p)
            rows.append(f"img/s{s}/{name},s{s},{sex},{race},{20 + s}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.csv"


@pytest.fixture(autouse=True)
def audit_context(monkeypatch):
    """Every evaluation is an audited action: give the runs an operator and a purpose."""
    monkeypatch.setenv("FACETRAIL_OPERATOR", "eval-test")
    monkeypatch.setenv("FACETRAIL_PURPOSE", "testing")


def run(argv, capsys):
    parser = argparse.ArgumentParser()
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db")
    parent.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command")
    cli_eval.register(sub, [parent])
    args = parser.parse_args(argv)
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
    assert all(keys <= set(r) for r in rows)
    assert {r["threshold_name"] for r in rows} == {"fmr=0.01", "0.5"}
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
            "--json",
            "--db",
            str(tmp_path / "c.duckdb"),
        ],
        capsys,
    )
    assert code == 0, out
    payload = json.loads(out)
    assert payload["achieved_fmr"] <= 0.01
    assert payload["saved"] is False  # the fake engine has no model config
    assert {r["group_name"] for r in payload["per_group"]} >= {"sex=F", "sex=M"}


def test_lfw_mode(tmp_path, capsys):
    rng = np.random.default_rng(1)
    names = [f"P{i}" for i in range(8)]
    for name in names:
        for k in range(1, 4):
            p = tmp_path / "images" / name / f"{name}_{k:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(p, format="JPEG")
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
    )
    assert code == 0, out
    assert json.loads(out)["audit_seq"] == seq + 1


def test_evaluation_without_operator_is_refused_and_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FACETRAIL_OPERATOR")
    m = make_manifest(tmp_path)
    db = str(tmp_path / "r.duckdb")
    code, out = run(["evaluate", "--manifest", str(m), "--subject-col", "person", "--json", "--db", db], capsys)
    assert code == 2 and json.loads(out)["code"] == "missing_context"
    from audit.trail.log import AuditLog
    from core.storage.connection import Database

    entries = AuditLog(Database(db)).list()
    assert [e.record.action for e in entries] == ["refused"]
    assert entries[0].record.details["attempted"] == "evaluate"
