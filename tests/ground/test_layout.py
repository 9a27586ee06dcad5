"""The house's shape: layers that import only downward, no import circle, small modules.

The layer contract lives in pyproject.toml (``[tool.importlinter]``) and runs in ``make lint``;
these tests run it too, and show it failing on a deliberate upward import.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nnsweep"
MAX_LINES = 450
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every nnsweep module ``path`` imports, at any depth (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("nnsweep"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nnsweep"))
    return found


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_module_opens_with_a_one_line_purpose() -> None:
    bad = []
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        lines = (doc or "").splitlines()
        if not lines or len(lines[0]) < 15 or (len(lines) > 1 and lines[1].strip()):
            bad.append(str(path.relative_to(ROOT)))
    assert bad == []


def test_no_relative_imports() -> None:
    """Absolute imports only: a module's imports say which layer they reach."""
    bad = [
        f"{p.relative_to(ROOT)}:{node.lineno}"
        for p in _modules()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert bad == []


def test_no_import_circle_between_modules() -> None:
    """Tarjan's strongly connected components over every import, type-only ones included."""
    names = {_name(p): p for p in _modules()}
    graph = {
        m: {i for i in _imports(p) if i in names and i != m and not m.startswith(i + ".")}
        for m, p in names.items()
    }
    # a package's __init__ is where its modules are found, not a dependency of theirs
    graph = {m: {i for i in deps if i != "nnsweep"} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")
def test_the_layer_contract_holds_and_fails_on_an_upward_import(tmp_path: Path) -> None:
    kept = _lint(ROOT)
    assert kept.returncode == 0, kept.stdout[-2000:]
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "nnsweep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    bad = copy / "nnsweep" / "data" / "load.py"
    bad.write_text(bad.read_text(encoding="utf-8") + "\nfrom nnsweep.export import card\n")
    broken = _lint(copy)
    assert broken.returncode != 0
    assert "nnsweep.data is not allowed to import nnsweep.export" in broken.stdout
