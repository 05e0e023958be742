"""Every data file the packages read beside their code is declared as package data.

Without it a non-editable install (``pip install .``) ships only the ``.py`` files: no shipped threshold
calibrations and no accessible theme. This checks the declaration against the files in the source tree, so a new
data file cannot be added without being shipped.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "audit", "dashboard")
NOT_SHIPPED = {".pyc"}


def _package_data() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["package-data"]


def _declared(path: Path, package_data: dict[str, list[str]]) -> bool:
    for package, patterns in package_data.items():
        base = ROOT / Path(*package.split("."))
        if base in path.parents:
            relative = path.relative_to(base).as_posix()
            if any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns):
                return True
    return False


def test_every_data_file_in_the_packages_is_declared() -> None:
    package_data = _package_data()
    data_files = [
        p for top in PACKAGES for p in (ROOT / top).rglob("*")
        if p.is_file() and p.suffix != ".py" and p.suffix not in NOT_SHIPPED and "__pycache__" not in p.parts
    ]
    assert any(p.name == "calibrations.json" for p in data_files)  # the check sees the files it is about
    missing = [p.relative_to(ROOT).as_posix() for p in data_files if not _declared(p, package_data)]
    assert missing == [], f"not declared in [tool.setuptools.package-data]: {missing}"


def test_each_declared_pattern_matches_a_file() -> None:
    for package, patterns in _package_data().items():
        base = ROOT / Path(*package.split("."))
        for pattern in patterns:
            assert list(base.glob(pattern)), f"{package}: {pattern!r} matches no file"
