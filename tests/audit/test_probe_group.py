"""The probe's group (audit.probe_group) and the Match log's filter on it (audit.search), from the operator's side.

Only a label the designated evaluation measured is accepted, whitespace aside; anything else is refused
naming the valid labels; a link's ``probe_group`` selects exactly the searches that stated it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import ProbeGroupUnknown, RecordQuery, find_records, group_labels
from audit.evaluation.report import EvaluationReport
from audit.probe_group import check_probe_group, group_key
from audit.runtime import Runtime


def report(groups: list[dict[str, str]]) -> EvaluationReport:
    rows = tuple({"group": g, "bin_lo": 0.0, "bin_hi": 1.0, "impostor": 1, "genuine": 1} for g in groups)
    return EvaluationReport(run={}, rates=(), histogram_rows=rows)


REPORT = report([{}, {"sex": "F"}, {"sex": "M"}, {"race": "b"}, {"race": "b", "sex": "F"}])


def test_the_labels_are_the_single_label_groups_measured() -> None:
    assert group_labels(REPORT) == ("race=b", "sex=F", "sex=M")  # no intersection, no "overall"
    assert group_key("sex=F") == {"sex": "F"}


def test_a_measured_label_is_accepted_and_not_stating_is_none() -> None:
    assert check_probe_group(" sex=F ", ("run1", REPORT)) == "sex=F"
    assert check_probe_group(None, ("run1", REPORT)) is None and check_probe_group("  ", None) is None


@pytest.mark.parametrize("label", ["sex=X", "sex = F", "SEX=F", "race=b, sex=F", "<script>"])
def test_anything_else_is_refused_naming_the_valid_labels(label: str) -> None:
    with pytest.raises(ProbeGroupUnknown, match="valid: race=b, sex=F, sex=M"):
        check_probe_group(label, ("run1", REPORT))


def test_with_no_evaluation_designated_any_label_is_refused() -> None:
    with pytest.raises(ProbeGroupUnknown, match="designates no evaluation"):
        check_probe_group("sex=F", None)


def test_a_links_probe_group_selects_exactly_the_searches_that_stated_it(tmp_path: Path) -> None:
    rt = Runtime(str(tmp_path / "log.duckdb"))
    try:
        seqs = [rt.log.append({"action": "search", "outcome": "no_match", "operator": "op1", "purpose": "p",
                               "case_ref": "CR-1", "details": {"probe_group": g} if g else {}}).seq
                for g in ("sex=F", "sex=M", None, "sex=F")]
        query = RecordQuery.from_params({"probe_group": "sex=F"}, action="search")
        assert query.to_params(action="search") == {"probe_group": "sex=F"}  # the link round-trips
        assert [e.seq for e in find_records(rt.log, query)] == [seqs[0], seqs[3]]
        assert len(find_records(rt.log, RecordQuery(action="search"))) == 4
    finally:
        rt.close()
