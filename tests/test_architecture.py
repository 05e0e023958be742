"""The floor plan, checked: imports only go down (dashboard -> audit -> core), and storage has one schema.

The import graph is read from the source (every ``import`` and ``from ... import`` of
every module of core, audit and dashboard, including those inside functions), so an
arrow that runs back up fails here whether or not it is exercised by another test.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "audit", "dashboard")
#: What each package may import of the others.
ALLOWED = {"core": set(), "audit": {"core"}, "dashboard": {"core", "audit"}}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, except what sits under ``if TYPE_CHECKING:`` (type hints, not imports that run)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


GRAPH = {name: _imports(path, name) for name, path in _modules().items()}


def test_no_import_runs_back_up() -> None:
    upward = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if (top := target.split(".")[0]) in PACKAGES and top != name.split(".")[0]
        and top not in ALLOWED[name.split(".")[0]]
    )
    assert upward == []


def test_the_module_graph_has_no_cycle() -> None:
    internal = {n: {t for t in ts if t in GRAPH and t != n} for n, ts in GRAPH.items()}
    # module-level imports only make cycles that break imports; count all, but skip package __init__ re-exports
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(internal[node]):
            if GRAPH_INIT.get(nxt):  # importing a package's __init__ re-export is not a dependency of its parts
                continue
            if state.get(nxt) == 1:
                cycle.extend([*stack, node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(internal):
        if state.get(node) is None and visit(node, []):
            break
    assert cycle == []


GRAPH_INIT = {name: path.name == "__init__.py" for name, path in _modules().items()}


def test_core_and_audit_leave_streamlit_and_dashboard_out() -> None:
    code = (
        "import sys, core, audit, audit.trail, audit.evaluation, audit.runtime, audit.audited; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'dashboard')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def _source(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return path.read_text(encoding="utf-8")


def test_interfaces_import_only_public_names() -> None:
    """The CLI, the pages, the demo and the notebooks use what core and audit list in ``__all__``."""
    import audit
    import core

    public = {"core": set(core.__all__), "audit": set(audit.__all__)}
    sources = list((ROOT / "dashboard").rglob("*.py")) + list((ROOT / "notebooks").glob("*.ipynb"))
    private = []
    for path in sources:
        for node in ast.walk(ast.parse(_source(path))):
            if isinstance(node, ast.Import):
                private += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names
                            if a.name.split(".")[0] in public and "." in a.name]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in public:
                top = node.module.split(".")[0]
                private += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}" for a in node.names
                            if node.module != top or a.name not in public[top]]
    assert private == []


def test_only_the_schema_module_creates_tables() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "CREATE TABLE" in path.read_text(encoding="utf-8") and path != ROOT / "core" / "storage" / "schema.py"
    )
    assert offenders == []


@pytest.mark.parametrize("package", ["core", "audit"])
def test_no_function_over_120_lines(package: str) -> None:
    long = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > 120:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length} lines)")
    assert long == []


def test_the_cli_lists_every_command() -> None:
    done = subprocess.run([sys.executable, "-m", "dashboard.cli", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=True)
    for command in ("models", "verify", "gallery", "search", "audit", "review", "evaluate", "calibrate", "demo",
                    "dashboard", "users", "datasets"):
        assert re.search(rf"^\s+{command}\b", done.stdout, re.M), command
