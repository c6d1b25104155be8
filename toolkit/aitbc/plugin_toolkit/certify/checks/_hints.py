"""Fix hints for interface errors, in the plugin's own terms.

mypy says what is wrong ("Cannot instantiate abstract class ... "get_command_help"",
"Argument 1 of "get_balance" is incompatible with supertype ..."); the author needs
what to write.  The SDK's declaration is quoted as the SDK's source spells it (the
names a plugin imports, not ``typing.Any``), the plugin's as its own file does.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import warnings
from pathlib import Path

from aitbc.plugins.kinds import PLUGIN_KINDS

from ..model import Finding
from ._shipped import ShippedCode

_ABSTRACT = re.compile(r'abstract attributes? ((?:"\w+"(?:, | and )?)+)')
_OVERRIDE = re.compile(r'^(?:Argument \d+ of |Return type "[^"]*" of |Signature of )?"(\w+)"')


def _header(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    text = f"def {node.name}({ast.unparse(node.args)})"
    if node.returns is not None:
        text += f" -> {ast.unparse(node.returns)}"
    return ("async " if isinstance(node, ast.AsyncFunctionDef) else "") + text


def sdk_declaration(kind: str | None, method: str) -> str | None:
    """``async def start(self) -> bool``, as the SDK class of ``kind`` declares it."""
    # The kind may not be known yet (the probe tells): a method name is one kind's.
    classes = [PLUGIN_KINDS[kind]] if kind in PLUGIN_KINDS else list(PLUGIN_KINDS.values())
    function = next((getattr(c, method) for c in classes if hasattr(c, method)), None)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    except (TypeError, OSError, SyntaxError):
        return None
    node = tree.body[0] if tree.body else None
    return _header(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def plugin_declaration(path: Path, line: int | None) -> str | None:
    """The header of the function defined at ``line`` of ``path`` (decorators included)."""
    if line is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if first <= line <= node.lineno:
                return _header(node)
    return None


def missing_methods(message: str, kind: str | None, class_name: str) -> str:
    """What to add for each abstract method the message names ("" when none)."""
    match = _ABSTRACT.search(message)
    if match is None:
        return ""
    names = re.findall(r'"(\w+)"', match.group(1))
    added = [f"`{d}: ...`" for d in (sdk_declaration(kind, n) for n in names) if d]
    return f"; add to {class_name}: {'; '.join(added)}" if added else ""


def both_signatures(
    message: str, kind: str | None, path: Path, line: int | None, shown: str
) -> str:
    """The SDK's declaration and the plugin's, for an incompatible override."""
    match = _OVERRIDE.match(message)
    if match is None:
        return ""
    sdk = sdk_declaration(kind, match.group(1))
    mine = plugin_declaration(path, line)
    if sdk is None or mine is None or sdk == mine:
        return ""
    return f"; the SDK declares `{sdk}`, {shown} has `{mine}`"


def with_hint(finding: Finding, kind: str | None, shipped: ShippedCode, class_name: str) -> Finding:
    """``finding`` with what to write: the method to add, or both signatures."""
    hint = ""
    if finding.rule == "interface.abstract":
        hint = missing_methods(finding.message, kind, class_name)
    elif finding.rule == "interface.override" and finding.file is not None:
        name = next((f for f in shipped.files if shipped.project_path(f) == finding.file), None)
        if name is not None:
            shown = f"{finding.file}:{finding.line}"
            hint = both_signatures(finding.message, kind, shipped.root / name, finding.line, shown)
    return dataclasses.replace(finding, message=finding.message + hint) if hint else finding
