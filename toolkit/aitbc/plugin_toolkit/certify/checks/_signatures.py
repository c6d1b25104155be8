"""The `interface` check's run-time half: what a host calls, read from the SDK's own
classes, against what the plugin's class holds when it runs, as the metadata probe
(checks/metadata_probe.py, in the jail) describes it.

mypy reads the code a plugin shows it; ``if TYPE_CHECKING:`` branches, methods replaced
after the class is made and instance attributes are invisible to it, and only the
probe's description tells what a host actually calls.  That description is the plugin
process's word: :func:`parse_runtime` takes nothing in it on trust (a shape it does not
expect is a :class:`ValueError`), and :func:`compare` is a pure function over data.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aitbc.plugins.kinds import PLUGIN_KINDS

_P = inspect.Parameter
_KINDS = {
    kind.name: kind
    for kind in (
        _P.POSITIONAL_ONLY,
        _P.POSITIONAL_OR_KEYWORD,
        _P.VAR_POSITIONAL,
        _P.KEYWORD_ONLY,
        _P.VAR_KEYWORD,
    )
}
_POSITIONAL = frozenset({"POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"})
_BY_NAME = frozenset({"POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY"})
MAX_PARAMETERS = 64  # more in an interface method's answer is not a signature but a flood
_MAX_TEXT = 4096


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # an inspect.Parameter kind's name: "POSITIONAL_OR_KEYWORD", ...
    default: bool = False


@dataclass(frozen=True)
class MethodSignature:
    """How a method is called: its parameters (the first one is the instance when
    ``bound``) and whether it is a coroutine function, which hosts await."""

    parameters: tuple[Parameter, ...]
    coroutine: bool
    bound: bool = True


@dataclass(frozen=True)
class RuntimeMethod:
    """What a host gets for ``plugin.<name>`` at run time (the probe's description)."""

    found: bool
    what: str = "function"  # function | staticmethod | classmethod | a type's name | unreadable
    owner: str | None = None  # the class whose __dict__ holds it, or "instance"
    callable: bool = True
    abstract: bool = False
    signature: MethodSignature | None = None  # None: it has none to read
    file: str | None = None  # where its code is, as the plugin's process saw it
    line: int | None = None
    error: str | None = None  # why it could not be looked at


@dataclass(frozen=True)
class RuntimeInterface:
    kind: str
    subclass: bool  # the class is a BasePlugin subclass at run time
    methods: Mapping[str, RuntimeMethod]
    error: str | None = None  # the entry point is not even a class


@dataclass(frozen=True)
class Mismatch:
    method: str  # "" for the class itself
    message: str
    file: str | None = None
    line: int | None = None


# -- the SDK's side -----------------------------------------------------------------------
def signature_of(function: Any) -> MethodSignature:
    parameters = tuple(
        Parameter(p.name, p.kind.name, p.default is not p.empty)
        for p in inspect.signature(function).parameters.values()
    )
    return MethodSignature(parameters, inspect.iscoroutinefunction(function))


def interface_of(kind: str) -> dict[str, MethodSignature]:
    """The public methods of the kind's SDK classes (BasePlugin's first), as the SDK
    declares them: the one statement of what a host calls."""
    sdk = set(PLUGIN_KINDS.values())
    methods: dict[str, MethodSignature] = {}
    for klass in reversed(PLUGIN_KINDS[kind].__mro__):
        if klass in sdk:
            for name, value in vars(klass).items():
                if not name.startswith("_") and inspect.isfunction(value):
                    methods[name] = signature_of(value)
    return methods


def interface_names() -> tuple[str, ...]:
    """Every kind's method names: what the probe is asked about, before the kind is known."""
    return tuple(dict.fromkeys(name for kind in PLUGIN_KINDS for name in interface_of(kind)))


def render(name: str, signature: MethodSignature) -> str:
    """``async def start(self, force=...)``: a signature as the plugin's code spells it."""
    parts: list[str] = []
    marked_keyword = False
    for index, p in enumerate(signature.parameters):
        if p.kind == "KEYWORD_ONLY" and not marked_keyword:
            parts.append("*")
        if p.kind in ("VAR_POSITIONAL", "KEYWORD_ONLY"):
            marked_keyword = True
        text = {"VAR_POSITIONAL": f"*{p.name}", "VAR_KEYWORD": f"**{p.name}"}.get(p.kind, p.name)
        parts.append(f"{text}=..." if p.default else text)
        following = signature.parameters[index + 1 : index + 2]
        if p.kind == "POSITIONAL_ONLY" and not (following and following[0].kind == p.kind):
            parts.append("/")
    prefix = "async def" if signature.coroutine else "def"
    return f"{prefix} {name}({', '.join(parts)})"


# -- the probe's answer -------------------------------------------------------------------
def _text(value: Any, what: str, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError(f"{what} is not a string")
    return value


def _flag(entry: Mapping[str, Any], key: str) -> bool:
    value = entry.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} is not true or false")
    return value


def _parameters(raw: Any, bound: bool, coroutine: bool) -> MethodSignature | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_PARAMETERS:
        raise ValueError(f"the parameters are not a list of at most {MAX_PARAMETERS}")
    parameters = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("a parameter is not an object")
        name, kind = item.get("name"), item.get("kind")
        if not isinstance(name, str) or not name.isidentifier() or kind not in _KINDS:
            raise ValueError(f"a parameter has no valid name and kind: {item!r:.80}")
        parameters.append(Parameter(name, str(kind), _flag(item, "default")))
    try:  # the order Python allows, names unique: what inspect itself would accept
        inspect.Signature(
            [_P(p.name, _KINDS[p.kind], default=0 if p.default else _P.empty) for p in parameters]
        )
    except ValueError as exc:
        raise ValueError(f"the parameters are not a signature: {exc}") from None
    return MethodSignature(tuple(parameters), coroutine, bound)


def _method(raw: Any) -> RuntimeMethod:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    if not _flag(raw, "found"):
        return RuntimeMethod(found=False)
    what = _text(raw.get("what"), "'what'", optional=False) or "?"
    if what == "unreadable":
        return RuntimeMethod(found=True, what=what, error=_text(raw.get("error"), "'error'"))
    line = raw.get("line")
    if line is not None and (type(line) is not int or line < 0):
        raise ValueError("'line' is not a line number")
    return RuntimeMethod(
        found=True,
        what=what,
        owner=_text(raw.get("owner"), "'owner'"),
        callable=_flag(raw, "callable"),
        abstract=_flag(raw, "abstract"),
        signature=_parameters(raw.get("parameters"), _flag(raw, "bound"), _flag(raw, "coroutine")),
        file=_text(raw.get("file"), "'file'"),
        line=line,
    )


def parse_runtime(raw: Any, names: Iterable[str] | None = None) -> RuntimeInterface:
    """The probe's ``runtime`` section, for the ``names`` of its kind's interface (all of
    them by default); a :class:`ValueError` names the first thing out of shape."""
    if not isinstance(raw, dict):
        raise ValueError("the runtime section is not an object")
    kind = raw.get("kind")
    if kind not in PLUGIN_KINDS:
        raise ValueError(f"the kind {kind!r:.40} is not one of {', '.join(PLUGIN_KINDS)}")
    error = _text(raw.get("error"), "'error'")
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        raise ValueError("'methods' is not an object")
    parsed = {}
    for name in interface_of(str(kind)) if names is None else names:
        if name not in methods:
            if error is not None:
                continue  # not a class: there are no methods to describe
            raise ValueError(f"the method {name!r} is not described")
        try:
            parsed[name] = _method(methods[name])
        except ValueError as exc:
            raise ValueError(f"the method {name!r}: {exc}") from None
    return RuntimeInterface(str(kind), _flag(raw, "subclass"), parsed, error)


# -- the comparison -----------------------------------------------------------------------
def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _call_problems(sdk: MethodSignature, runs: MethodSignature) -> list[str]:
    """What goes wrong when hosts call ``runs`` the ways ``sdk`` allows: an argument
    hosts pass that it has no place for, a parameter hosts leave out that it requires."""
    problems = []
    given = list(sdk.parameters[1:] if sdk.bound else sdk.parameters)
    taken = list(runs.parameters)
    if runs.bound:  # the instance goes first, into a positional parameter or *args
        if taken and taken[0].kind in _POSITIONAL:
            taken = taken[1:]
        elif not (taken and taken[0].kind == "VAR_POSITIONAL"):
            problems.append("it has no parameter for the instance, which hosts pass first")
    positional = [p for p in taken if p.kind in _POSITIONAL]
    by_name = {p.name for p in taken if p.kind in _BY_NAME}
    star = any(p.kind == "VAR_POSITIONAL" for p in taken)
    star_star = any(p.kind == "VAR_KEYWORD" for p in taken)
    given_positional = [p for p in given if p.kind in _POSITIONAL]
    for index, p in enumerate(given_positional):
        if index >= len(positional) and not star:
            problems.append(f"it takes no `{p.name}`, which hosts pass")
        elif (
            p.default and p.kind == "POSITIONAL_OR_KEYWORD" and not (p.name in by_name or star_star)
        ):
            problems.append(f"it takes no `{p.name}=`, which hosts may pass by name")
    for p in given:
        if p.kind == "KEYWORD_ONLY" and p.name not in by_name and not star_star:
            problems.append(f"it takes no `{p.name}=`, which hosts pass by name")
    always = len([p for p in given_positional if not p.default])
    sometimes = {p.name for p in given if p.default} | {p.name for p in given_positional}
    keywords = {p.name for p in given if p.kind == "KEYWORD_ONLY" and not p.default}
    for index, p in enumerate(positional):
        if not p.default and index >= always and p.name not in keywords:
            left = "may leave out" if index < len(given_positional) else "do not pass"
            problems.append(f"it requires `{p.name}`, which hosts {left}")
    for p in taken:
        if p.kind == "KEYWORD_ONLY" and not p.default and p.name not in keywords:
            left = "may leave out" if p.name in sometimes else "do not pass"
            problems.append(f"it requires `{p.name}=`, which hosts {left}")
    return problems


def compare_method(name: str, sdk: MethodSignature, runs: RuntimeMethod) -> str | None:
    """Why a host calling ``name`` as the SDK declares it would break, or None."""
    calls = f"hosts call `{render(name, sdk)}`"
    if not runs.found:
        return f"`{name}` is missing at run time, but {calls}"
    if runs.error is not None or runs.what == "unreadable":
        return f"`{name}` cannot be looked at at run time ({runs.error}), but {calls}"
    if runs.abstract:
        owner = f" (the abstract method of {runs.owner})" if runs.owner else ""
        return f"`{name}` is not implemented at run time{owner}, but {calls}"
    if not runs.callable:
        return f"`{name}` is a {runs.what}, not a method, at run time, but {calls}"
    if runs.signature is None:
        return f"`{name}` ({runs.what}) has no signature to read at run time, but {calls}"
    problems = []
    if sdk.coroutine and not runs.signature.coroutine:
        problems.append("it is not a coroutine function, and hosts await what it returns")
    elif runs.signature.coroutine and not sdk.coroutine:
        problems.append("it is a coroutine function, and hosts use what it returns unawaited")
    problems += _call_problems(sdk, runs.signature)
    if not problems:
        return None
    return f"`{render(name, runs.signature)}` runs, but {calls}: {'; '.join(_unique(problems))}"


def compare(interface: Mapping[str, MethodSignature], runtime: RuntimeInterface) -> list[Mismatch]:
    """Each way the plugin's run-time class differs from ``interface`` (the SDK's)."""
    found: list[Mismatch] = []
    if runtime.error is not None:
        return [Mismatch("", f"{runtime.error} at run time, but hosts construct a BasePlugin")]
    if not runtime.subclass:
        found.append(Mismatch("", "the class is not a BasePlugin subclass at run time"))
    for name, sdk in interface.items():
        runs = runtime.methods.get(name, RuntimeMethod(found=False))
        problem = compare_method(name, sdk, runs)
        if problem is not None:
            found.append(Mismatch(name, problem, runs.file, runs.line))
    return found


def shipped_name(code_file: str | None, shipped: Iterable[str]) -> str | None:
    """The shipped file a code object's file name is (the plugin's process sees it
    installed in its environment): the longest shipped path it ends with."""
    if not code_file:
        return None
    path = code_file.replace("\\", "/")
    matches = [name for name in shipped if path == name or path.endswith("/" + name)]
    return max(matches, key=len) if matches else None
