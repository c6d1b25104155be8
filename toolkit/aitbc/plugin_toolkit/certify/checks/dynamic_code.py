"""The `security` check's own rule: code that runs code where bandit does not look.

bandit sees ``exec(...)`` and ``eval(...)`` called by those names.  These rules read the
parsed source (never running it) for the ways around that:

* ``dynamic-exec``: exec, eval or compile reached through the builtins
  (``getattr(builtins, "exec")``, ``builtins.__dict__["eval"]``, ``vars(builtins)``,
  ``globals()["__builtins__"]``, ``from builtins import exec``), a name computed on the
  builtins that cannot be read (``getattr(builtins, name)``), an attribute name spelled
  out of pieces (``getattr(x, "ex" + "ec")``), and exec, eval or compile passed around
  as values (``run = exec``);
* ``dynamic-import``: ``__import__`` or ``importlib.import_module`` given a module name
  that is not a constant;
* ``encoded-exec``: what base64, zlib, marshal, codecs, ... decode, flowing (through
  names, within a function, or out of a function of the same file that returns it)
  into exec, eval, compile, ``types.FunctionType``, ``types.CodeType`` or
  ``marshal.loads``.
"""

from __future__ import annotations

import ast
import warnings
from collections import deque
from dataclasses import dataclass

from ._bindings import (
    BUILTINS,
    IMPORTERS,
    NAMESPACE,
    Bindings,
    Scope,
    importer_argument,
)

EXEC = "dynamic-exec"
IMPORT = "dynamic-import"
ENCODED = "encoded-exec"
RULES = (EXEC, IMPORT, ENCODED)
RUNS_CODE = frozenset({"builtins.exec", "builtins.eval", "builtins.compile"})
#: What an attribute name spelled out of pieces (rather than written) is suspect as.
HIDDEN_NAMES = frozenset(
    {"exec", "eval", "compile", "__import__", "import_module", "system", "popen", "Popen",
     "spawnv", "execv", "loads", "FunctionType", "CodeType", "__builtins__"}
)  # fmt: skip
SINKS = RUNS_CODE | {"types.FunctionType", "types.CodeType", "marshal.loads"}
DECODERS = frozenset(
    [f"base64.{n}" for n in ("b64decode", "b32decode", "b32hexdecode", "b16decode",
                             "a85decode", "b85decode", "z85decode", "urlsafe_b64decode",
                             "standard_b64decode", "decodebytes", "decodestring")]
    + [f"binascii.{n}" for n in ("a2b_base64", "a2b_hex", "unhexlify", "a2b_uu", "a2b_qp")]
    + [f"{m}.decompress" for m in ("zlib", "gzip", "bz2", "lzma")]
    + ["zlib.decompressobj", "marshal.loads", "codecs.decode", "codecs.getdecoder",
       "builtins.bytes.fromhex", "builtins.bytearray.fromhex"]
)  # fmt: skip
_ITEM = frozenset({"get", "__getitem__", "pop", "setdefault"})


@dataclass(frozen=True)
class DynamicFinding:
    rule: str  # one of RULES (the finding's rule id is "security.<rule>")
    line: int
    lines: tuple[int, ...]  # the statement's lines: where a `# nosec` for it may sit
    severity: str  # in bandit's words: "HIGH" | "MEDIUM"
    confidence: str
    message: str


class UnscannableSource(Exception):
    """The source is too deeply nested for the rule to read."""


def scan_source(source: str | bytes) -> list[DynamicFinding]:
    """The rule's findings in one module; none for a file Python cannot parse (bandit
    reports that one, and the check is then an error)."""
    try:
        with warnings.catch_warnings():  # invalid escapes and the like are not ours to say
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    except (RecursionError, MemoryError):
        raise UnscannableSource("nested too deeply to parse") from None
    try:
        return _Rules(tree).run()
    except (RecursionError, MemoryError):
        raise UnscannableSource("nested too deeply to read") from None


def _text(node: ast.AST, limit: int = 60) -> str:
    try:
        text = " ".join(ast.unparse(node).split())
    except (RecursionError, ValueError, AttributeError):
        return type(node).__name__
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _through(node: ast.AST, name: str) -> str:
    return f"`{_text(node)}` reaches {name}() through the builtins, where bandit does not look"


def _short(qualified: str) -> str:
    return qualified.removeprefix("builtins.")


class _Rules:
    def __init__(self, tree: ast.Module) -> None:
        self.names = Bindings(tree)
        self.parents = self.names.parents
        self.tainted: dict[tuple[Scope, str], str] = {}  # name -> what decoded its value
        self.decoding: dict[ast.AST, str] = {}  # function -> what its result decodes
        self.found: dict[tuple[str, int], DynamicFinding] = {}
        self._propagate()

    def run(self) -> list[DynamicFinding]:
        for node, scope in self.names.nodes:
            if isinstance(node, ast.Call):
                self._call(node, scope)
            elif isinstance(node, ast.ImportFrom) and node.module == BUILTINS and not node.level:
                self._import_from(node)
            loaded = isinstance(getattr(node, "ctx", None), ast.Load)
            if loaded or isinstance(node, ast.Call):
                self._load(node, scope)
        return sorted(self.found.values(), key=lambda f: (f.line, f.rule))

    def _import_from(self, node: ast.ImportFrom) -> None:
        hidden = [a.name for a in node.names if a.name in ("exec", "eval", "compile", "*")]
        if hidden:
            message = (
                f"`from builtins import {', '.join(hidden)}` gives exec, eval or compile "
                "another name, where bandit does not look"
            )
            self._report(EXEC, node, message)

    # -- what decoded data flows where -----------------------------------------

    def _propagate(self) -> None:
        """Mark the names (and functions' results) that may hold decoded data: a worklist,
        so a long chain of assignments costs one pass per link, not one per name."""
        records: list[tuple[tuple[Scope, str] | ast.AST, str, ast.expr, Scope]] = [
            ((f.owner, f.target), f.target, f.value, f.scope) for f in self.names.flows
        ]
        for node, scope in self.names.scopes.items():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                records += [(node, node.name, value, scope) for value in scope.returns]
        readers: dict[str, list[int]] = {}
        for index, (_, _, value, _) in enumerate(records):
            for name in {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}:
                readers.setdefault(name, []).append(index)
        queue = deque(range(len(records)))
        while queue:
            key, name, value, scope = records[queue.popleft()]
            if key in self.tainted or key in self.decoding:
                continue
            source = self._decoded(value, scope)
            if source is None:
                continue
            if isinstance(key, tuple):
                self.tainted[key] = source
            else:
                self.decoding[key] = source
            queue.extend(readers.get(name, ()))

    def _decoded(self, expr: ast.AST, scope: Scope) -> str | None:
        """What decoding, if any, the value of ``expr`` comes from."""
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                decoders = self.names.resolve(node.func, scope) & DECODERS
                if decoders:
                    return f"data decoded by {_short(min(decoders))} (line {node.lineno})"
                if isinstance(node.func, ast.Name):
                    owner = self.names.lookup(node.func.id, scope)
                    for function in owner.defs.get(node.func.id, []) if owner else []:
                        if function in self.decoding:
                            return f"{self.decoding[function]}, returned by {node.func.id}()"
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                owner = self.names.lookup(node.id, scope)
                if owner is not None and (owner, node.id) in self.tainted:
                    return self.tainted[(owner, node.id)]
        return None

    # -- the rules ---------------------------------------------------------------

    def _report(self, rule: str, node: ast.AST, message: str, confidence: str = "HIGH") -> None:
        line = getattr(node, "lineno", 1)
        statement = node
        while not isinstance(statement, ast.stmt) and statement in self.parents:
            statement = self.parents[statement]
        if hasattr(statement, "body"):  # a def, an if, ...: not its whole body, its node
            statement = node
        first = getattr(statement, "lineno", line)
        last = getattr(statement, "end_lineno", None) or first
        severity = "MEDIUM" if rule == IMPORT else "HIGH"
        lines = tuple(range(first, last + 1))
        finding = DynamicFinding(rule, line, lines, severity, confidence, message)
        self.found.setdefault((rule, line), finding)

    def _call(self, call: ast.Call, scope: Scope) -> None:
        functions = self.names.resolve(call.func, scope)
        args = call.args
        if "builtins.getattr" in functions and len(args) >= 2:
            bases = self.names.resolve(args[0], scope)
            if not self._member(call, bases, args[1], scope):
                spelled = self.names.fold(args[1], scope)
                if spelled in HIDDEN_NAMES and not isinstance(args[1], ast.Constant):
                    message = (
                        f"`{_text(call)}` spells the attribute name {spelled!r} out of "
                        "pieces, hiding what it reaches"
                    )
                    self._report(EXEC, call, message)
        elif isinstance(call.func, ast.Attribute) and call.func.attr in _ITEM and args:
            self._member(call, self.names.resolve(call.func.value, scope), args[0], scope)
        if functions & IMPORTERS:
            name = importer_argument(call)
            if name is None or self.names.fold(name, scope) is None:
                callee = _short(min(functions & IMPORTERS))
                message = (
                    f"`{_text(call)}`: {callee}() is given a module name that is not a "
                    "constant, so what it imports cannot be read"
                )
                self._report(IMPORT, call, message)
        sinks = functions & SINKS
        if sinks:
            for value in [*args, *(k.value for k in call.keywords)]:
                source = self._decoded(value, scope)
                if source is not None:
                    sink = _short(min(sinks))
                    message = f"`{_text(call)}`: {sink}() runs {source}, code no reviewer reads"
                    self._report(ENCODED, call, message)
                    break

    def _member(self, node: ast.AST, bases: frozenset[str], key: ast.AST, scope: Scope) -> bool:
        """A member of the builtins read by name: reported when the name is exec, eval or
        compile, or cannot be read.  True when ``bases`` are the builtins."""
        if not bases & {BUILTINS, NAMESPACE}:
            return False
        name = self.names.fold(key, scope)
        if name is None:
            message = f"`{_text(node)}` reads a builtin by a computed name: it may be exec"
            self._report(EXEC, node, message + ", eval or compile", confidence="MEDIUM")
        elif f"builtins.{name}" in RUNS_CODE:
            self._report(EXEC, node, _through(node, name))
        return True

    def _load(self, node: ast.AST, scope: Scope) -> None:
        parent = self.parents.get(node)
        if isinstance(node, ast.Subscript):
            self._member(node, self.names.resolve(node.value, scope), node.slice, scope)
        elif isinstance(node, ast.Attribute):
            bases = self.names.resolve(node.value, scope)
            if BUILTINS in bases and f"builtins.{node.attr}" in RUNS_CODE:
                self._report(EXEC, node, _through(node, node.attr))
        elif isinstance(node, ast.Name) and node.id in ("exec", "eval", "compile"):
            called = isinstance(parent, ast.Call) and parent.func is node
            if not called and self.names.lookup(node.id, scope) is None:
                message = (
                    f"{node.id} is used as a value (`{_text(parent or node)}`): calls "
                    "through another name for it are hidden from bandit"
                )
                self._report(EXEC, node, message)
        whole = isinstance(node, ast.Attribute | ast.Call | ast.Name)
        if (
            whole
            and not self._taken_apart(node, parent)
            and NAMESPACE in self.names.resolve(node, scope)
        ):
            message = (
                f"`{_text(parent or node)}` reads the builtins' namespace as a whole, "
                "exec, eval and compile included"
            )
            self._report(EXEC, node, message, confidence="MEDIUM")

    def _taken_apart(self, node: ast.AST, parent: ast.AST | None) -> bool:
        """``node`` is only looked into by name (``ns["x"]``, ``ns.get("x")``), or named
        (``ns = vars(builtins)``: then each use of the name is checked)."""
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return True
        if isinstance(parent, ast.Attribute) and parent.value is node and parent.attr in _ITEM:
            return True
        if isinstance(parent, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            return parent.value is node and all(isinstance(t, ast.Name) for t in targets)
        return False
