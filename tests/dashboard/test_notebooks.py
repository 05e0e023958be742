"""The notebooks run top to bottom on the shared data (a subset of people), through the audited runner.

Each run is the notebook as stored (no outputs) with two changes made here: its
``parameters`` cell sets a subset of people, and a first cell wraps
:func:`audit.evaluation.runner.run_evaluation` wherever it is bound, writing every
call to a file: the notebooks' part of the evaluation walk (``test_evaluation_walk.py``
has the CLI's and the demo's).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from audit import AuditFilter, EvaluationStore, Runtime
from tests.auth import token_for
from tests.dashboard.conftest import data_or_skip

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = [pytest.mark.data, pytest.mark.model, pytest.mark.slow]

_WALK = '''
import json, sys
import audit.evaluation.runner as _runner
_original = _runner.run_evaluation
def _walked(request, engine, stores, session):
    with open({calls!r}, "a", encoding="utf-8") as out:
        out.write(json.dumps({{"dataset": str(request.dataset.path), "operator": session.actor.name}}) + "\\n")
    return _original(request, engine, stores, session)
for _module in list(sys.modules.values()):
    if getattr(_module, "run_evaluation", None) is _original:
        setattr(_module, "run_evaluation", _walked)
'''


@pytest.mark.parametrize(
    ("name", "evaluated"),
    [("bias_evaluation.ipynb", "congress_small"), ("aclu_style_test.ipynb", "congress_small")],
)
def test_notebook_runs_through_the_runner(name: str, evaluated: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_or_skip()
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "stored with outputs"
    (params,) = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    params.source = "SUBJECT_LIMIT = 40"
    calls = tmp_path / "runner-calls.jsonl"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(_WALK.format(calls=str(calls))))
    db = tmp_path / "notebooks.duckdb"
    monkeypatch.setenv("FACETRAIL_DATA", str(data))
    monkeypatch.setenv("FACETRAIL_DB", str(db))
    monkeypatch.delenv("FACETRAIL_OPERATOR", raising=False)
    monkeypatch.setenv("FACETRAIL_TOKEN", token_for(db, "notebook-ci", "admin"))  # the notebook reads it
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    seen = [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]
    assert [Path(c["dataset"]).parent.name for c in seen] == [evaluated]
    assert {c["operator"] for c in seen} == {"notebook-ci"}
    rt = Runtime(str(db))
    (stored,) = EvaluationStore(rt.db).list()
    assert stored.dataset == evaluated
    (record,) = rt.log.list(AuditFilter(action="evaluate"))
    assert record.record.operator == "notebook-ci" and record.record.details["run_id"] == stored.run_id
    assert record.record.model_config["threshold_source"]["kind"] == "calibrated"  # the shipped calibration
    if name == "aclu_style_test.ipynb":
        assert len(rt.log.list(AuditFilter(action="search"))) == 40  # one audited search per member
    rt.close()
