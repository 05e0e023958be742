"""The notebooks run top to bottom on the shared data (a subset of people, to keep CI short)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.dashboard.conftest import data_or_skip

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = [pytest.mark.data, pytest.mark.model, pytest.mark.slow]


@pytest.mark.parametrize("name", ["bias_evaluation.ipynb", "aclu_style_test.ipynb"])
def test_notebook_runs(name: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_or_skip()
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), "stored with outputs"
    monkeypatch.setenv("FACETRAIL_TEST_DATA", str(data))
    monkeypatch.setenv("FACETRAIL_NOTEBOOK_SUBJECTS", "60")
    monkeypatch.setenv("FACETRAIL_NOTEBOOK_DB", str(tmp_path_factory.getbasetemp() / "notebooks.duckdb"))
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
