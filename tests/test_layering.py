"""Dependency direction, checked over the whole import graph.

``engine <- worker -> store <- api`` (the store builds on the engine's spec):
the engine imports NumPy, the standard library and safetensors only; the
store knows neither the API nor the workers; the API never imports worker
code (it sends tasks by name); ``trainapi.settings``, ``trainapi.keys`` and
``trainapi.logs`` are leaves everyone may use, and the CLI and process starter import no
service code (they start processes by module name). No two modules import
each other, directly or around a longer loop.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "store", "worker", "api", "trainapi")
ENGINE_ALLOWED = {"numpy", "safetensors", "engine"}
LEAVES = ("trainapi.settings", "trainapi.keys", "trainapi.logs")
#: What each layer may import from the project (a prefix allows its submodules).
ALLOWED = {
    "engine": ("engine",),
    "store": ("store", "engine"),
    "worker": ("worker", "store", "engine", *LEAVES),
    "api": ("api", "store", "engine", *LEAVES),
    "trainapi": ("trainapi", "store.workers"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path], *, type_only: bool = True) -> set[str]:
    """Every name ``path`` imports (at any depth, also inside functions); ``from a import b`` is ``a.b``
    when that is a module. ``type_only=False`` leaves out the ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    if not type_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in modules else node.module)
    return names


def _graph(*, type_only: bool = True) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules, type_only=type_only) for name, path in modules.items()}


def _allowed(importer: str, imported: str) -> bool:
    layer = importer.split(".")[0]
    if importer in LEAVES:
        return False
    return any(imported == p or imported.startswith(p + ".") for p in ALLOWED[layer])


def test_engine_imports_only_numpy_stdlib_and_safetensors():
    offending = {
        name: sorted({n.split(".")[0] for n in names} - ENGINE_ALLOWED - set(sys.stdlib_module_names))
        for name, names in _graph().items()
        if name.split(".")[0] == "engine"
    }
    assert {name: names for name, names in offending.items() if names} == {}


def test_every_project_import_follows_the_layers():
    offending = {
        (importer, imported)
        for importer, names in _graph().items()
        for imported in names
        if imported.split(".")[0] in PACKAGES and not _allowed(importer, imported)
    }
    assert sorted(offending) == []


def test_no_import_cycles():
    """Imports that run; a type-only import (``if TYPE_CHECKING:``) may point back."""
    modules = _modules()
    graph = {name: {n for n in names if n in modules} for name, names in _graph(type_only=False).items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checks_see_imports():
    graph = _graph()
    assert "numpy" in graph["engine.network"]
    assert "store.queue" in graph["worker.app"]  # a `from store.queue import ...`
    assert "worker.maintenance" in graph["worker.app"]  # a `from worker import maintenance` inside a function
    assert not _allowed("api.routes.jobs", "worker.runner")
    assert not _allowed("store.jobs", "api.errors")
    assert not _allowed("trainapi.keys", "api.auth")
