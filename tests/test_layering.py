"""Dependency direction: engine imports only NumPy, the standard library and safetensors."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ALLOWED = {"numpy", "safetensors", "engine"}


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_engine_imports_only_numpy_stdlib_and_safetensors():
    offending = {
        path: sorted(names - ENGINE_ALLOWED - set(sys.stdlib_module_names))
        for path, names in _imports("engine").items()
    }
    offending = {path: names for path, names in offending.items() if names}
    assert offending == {}


def test_the_check_sees_imports():
    assert "numpy" in _imports("engine")["engine/network.py"]
