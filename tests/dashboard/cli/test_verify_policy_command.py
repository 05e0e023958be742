"""``facetrail verify --threshold T`` follows the threshold policy as ``search`` does; ``policy threshold --evaluation``.

Looser than the policy: the warning on stderr, refused (exit 2, recorded with that warning)
without ``--threshold-reason``, run and flagged with one; past the hard limit refused. An admin
designates the evaluation the pages quote; an unknown run id is refused (exit 2). Fake face models.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard.cli.test_threshold_policy_command import (  # noqa: F401  (fixtures)
    REASON,
    PolicyCli,
    cli,
    photo,
    warning_of,
)

pytestmark = [pytest.mark.model]


def test_a_looser_verify_needs_a_reason_and_is_flagged(cli: PolicyCli, photo: Path) -> None:  # noqa: F811
    looser = f"{cli.default * 1.1:.4f}"
    code, out, err = cli("verify", str(photo), str(photo), "--threshold", looser, "--json")
    assert code == 2 and out[0]["code"] == "threshold_reason_required"
    shown = warning_of(err)
    (refusal,) = cli.records()
    assert (refusal.action, refusal.details["attempted"]) == ("refused", "verify")
    assert refusal.details["threshold_policy"]["warning"] == shown
    code, (payload,), err = cli("verify", str(photo), str(photo), "--threshold", looser,
                                "--threshold-reason", REASON, "--json")
    assert code == 0, err
    record = cli.records()[-1]
    assert record.seq == payload["audit_seq"] and record.action == "verify"
    flag = record.details["threshold_policy"]
    assert (flag["status"], flag["reason"], flag["warning"]) == ("looser", REASON, warning_of(err))


def test_past_the_hard_limit_verify_is_refused_whatever_the_reason(cli: PolicyCli, photo: Path) -> None:  # noqa: F811
    code, (out,), err = cli("verify", str(photo), str(photo), "--threshold", f"{cli.default * 1.3:.4f}",
                            "--threshold-reason", REASON, "--json")
    assert code == 2 and out["code"] == "threshold_beyond_limit"
    assert "refused whatever the reason" in warning_of(err)


def test_an_unknown_evaluation_cannot_be_designated(cli: PolicyCli) -> None:  # noqa: F811
    code, _, err = cli("policy", "threshold", "--evaluation", "no-such-run", "--reason",
                       "designate the board's evaluation", as_="admin")
    assert code == 2 and "no stored evaluation" in err
    (refusal,) = cli.records()
    assert (refusal.action, refusal.outcome, refusal.details["attempted"]) == ("refused", "bad_input",
                                                                                "threshold_policy")
