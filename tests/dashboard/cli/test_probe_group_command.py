"""``facetrail search --probe-group G`` from the operator's side: the probe's group is stated, never inferred.

A label of the designated evaluation is recorded in the search's ``details.probe_group``; a label it did
not measure (or any label when no evaluation is designated) is refused with the valid labels named,
exits 2, and the refusal is recorded with what was asked; no search runs. The real handlers run in
this process; the face models are the fake of :mod:`tests.video_fakes`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import Runtime
from tests.dashboard.cli.test_threshold_policy_command import ALPHA, BRAVO, PolicyCli, photo  # noqa: F401 (fixture)
from tests.dashboard.groups import evaluate_two_groupings
from tests.video_fakes import VideoFakePipeline, enroll_fake

pytestmark = [pytest.mark.model]

VALID = "race=a, race=b, sex=F, sex=M"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> PolicyCli:
    """Gallery ``g`` and an evaluation of its configuration (groups sex F/M, race a/b), not yet designated."""
    for name in ("FACETRAIL_OPERATOR", "FACETRAIL_TOKEN", "FACETRAIL_CASE", "FACETRAIL_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACETRAIL_PURPOSE", "identify a suspect")
    monkeypatch.setenv("FACETRAIL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("core.engine.FacePipeline", lambda *args, **kwargs: VideoFakePipeline())
    db = tmp_path / "probe_group.duckdb"
    rt = Runtime(str(db))
    try:
        enroll_fake(rt.galleries, "g", rt.config(), [ALPHA, BRAVO])
        run = evaluate_two_groupings(rt, rt.engine_for_gallery("g").config.to_dict())
    finally:
        rt.close()
    out = PolicyCli(db, monkeypatch, capsys)
    out.run_id = run
    return out


def designate(cli: PolicyCli) -> None:
    code, _, err = cli("policy", "threshold", "--evaluation", cli.run_id, "--reason",
                       "the board designates the evaluation", "--json", as_="admin")
    assert code == 0, err


def searches(cli: PolicyCli) -> list:
    return [r for r in cli.records() if r.action in ("search", "refused")]


def test_a_stated_group_of_the_designated_evaluation_is_recorded(cli: PolicyCli, photo: Path) -> None:  # noqa: F811
    designate(cli)
    code, (payload,), err = cli("search", str(photo), "--gallery", "g", "--probe-group", "sex=F", "--json")
    assert code == 0, err
    (record,) = searches(cli)
    assert record.seq == payload["audit_seq"] and record.action == "search"
    assert record.details["probe_group"] == "sex=F"


def test_without_the_flag_nothing_is_stated(cli: PolicyCli, photo: Path) -> None:  # noqa: F811
    designate(cli)
    code, _, err = cli("search", str(photo), "--gallery", "g", "--json")
    assert code == 0, err
    (record,) = searches(cli)
    assert "probe_group" not in record.details


@pytest.mark.parametrize("label", ["sex=X", "sex F", "female", "<b>sex=F</b>"])
def test_an_unknown_label_is_refused_naming_the_valid_ones_and_recorded(cli: PolicyCli, photo: Path,  # noqa: F811
                                                                       label: str) -> None:
    designate(cli)
    code, (out,), err = cli("search", str(photo), "--gallery", "g", "--probe-group", label, "--json")
    assert code == 2
    assert out["code"] == "probe_group_unknown"
    assert f"valid: {VALID}" in out["error"] and repr(label) in out["error"]
    assert f"valid: {VALID}" in err  # the line on stderr names them too
    (refusal,) = searches(cli)  # refused, recorded with what was asked; no search ran
    assert (refusal.action, refusal.outcome) == ("refused", "probe_group_unknown")
    assert refusal.details["probe_group_requested"] == label


def test_with_no_designated_evaluation_a_stated_group_is_refused(cli: PolicyCli, photo: Path) -> None:  # noqa: F811
    code, (out,), _ = cli("search", str(photo), "--gallery", "g", "--probe-group", "sex=F", "--json")
    assert code == 2 and out["code"] == "probe_group_unknown"
    assert "designates no evaluation" in out["error"]
    (refusal,) = searches(cli)
    assert refusal.outcome == "probe_group_unknown"
