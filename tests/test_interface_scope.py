"""The SDK modules the interface check's mypy analyses (the `follow_imports = normal`
sections of checks/mypy.ini) are exactly those the probe's names need: the modules
defining what the probe imports, and every SDK module they import, at any depth.  One
left out would be Any to mypy and the probe blind to it; one too many costs time."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import aitbc.plugins
from conftest import REPO

SDK_ROOT = REPO / "toolkit"
PACKAGE = "aitbc.plugins"


def followed() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "checks" / "mypy.ini", encoding="utf-8")
    names: set[str] = set()
    for section in parser.sections():
        if section.startswith("mypy-") and parser[section].get("follow_imports") == "normal":
            names |= {name.strip() for name in section.removeprefix("mypy-").split(",")}
    return names


def source_of(module: str) -> Path:
    base = SDK_ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(name: str) -> bool:
    base = SDK_ROOT.joinpath(*name.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def sdk_imports(module: str, *, type_checking: bool = True) -> set[str]:
    """The SDK modules ``module`` imports anywhere in its body (mypy follows them all),
    or, for the package's own ``__init__``, outside its ``TYPE_CHECKING`` block."""
    path = source_of(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(inner) for inner in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor) if node.level else ""
            origin = ".".join(p for p in (base, node.module or "") if p)
            targets = [origin, *(f"{origin}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {t for t in targets if t.startswith(PACKAGE) and is_module(t)}
    return found


def probe_names() -> list[str]:
    template = (REPO / "checks" / "mypy_probe.py.tmpl").read_text(encoding="utf-8")
    imported = re.search(r"from aitbc\.plugins import \(([^)]*)\)", template)
    assert imported is not None, "the probe no longer imports from aitbc.plugins"
    return [name.strip() for name in imported[1].split(",") if name.strip()]


def needed() -> set[str]:
    pending = [getattr(aitbc.plugins, name).__module__ for name in probe_names()]
    pending += [PACKAGE, *sdk_imports(PACKAGE, type_checking=False)]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending += sdk_imports(module) if module != PACKAGE else []
    return seen


def test_mypy_analyses_exactly_the_modules_the_interface_needs() -> None:
    assert needed() == followed()


def test_the_rest_of_the_sdk_is_skipped() -> None:
    parser = configparser.ConfigParser()
    parser.read(REPO / "checks" / "mypy.ini", encoding="utf-8")
    assert parser[f"mypy-{PACKAGE}.*"]["follow_imports"] == "skip"
