"""The ``facetrail`` engine commands, run as a real subprocess: JSON shapes, exit codes, order.

Commands act as a signed-in account (an API token in ``FACETRAIL_TOKEN``): an admin for the
gallery changes, an operator for verify and search.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth import token_for

pytestmark = [pytest.mark.model, pytest.mark.data]

ROLES = {"admin": "cli-admin", "operator": "cli-operator"}
_TOKENS: dict[tuple[str, str], str] = {}


def token(db: Path, role: str) -> str:
    """An API token of this database's ``role`` account (created on first use)."""
    key = (str(db), role)
    if key not in _TOKENS:
        _TOKENS[key] = token_for(db, ROLES[role], role)
    return _TOKENS[key]


def run(args: list[str], db: Path, as_: str | None = "operator", **env: str) -> subprocess.CompletedProcess[str]:
    signed_in = {} if as_ is None else {"FACETRAIL_TOKEN": token(db, as_)}
    environment = {**os.environ, "FACETRAIL_PURPOSE": "testing", "FACETRAIL_CONFIG_DIR": str(db.parent / "config"),
                   **signed_in, **env}
    for name in ("FACETRAIL_OPERATOR", *(() if as_ else ("FACETRAIL_TOKEN",))):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=600,
    )


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, congress_pairs):
    """A database with gallery ``g`` of 6 members (2019 photos), enrolled from a folder."""
    root = tmp_path_factory.mktemp("cli")
    folder = root / "people"
    for pid, old, _ in congress_pairs[:6]:
        (folder / pid).mkdir(parents=True)
        shutil.copy(old, folder / pid / "2019.jpg")
    (folder / congress_pairs[0][0] / "notes.jpg").write_text("not a photo")
    db = root / "cli.duckdb"
    assert run(["gallery", "create", "g", "--json"], db, "admin").returncode == 0
    enrolled = run(["gallery", "enroll", "g", "--folder", str(folder), "--json"], db, "admin")
    assert enrolled.returncode == 0, enrolled.stderr
    return root, db, json.loads(enrolled.stdout)


def test_enroll_reports_enrolled_and_failed(workspace) -> None:
    _, _, report = workspace
    assert report["enrolled"] == 6
    assert [f["image"].endswith("notes.jpg") for f in report["failed"]] == [True]
    assert {"image", "error"} <= report["failed"][0].keys()


def test_verify_json_and_exit_codes(workspace, congress_pairs) -> None:
    _, db, _ = workspace
    _, old, new = congress_pairs[0]
    ok = run(["verify", str(old), str(new), "--json"], db)
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert {"distance", "similarity", "threshold", "verified", "model"} <= payload.keys()
    assert payload["verified"] is True and payload["model"] == "Dlib"
    bad = run(["verify", str(old), "/no/such/file.jpg", "--json"], db)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["code"] == "unreadable_image"


def test_search_one_line_per_image_in_input_order(workspace, congress_pairs) -> None:
    root, db, _ = workspace
    probes = [congress_pairs[2][2], root / "missing.jpg", congress_pairs[4][2], congress_pairs[10][2]]
    proc = run(["search", *map(str, probes), "--gallery", "g", "--top-k", "3", "--json"], db)
    out = lines(proc)
    assert [o["image"] for o in out] == [str(p) for p in probes]
    assert proc.returncode == 2  # one image failed; the others still ran
    assert out[1]["code"] == "unreadable_image" and "error" in out[1]
    assert out[0]["candidates"][0]["subject_id"] == congress_pairs[2][0]
    assert out[2]["candidates"][0]["subject_id"] == congress_pairs[4][0]
    assert set(out[0]["candidates"][0]) >= {"subject_id", "face_id", "distance", "similarity", "rank"}
    assert out[0]["faces_detected"] == 1
    assert all(c["subject_id"] != congress_pairs[10][0] for c in out[3]["candidates"])  # not enrolled


def test_search_without_sign_in_or_purpose_is_refused(workspace, congress_pairs) -> None:
    _, db, _ = workspace
    anonymous = run(["search", str(congress_pairs[2][2]), "--gallery", "g", "--json"], db, None)
    assert anonymous.returncode == 2
    assert lines(anonymous) == [lines(anonymous)[0]] and lines(anonymous)[0]["code"] == "not_authenticated"
    assert "not signed in: run `facetrail login NAME --password-stdin` or set FACETRAIL_TOKEN" in anonymous.stderr
    proc = run(["search", str(congress_pairs[2][2]), "--gallery", "g", "--json"], db, FACETRAIL_PURPOSE="")
    assert proc.returncode == 2
    assert lines(proc) == [lines(proc)[0]] and lines(proc)[0]["code"] == "missing_context"
    refusals = json.loads(run(["audit", "list", "--action", "refused", "--json"], db).stdout)
    assert [(r["record"]["outcome"], r["record"]["operator"], r["record"]["details"]["attempted"])
            for r in refusals[-2:]] == [("not_authenticated", None, "search"),
                                       ("missing_context", "cli-operator", "search")]


def test_roles_and_the_operator_flag_are_enforced(workspace, congress_pairs) -> None:
    _, db, _ = workspace
    probe = str(congress_pairs[2][2])
    forbidden = run(["gallery", "create", "mine", "--json"], db, "operator")
    assert forbidden.returncode == 2 and json.loads(forbidden.stdout)["code"] == "forbidden"
    assert run(["search", probe, "--gallery", "g", "--json"], db, "admin").returncode == 2  # admins do not search
    claimed = run(["search", probe, "--gallery", "g", "--operator", "cli-admin", "--json"], db)
    assert claimed.returncode == 2 and lines(claimed)[0]["code"] == "operator_mismatch"
    same = run(["search", probe, "--gallery", "g", "--operator", " CLI-Operator", "--json"], db)
    assert same.returncode == 0, same.stderr
    record = json.loads(run(["audit", "show", str(lines(same)[0]["audit_seq"]), "--json"], db).stdout)["record"]
    assert record["operator"] == "cli-operator" and record["details"]["auth"]["method"] == "api_token"
    refusals = json.loads(run(["audit", "list", "--action", "refused", "--json"], db).stdout)[-3:]
    assert [(r["record"]["outcome"], r["record"]["operator"]) for r in refusals] == [
        ("forbidden", "cli-operator"), ("forbidden", "cli-admin"), ("operator_mismatch", "cli-operator")]
    assert "mine" not in [g["name"] for g in json.loads(run(["gallery", "list", "--json"], db).stdout)]


def test_list_and_delete_change_the_fingerprint(workspace, congress_pairs) -> None:
    _, db, _ = workspace
    before = json.loads(run(["gallery", "list", "--json"], db).stdout)[0]
    gone = run(["gallery", "delete", "g", "--subject", congress_pairs[5][0], "--json"], db, "admin")
    assert gone.returncode == 0, gone.stderr
    after = json.loads(run(["gallery", "list", "--json"], db).stdout)[0]
    assert after["size"] == before["size"] - 1 and after["fingerprint"] != before["fingerprint"]
    search = lines(run(["search", str(congress_pairs[5][2]), "--gallery", "g", "--json"], db))
    assert all(c["subject_id"] != congress_pairs[5][0] for c in search[0]["candidates"])
    missing = run(["gallery", "delete", "g", "--subject", "nobody", "--json"], db, "admin")
    assert missing.returncode == 2


def test_manifest_enrolment_and_bad_manifest(workspace, congress_pairs, tmp_path: Path) -> None:
    _, db, _ = workspace
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "person", "sex"])
        for pid, _, new in congress_pairs[20:23]:
            writer.writerow([str(new), pid, "F"])
    assert run(["gallery", "create", "m", "--json"], db, "admin").returncode == 0
    ok = run(["gallery", "enroll", "m", "--manifest", str(manifest), "--subject-col", "person", "--json"], db, "admin")
    assert ok.returncode == 0 and json.loads(ok.stdout)["enrolled"] == 3
    bad = run(["gallery", "enroll", "m", "--manifest", str(manifest), "--subject-col", "nope", "--json"], db, "admin")
    assert bad.returncode == 2 and "nope" in json.loads(bad.stdout)["error"]
    unknown = run(["gallery", "enroll", "zzz", "--manifest", str(manifest), "--subject-col", "person", "--json"], db,
                  "admin")
    assert unknown.returncode == 2 and json.loads(unknown.stdout)["code"] == "gallery_not_found"


def test_models_json_lists_availability_and_thresholds(workspace) -> None:
    _, db, _ = workspace
    rows = json.loads(run(["models", "--json"], db).stdout)
    default = [r for r in rows if r["default"]]
    assert len(default) == 1 and default[0]["available"] is True
    assert {"model", "detector", "available", "reason", "threshold_source"} <= default[0].keys()


def test_gallery_of_another_model_is_refused(workspace, congress_pairs) -> None:
    _, db, _ = workspace
    assert run(["gallery", "create", "other", "--json"], db, "admin").returncode == 0
    import duckdb

    with duckdb.connect(str(db)) as con:  # as if enrolled under other weights or library versions
        con.execute("UPDATE galleries SET embedding_key = 'another-model' WHERE name = 'other'")
    proc = run(["search", str(congress_pairs[0][2]), "--gallery", "other", "--json"], db)
    assert proc.returncode == 2
    assert lines(proc)[0]["code"] == "config_mismatch"
