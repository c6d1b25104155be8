"""Imports of the shipped code that no requirement declares.

``import psutil`` works on the author's machine because psutil happens to be there; on a
host it fails at import.  Each module the wheel ships (its tests and scaffolding aside)
is parsed, never run, and each absolute import at module level or in a function is
traced to the distribution that provides it in the plugin environment (their
``top_level.txt`` or ``RECORD``, read as files).  An import guarded by ``try: ...
except ImportError`` is optional, one under ``if TYPE_CHECKING:`` never runs: neither is
judged.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from ..model import Finding, Severity
from ._shipped import ShippedCode, is_test_or_scaffolding

_OPTIONAL = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class Imported:
    module: str  # the top-level name: "yaml" of "import yaml.constructor"
    file: str  # project-relative
    line: int


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = {getattr(k, "id", None) or getattr(k, "attr", None) for k in kinds}
    return bool(names & _OPTIONAL)


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == (
        "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports under ``node`` that run unguarded."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    if isinstance(node, ast.Try) and any(_catches_import_errors(h) for h in node.handlers):
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            yield from _walk(child)
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.orelse:
            yield from _walk(child)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk(child)


def imports_of(path: Path, shown: str) -> list[Imported]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return []  # the interface and security checks say why it does not parse
    found = []
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [Imported(name.split(".")[0], shown, node.lineno) for name in names]
    return found


def _top_level(dist: importlib.metadata.Distribution) -> set[str]:
    listed = dist.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names = set()
    for file in dist.files or []:
        parts = PurePosixPath(str(file)).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".dist-info"):
            continue
        if parts[0].endswith(".data"):
            continue
        names.add(parts[0].split(".")[0] if len(parts) == 1 else parts[0])
    return names


def providers(search_path: list[str]) -> dict[str, set[str]]:
    """Top-level import name -> the distributions (canonical names) that install it."""
    found: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions(path=search_path):
        name = dist.metadata["Name"]
        if not name:
            continue
        for module in _top_level(dist):
            found.setdefault(module, set()).add(canonicalize_name(name))
    return found


@dataclass(frozen=True)
class Judged:
    findings: list[Finding]
    notes: list[str]


def judge_imports(
    shipped: ShippedCode, *, declared: set[str], brought: dict[str, str], sdk_side: set[str],
    provided: dict[str, set[str]] | None,
) -> Judged:  # fmt: skip
    """``declared``: the plugin's direct requirements; ``brought``: what they pull in
    (name -> the requirement that does); ``sdk_side``: the SDK and what it needs;
    ``provided``: :func:`providers` of the environment, None when there is none."""
    own = {PurePosixPath(f).parts[0].split(".")[0] for f in shipped.files}
    stdlib = set(sys.stdlib_module_names) | {"__future__", "aitbc"}  # aitbc: the SDK
    findings, notes, said = [], [], set()
    for shipped_path in shipped.sources:
        if is_test_or_scaffolding(shipped_path) or not shipped_path.endswith(".py"):
            continue
        shown = shipped.project_path(shipped_path)
        for item in imports_of(shipped.root / shipped_path, shown):
            if item.module in stdlib or item.module in own or item.module in said:
                continue
            said.add(item.module)
            if provided is None:
                if canonicalize_name(item.module) not in declared:
                    notes.append(f"{shown}:{item.line}: import {item.module} not checked "
                                 "against the requirements: no plugin environment")  # fmt: skip
                continue
            dists = provided.get(item.module, set())
            if dists & declared:
                continue
            via = sorted({brought[d] for d in dists if d in brought})
            if via:
                notes.append(f"{shown}:{item.line}: {item.module} comes only with "
                             f"{', '.join(via)}: declare it, as you import it")  # fmt: skip
            elif dists & sdk_side:
                notes.append(f"{shown}:{item.line}: {item.module} comes with the SDK "
                             "(aitbc-plugins): declare it, as you import it")  # fmt: skip
            else:
                where = (f" (the environment has it only from {', '.join(sorted(dists))}, "
                         "installed for certification)") if dists else ""  # fmt: skip
                findings.append(Finding(
                    "audit.undeclared-import", Severity.HIGH,
                    f"imports {item.module}, which no requirement declares{where}: the "
                    "plugin fails to import wherever it is not installed by chance; add "
                    "its distribution to the requirements", item.file, item.line,
                ))  # fmt: skip
    return Judged(findings, notes)
