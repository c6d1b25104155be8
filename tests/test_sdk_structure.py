"""The SDK's own module structure: no import cycle between its modules.

Every import counts (module level, ``if TYPE_CHECKING:`` blocks, inside functions):
a cycle hidden behind TYPE_CHECKING or a late import is still two modules that
cannot be understood, typed or changed one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aitbc.plugins._graph import find_cycle

PACKAGE = "aitbc.plugins"
ROOT = Path(__file__).resolve().parents[1] / "toolkit" / "aitbc" / "plugins"


def module_names(root: Path) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((PACKAGE, *parts))] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from .x import y` in a.b.c means a.b.x; in package a.b's __init__, a.b.x.
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule; `from pkg import attr`, pkg itself.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # `import aitbc.plugins.x.y` runs x.y; keep the longest name the package has.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_names(root)
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def test_the_graph_sees_the_imports_it_must() -> None:
    graph = import_graph()
    assert "aitbc.plugins.manager" in graph
    # A module-level import, an `if TYPE_CHECKING:` import and a relative one all count.
    assert "aitbc.plugins.base" in graph["aitbc.plugins.manager"]
    assert "aitbc.plugins.manager" in graph[PACKAGE]  # only under TYPE_CHECKING there


def test_imports_in_functions_and_type_checking_blocks_count(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("from ..a import f\nimport aitbc.plugins.b\n")
    graph = import_graph(tmp_path)
    assert graph == {
        PACKAGE: set(),
        f"{PACKAGE}.a": {f"{PACKAGE}.b"},
        f"{PACKAGE}.b": {f"{PACKAGE}.a"},
        f"{PACKAGE}.sub": {f"{PACKAGE}.a", f"{PACKAGE}.b"},
    }
    assert find_cycle(graph) == [f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"]


def test_the_sdk_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    if cycle is not None:
        pytest.fail("import cycle in the SDK: " + " -> ".join(cycle))
