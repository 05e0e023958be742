"""Fixtures of the report tests: the scene (tests/audit/reports/scene.py), built once, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.audit.reports import scene


@pytest.fixture(scope="module")
def scene_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report_scene") / "scene.duckdb"
    scene.build_scene(path)
    return path


@pytest.fixture
def scene_db(scene_template: Path, tmp_path: Path) -> str:
    for source in scene_template.parent.glob(scene_template.name + "*"):
        shutil.copy2(source, tmp_path / source.name)
    return str(tmp_path / scene_template.name)
