"""What the names of one Python file may denote, read statically (never run).

:class:`Bindings` records every scope of a parsed module: the names it binds, the
expressions assigned to them, its imports.  From those, :meth:`Bindings.resolve` gives
the qualified names an expression *may* denote (``b64.b64decode`` after ``import base64
as b64`` is ``base64.b64decode``; ``getattr(builtins, "exec")`` is ``builtins.exec``;
``globals()["__builtins__"]`` is ``builtins``) and :meth:`Bindings.fold` the string an
expression built only from constants spells (``"ex" + "ec"``).  The reading is
flow-insensitive: every assignment of a name counts wherever it is, so a name bound to
several things may denote any of them (the dynamic-code rule would rather over-report).
Walks are iterative and resolution is depth-limited: no source makes them recurse
without bound.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field

BUILTIN_NAMES = frozenset(dir(builtins))
BUILTINS = "builtins"
NAMESPACE = "builtins.__dict__"  # the builtins' namespace: vars(builtins)
GLOBALS = "<globals>"  # globals(), locals(), vars()
IMPORTERS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})
MAX_DEPTH = 24  # resolution steps: more than any honest chain of aliases needs
MAX_FOLDED = 256  # a longer "name" is not one worth spelling out
_NOTHING: frozenset[str] = frozenset()
_CASE = frozenset(
    {"lower", "upper", "casefold", "strip", "lstrip", "rstrip", "title", "capitalize"}
)
_ITEM = frozenset({"get", "__getitem__", "pop", "setdefault"})
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(eq=False)
class Scope:
    node: ast.AST
    parent: Scope | None
    is_class: bool = False
    local: set[str] = field(default_factory=set)  # every name bound here, however
    stores: dict[str, int] = field(default_factory=dict)  # how many bindings
    exact: dict[str, list[tuple[ast.expr, Scope]]] = field(default_factory=dict)  # name = expr
    imports: dict[str, set[str]] = field(default_factory=dict)  # name -> qualified names
    defs: dict[str, list[FunctionNode]] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)  # global / nonlocal here
    returns: list[ast.expr] = field(default_factory=list)

    def chain(self) -> Iterator[Scope]:
        """This scope, then those its code sees (class bodies are not seen from inside)."""
        yield self
        scope = self.parent
        while scope is not None:
            if not scope.is_class:
                yield scope
            scope = scope.parent


@dataclass(frozen=True)
class Flow:
    """``target``, a name of ``owner``, may hold a value computed from ``value``."""

    owner: Scope
    target: str
    value: ast.expr
    scope: Scope  # where ``value`` is evaluated


def children(node: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Each child of ``node``, and whether it belongs to the scope ``node`` opens (a
    function's decorators, defaults and return annotation are evaluated outside it)."""
    if not isinstance(node, _SCOPES):
        yield from ((child, False) for child in ast.iter_child_nodes(node))
        return
    outside: list[ast.AST] = []
    if isinstance(node, ast.ClassDef):
        outside += [*node.bases, *node.keywords, *node.decorator_list]
    else:
        outside += [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
        if not isinstance(node, ast.Lambda):
            outside += [*node.decorator_list, *([node.returns] if node.returns else [])]
    marked = {id(n) for n in outside}
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.arguments):
            yield from ((c, id(c) not in marked) for c in ast.iter_child_nodes(child))
        else:
            yield child, id(child) not in marked


def stored_names(target: ast.AST) -> Iterator[str]:
    """The names an assignment target binds (``a, *b = ...``; not the ``x`` of
    ``d[x] = ...`` or ``x.y = ...``, which bind nothing)."""
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Tuple | ast.List):
            stack += node.elts
        elif isinstance(node, ast.Starred):
            stack.append(node.value)


def _integer(node: ast.AST) -> int | None:
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -sign, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) < 1 << 31:
        return sign * node.value
    return None


def importer_argument(call: ast.Call) -> ast.expr | None:
    """The module name given to ``__import__`` / ``import_module`` (None: not given
    where it can be read, e.g. ``*args``)."""
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "name"), None)


class Bindings:
    def __init__(self, tree: ast.Module) -> None:
        self.module = Scope(tree, None)
        self.scopes: dict[ast.AST, Scope] = {tree: self.module}
        self.flows: list[Flow] = []
        self._resolved: dict[ast.AST, frozenset[str]] = {}
        self._folded: dict[ast.AST, str | None] = {}
        #: Every node with the scope its code runs in, and each node's parent.
        self.nodes: list[tuple[ast.AST, Scope]] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        stack: list[tuple[ast.AST, Scope]] = [(tree, self.module)]
        while stack:
            node, scope = stack.pop()
            self.nodes.append((node, scope))
            self._bind(node, scope)
            inner = self.scopes.get(node, scope)
            found = [(child, inner if enters else scope) for child, enters in children(node)]
            for child, _ in found:
                self.parents[child] = node
            stack += reversed(found)  # popped in source order: `global x` before `x = 1`

    # -- binding ---------------------------------------------------------------

    def _owner(self, scope: Scope, name: str) -> Scope:
        if name in scope.declared:  # global x / nonlocal x: bound where it lives
            outer = (s for s in scope.chain() if s is not scope and name in s.local)
            return next(outer, self.module)
        return scope

    def _store(
        self, scope: Scope, name: str, value: ast.expr | None = None, exact: bool = False
    ) -> None:
        owner = self._owner(scope, name)
        owner.local.add(name)
        owner.stores[name] = owner.stores.get(name, 0) + 1
        if value is not None:
            if exact:
                owner.exact.setdefault(name, []).append((value, scope))
            self.flows.append(Flow(owner, name, value, scope))

    def _import(self, scope: Scope, name: str, qualified: str) -> None:
        owner = self._owner(scope, name)
        owner.local.add(name)
        owner.stores[name] = owner.stores.get(name, 0) + 1
        owner.imports.setdefault(name, set()).add(qualified)

    def _bind(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, _SCOPES):
            inner = Scope(node, scope, is_class=isinstance(node, ast.ClassDef))
            self.scopes[node] = inner
            if isinstance(node, ast.Lambda):
                inner.returns.append(node.body)
            else:
                self._store(scope, node.name)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self._owner(scope, node.name).defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            scope.declared.update(node.names)
        elif isinstance(node, ast.arg):
            self._store(scope, node.arg)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                self._import(scope, alias.asname or top, alias.name if alias.asname else top)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if alias.name != "*":
                    self._import(scope, alias.asname or alias.name, f"{module}.{alias.name}")
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                exact = isinstance(target, ast.Name)
                for name in stored_names(target):
                    self._store(scope, name, node.value, exact)
        elif isinstance(node, ast.AugAssign):
            for name in stored_names(node.target):
                self._store(scope, name, node.value)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            for name in stored_names(node.target):
                self._store(scope, name, node.iter)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            for name in stored_names(node.optional_vars):
                self._store(scope, name, node.context_expr)
        elif isinstance(node, ast.Return) and node.value is not None:
            scope.returns.append(node.value)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            self._store(scope, node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self._store(scope, node.rest)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            self._owner(scope, node.id).local.add(node.id)  # del x, and forms not above

    # -- reading ---------------------------------------------------------------

    def lookup(self, name: str, scope: Scope) -> Scope | None:
        """The scope whose binding of ``name`` code in ``scope`` sees (None: a builtin,
        or undefined)."""
        if name in scope.declared:
            scope = self._owner(scope, name)
        return next((s for s in scope.chain() if name in s.local), None)

    def resolve(self, expr: ast.AST, scope: Scope, depth: int = 0) -> frozenset[str]:
        """The qualified names ``expr`` may denote (empty: unknown)."""
        if depth > MAX_DEPTH:
            return _NOTHING
        if expr not in self._resolved:
            self._resolved[expr] = _NOTHING  # inside a cycle of aliases: nothing more
            self._resolved[expr] = self._resolve(expr, scope, depth + 1)
        return self._resolved[expr]

    def _resolve(self, expr: ast.AST, scope: Scope, depth: int) -> frozenset[str]:
        if isinstance(expr, ast.Name):
            owner = self.lookup(expr.id, scope)
            if owner is None:
                if expr.id == "__builtins__":
                    return frozenset({BUILTINS})
                known = expr.id in BUILTIN_NAMES
                return frozenset({f"builtins.{expr.id}"}) if known else _NOTHING
            found = set(owner.imports.get(expr.id, ()))
            for value, where in owner.exact.get(expr.id, ()):
                found |= self.resolve(value, where, depth)
            return frozenset(found)
        if isinstance(expr, ast.Attribute):  # a dict's methods are not builtins
            bases = self.resolve(expr.value, scope, depth) - {NAMESPACE}
            return frozenset(f"{base}.{expr.attr}" for base in bases)
        if isinstance(expr, ast.Subscript):
            return self._item(self.resolve(expr.value, scope, depth), expr.slice, scope, depth)
        if isinstance(expr, ast.Call):
            return self._call(expr, scope, depth)
        return _NOTHING

    def _item(
        self, bases: frozenset[str], key_expr: ast.AST, scope: Scope, depth: int
    ) -> frozenset[str]:
        key = self.fold(key_expr, scope, depth)
        found = set()
        for base in bases if key is not None else ():
            if base in (BUILTINS, NAMESPACE):
                found.add(f"builtins.{key}")
            elif base == GLOBALS and key == "__builtins__":
                found.add(BUILTINS)
            elif base == "sys.modules":
                found.add(str(key))
        return frozenset(found)

    def _call(self, call: ast.Call, scope: Scope, depth: int) -> frozenset[str]:
        functions, args = self.resolve(call.func, scope, depth), call.args
        if "builtins.getattr" in functions and len(args) >= 2:
            key = self.fold(args[1], scope, depth)
            bases = self.resolve(args[0], scope, depth) - {NAMESPACE}
            return frozenset(f"{base}.{key}" for base in bases) if key else _NOTHING
        if functions & {"builtins.globals", "builtins.locals"} or (
            "builtins.vars" in functions and not args
        ):
            return frozenset({GLOBALS})
        if "builtins.vars" in functions and len(args) == 1:
            bases = self.resolve(args[0], scope, depth)
            return frozenset(NAMESPACE if b == BUILTINS else f"{b}.__dict__" for b in bases)
        if functions & IMPORTERS:
            name = importer_argument(call)
            module = self.fold(name, scope, depth) if name is not None else None
            return frozenset({module, module.split(".")[0]}) if module else _NOTHING
        if "builtins.type" in functions and len(args) == 1 and isinstance(args[0], ast.Lambda):
            return frozenset({"types.FunctionType"})
        if isinstance(call.func, ast.Attribute) and call.func.attr in _ITEM and args:
            return self._item(self.resolve(call.func.value, scope, depth), args[0], scope, depth)
        return _NOTHING

    def fold(self, expr: ast.AST, scope: Scope, depth: int = 0) -> str | None:
        """The string ``expr`` always spells, when it is computed from constants only."""
        if depth > MAX_DEPTH:
            return None
        if expr not in self._folded:
            self._folded[expr] = None
            folded = self._fold(expr, scope, depth + 1)
            fits = folded is not None and len(folded) <= MAX_FOLDED
            self._folded[expr] = folded if fits else None
        return self._folded[expr]

    def _fold(self, expr: ast.AST, scope: Scope, depth: int) -> str | None:
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            terms: list[ast.expr] = []  # flattened: a long "a" + "b" + ... is not deep
            node: ast.expr = expr
            while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                terms.append(node.right)
                node = node.left
            return self._join([node, *reversed(terms)], "", scope, depth)
        if isinstance(expr, ast.JoinedStr):
            return self._join(expr.values, "", scope, depth)
        if isinstance(expr, ast.FormattedValue):
            value = self.fold(expr.value, scope, depth)
            if value is None or expr.format_spec is not None:
                return None
            return {114: repr, 97: ascii}.get(expr.conversion, str)(value)
        if isinstance(expr, ast.Name):
            owner = self.lookup(expr.id, scope)
            if owner is None or owner.stores.get(expr.id) != 1 or expr.id in owner.imports:
                return None  # a name bound once, to a constant, is that constant
            values = owner.exact.get(expr.id, [])
            return self.fold(values[0][0], values[0][1], depth) if values else None
        if isinstance(expr, ast.Subscript):
            return self._fold_slice(expr, scope, depth)
        if isinstance(expr, ast.Call) and not expr.keywords:
            return self._fold_call(expr, scope, depth)
        return None

    def _join(self, parts: list[ast.expr], separator: str, scope: Scope, depth: int) -> str | None:
        folded: list[str] = []
        for part in parts:
            value = self.fold(part, scope, depth)
            if value is None or sum(map(len, folded)) > MAX_FOLDED:
                return None
            folded.append(value)
        return separator.join(folded)

    def _fold_slice(self, expr: ast.Subscript, scope: Scope, depth: int) -> str | None:
        text = self.fold(expr.value, scope, depth)
        index = expr.slice
        if text is None:
            return None
        if not isinstance(index, ast.Slice):
            at = _integer(index)
            return text[at] if at is not None and -len(text) <= at < len(text) else None
        parts = (index.lower, index.upper, index.step)
        bounds = [None if part is None else _integer(part) for part in parts]
        unknown = any(p is not None and b is None for p, b in zip(parts, bounds, strict=True))
        if unknown or bounds[2] == 0:
            return None
        return text[bounds[0] : bounds[1] : bounds[2]]

    def _fold_call(self, call: ast.Call, scope: Scope, depth: int) -> str | None:
        func, args = call.func, call.args
        if isinstance(func, ast.Attribute) and func.attr == "join" and len(args) == 1:
            separator, items = self.fold(func.value, scope, depth), args[0]
            if separator is None:
                return None
            if isinstance(items, ast.List | ast.Tuple):
                return self._join(items.elts, separator, scope, depth)
            if (
                isinstance(items, ast.Call)
                and len(items.args) == 1
                and "builtins.reversed" in self.resolve(items.func, scope, depth)
            ):
                inner = self.fold(items.args[0], scope, depth)
                return None if inner is None else separator.join(reversed(inner))
            inner = self.fold(items, scope, depth)
            return None if inner is None else separator.join(inner)
        if isinstance(func, ast.Attribute) and func.attr in _CASE and not args:
            text = self.fold(func.value, scope, depth)
            return None if text is None else str(getattr(text, func.attr)())
        if isinstance(func, ast.Attribute) and func.attr == "decode" and not args:
            raw = func.value.value if isinstance(func.value, ast.Constant) else None
            return raw.decode("ascii") if isinstance(raw, bytes) and raw.isascii() else None
        names = self.resolve(func, scope, depth)
        if "builtins.chr" in names and len(args) == 1:
            code = _integer(args[0])
            return chr(code) if code is not None and 0 <= code <= 0x10FFFF else None
        if "builtins.str" in names and len(args) == 1:
            return self.fold(args[0], scope, depth)
        return None
