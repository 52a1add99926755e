"""The house (docs/architecture.md) holds: imports run downhill with no circle, the package's own
modules are imported at module top only, plugins import only the plugin face, the pipeline reads as
its stages, no function is long or complex, and importing the pipeline loads no TensorFlow.

The import-linter contract in pyproject.toml is the first proof; the scan here is a second,
independent one that also reads every import inside a function.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import REPO

PACKAGES = ("framework", "plugins")


def modules() -> dict[str, Path]:
    """Every module of the two packages: dotted name -> file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(node: ast.Import | ast.ImportFrom, here: str, is_pkg: bool,
             known: dict[str, Path]) -> list[str]:
    """The package modules an import statement reaches (``from x import mod`` counts ``x.mod``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parent = here.split(".") if is_pkg else here.split(".")[:-1]
            parent = parent[:len(parent) - (node.level - 1)]
            base = ".".join(parent + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    return [n for n in names if n.split(".")[0] in PACKAGES and n in known]


def graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """``module -> modules it imports`` (anywhere in the file), and the imports made inside a
    function or class body: ``(module, line, target)``."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    nested = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = imported(node, name, path.name == "__init__.py", known)
                edges[name].update(t for t in targets if t != name)
                if targets and id(node) not in top:
                    nested.append((name, node.lineno, targets[0]))
    return edges, nested


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` reaches through imports (itself only if through a circle)."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(edges.get(v, ()))
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The circles: groups of modules that each reach every other through imports."""
    reach = {v: reachable(edges, v) for v in edges}
    found = {tuple(sorted(w for w in reach[v] if v in reach[w])) for v in edges if v in reach[v]}
    return sorted(list(c) for c in found)


def test_scan_finds_a_circle_it_is_shown():
    """The scan itself can fail: a made-up circle through a package is found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_any_import():
    edges, _ = graph()
    # a package's __init__ importing its own modules (to register them) is how Python packages
    # work; a module reaching back to its package's __init__ would close a circle and is counted
    assert cycles(edges) == []


def test_package_modules_are_imported_at_module_top():
    _, nested = graph()
    # the one exception: the pyfunc model's code, which MLflow runs in a fresh interpreter
    assert [n for n in nested if n[0] != "framework.tracking.model"] == []


def test_plugins_import_only_the_plugin_face():
    edges, _ = graph()
    reached = {t for m, ts in edges.items() if m.startswith("plugins") for t in ts
               if t.startswith("framework")}
    assert reached == {"framework.analysis"}


def test_lint_imports_keeps_the_layers():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed in this environment")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_pipeline_is_its_stages_and_no_function_is_long():
    assert len((REPO / "framework" / "pipeline.py").read_text().splitlines()) <= 150
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append((name, node.name, lines))
    assert long == []


def test_complexity_gate_is_configured_and_kept():
    lint = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C90" in lint["select"] and lint["mccabe"]["max-complexity"] == 10
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(ruff), "check", "--select", "C90", *PACKAGES], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_importing_the_pipeline_loads_no_tensorflow():
    code = ("import sys, framework.pipeline, framework.config; "
            "heavy = [m for m in ('tensorflow', 'nengo_dl', 'mlflow', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
