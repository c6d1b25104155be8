"""The metadata probe: runs in the plugin's isolated environment (stdlib + SDK +
the plugin) and prints what the plugin says about itself, as one JSON object.

    python metadata_probe.py PLUGIN_NAME [METHOD ...]  < one line: a nonce

The answer goes to a copy of stdout made before the plugin is imported (so replacing
``sys.stdout`` or fd 1 does not catch it), prefixed with a nonce read from stdin only
once the plugin's code has run (so no code of it, at import or in its methods, finds
the nonce in this process): a line the plugin prints, before, after or instead of the
answer, is never taken for it.  A plugin that read stdin itself leaves the probe no
nonce: it then answers nothing (exit 3), and certification says so.  Certification
compares the answer with the built distribution's metadata and with
config_schema.json, and validates it again itself.  The answer's
``runtime`` section says, for each METHOD (the SDK interface's names, chosen by the
toolkit), what a host calling it on the plugin gets at run time; the `interface` check
compares that with the SDK's signatures.  Never imported into the toolkit's own process.
"""

import inspect
import json
import logging
import os
import sys
import tempfile
import traceback
import types
from importlib.metadata import entry_points


def main(name: str, methods: "list[str] | tuple[str, ...]" = ()) -> dict:
    from aitbc.plugins import BasePlugin, EventBus, PluginContext, kind_of

    found = [ep for ep in entry_points(group="aitbc.plugins") if ep.name == name]
    if not found:
        return {"error": f"no entry point named {name!r} in the group aitbc.plugins"}
    try:
        cls = found[0].load()
    except Exception as exc:
        return {"error": f"importing {found[0].value} failed: {type(exc).__name__}: {exc}"}
    kind = kind_of(cls) if isinstance(cls, type) else "base"
    plugin = None
    with tempfile.TemporaryDirectory() as scratch:
        context = PluginContext(
            config={},
            data_dir=scratch,
            temp_dir=scratch,
            logger=logging.getLogger(name),
            event_bus=EventBus(),
        )
        try:
            plugin = cls(context)  # runs get_metadata(), which validates the metadata
            metadata = plugin.get_metadata()
            schema = plugin.get_config_schema()
        except Exception as exc:
            field = getattr(exc, "field", None)
            # The class is known even when it cannot be constructed: its methods are too.
            return {
                "error": f"{type(exc).__name__}: {exc}",
                "field": field,
                "traceback": traceback.format_exc(limit=-3),
                "runtime": runtime(cls, plugin, kind, methods, BasePlugin),
            }
    return {
        "kind": kind,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "metadata": metadata.to_dict(),
        "incompatibility": metadata.incompatibility(),
        "config_schema": schema,
        "runtime": runtime(cls, plugin, kind, methods, BasePlugin),
    }


def runtime(
    cls: object, plugin: object, kind: str, methods: "list[str] | tuple[str, ...]", base: type
) -> dict:
    """What a host gets for each of ``methods``: read from the class (and the instance's
    own attributes, which shadow it), never by calling the method."""
    if not isinstance(cls, type):
        return {
            "kind": kind,
            "subclass": False,
            "methods": {},
            "error": f"the entry point is a {type(cls).__name__}, not a class",
        }
    described = {}
    for method in methods:
        try:
            described[method] = describe(cls, plugin, method)
        except Exception as exc:  # the plugin's objects may raise anything when looked at
            described[method] = {
                "found": True,
                "what": "unreadable",
                "error": f"{type(exc).__name__}: {exc}"[:300],
            }
    # The SDK's own base in the MRO: no __subclasscheck__ of the plugin's is asked.
    return {"kind": kind, "subclass": base in cls.__mro__, "methods": described}


def describe(cls: type, plugin: object, name: str) -> dict:
    raw, owner = _lookup(cls, plugin, name)
    if owner is None:
        return {"found": False}
    if isinstance(raw, staticmethod):
        what, func, bound = "staticmethod", raw.__func__, False
    elif isinstance(raw, classmethod):
        what, func, bound = "classmethod", raw.__func__, True
    elif isinstance(raw, types.FunctionType):
        # A function in an instance's own __dict__ is not bound: the host passes no self.
        what, func, bound = "function", raw, owner != "instance"
    else:
        what, func, bound = type(raw).__name__, raw, False
    answer = {
        "found": True,
        "what": what,
        "owner": owner,
        "callable": callable(func),
        "abstract": bool(getattr(func, "__isabstractmethod__", False)),
        "coroutine": inspect.iscoroutinefunction(func),
        "bound": bound,
        "parameters": _parameters(func),
        "file": None,
        "line": None,
    }
    # The SDK wraps lifecycle steps (functools.wraps): where the plugin's code is.
    code = getattr(inspect.unwrap(func), "__code__", None) if callable(func) else None
    if isinstance(code, types.CodeType):
        answer["file"], answer["line"] = code.co_filename, code.co_firstlineno
    return answer


def _lookup(cls: type, plugin: object, name: str) -> "tuple[object, str | None]":
    """The attribute as a host's ``plugin.name`` finds it, without running descriptors:
    the class's, unless the instance's own __dict__ shadows it (a data descriptor, such
    as a property, is not shadowed)."""
    found, owner = None, None
    for klass in cls.__mro__:
        if name in vars(klass):
            found, owner = vars(klass)[name], f"{klass.__module__}.{klass.__qualname__}"
            break
    own = getattr(plugin, "__dict__", None) if plugin is not None else None
    data = owner is not None and any(hasattr(type(found), a) for a in ("__set__", "__delete__"))
    if isinstance(own, dict) and name in own and not data:
        return own[name], "instance"
    return found, owner


def _parameters(func: object) -> "list[dict] | None":
    try:
        signature = inspect.signature(func)  # follows __wrapped__: the plugin's own
    except (TypeError, ValueError):
        return None  # not callable, or a builtin without one
    return [
        {"name": p.name, "kind": p.kind.name, "default": p.default is not p.empty}
        for p in signature.parameters.values()
    ]


def run() -> int:
    out, write = os.dup(1), os.write  # before any code of the plugin runs
    answer = json.dumps(main(sys.argv[1], sys.argv[2:]), default=str)
    nonce = os.read(0, 64).decode("ascii", "replace").strip()
    if not nonce:  # someone read it first: answer nothing rather than an unsigned line
        return 3
    data = f"{nonce} {answer}\n".encode()
    while data:
        data = data[write(out, data) :]
    return 0


if __name__ == "__main__":
    sys.exit(run())
